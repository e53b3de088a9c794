"""Every ``python scripts/...py`` or ``python tools/...py`` command quoted in README.md and
docs/ (the dated plans in docs/plans/ aside: they describe the tree as it was) names a
script of this checkout, and every ``--flag`` it passes is one the script's ``--help``
lists. A flag renamed or dropped without fixing the docs fails here."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [p for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
         if "plans" not in p.relative_to(REPO).parts]
COMMAND = re.compile(r"python ((?:scripts|tools)/[\w/]+\.py)([^`\n]*)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")   # an argument's value, e.g. --train-args "--x 1"


def quoted_commands() -> dict[str, set[str]]:
    """script path -> the flags the docs pass it (line continuations joined)."""
    out: dict[str, set[str]] = {}
    for page in PAGES:
        for m in COMMAND.finditer(page.read_text().replace("\\\n", " ")):
            out.setdefault(m[1], set()).update(FLAG.findall(QUOTED.sub("", m[2])))
    return out


COMMANDS = quoted_commands()


def test_the_docs_quote_commands():
    # the pages this test reads: a regex that matched nothing would pass every case below
    assert {"scripts/studies/grid_lines_torch_runner.py", "scripts/benchmarks/precision.py",
            "scripts/studies/seed_sweep.py"} <= set(COMMANDS)
    assert "--precision" in COMMANDS["scripts/studies/grid_lines_torch_runner.py"]


def test_quoted_values_are_not_read_as_flags():
    text = 'python scripts/benchmarks/live.py --train-args "--fno-width 8" --threads 2'
    (m,) = COMMAND.finditer(text)
    assert FLAG.findall(QUOTED.sub("", m[2])) == ["--train-args", "--threads"]


@pytest.mark.parametrize("script", sorted(COMMANDS))
def test_every_quoted_flag_is_one_the_script_takes(script):
    assert (REPO / script).is_file(), script
    r = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    missing = COMMANDS[script] - set(FLAG.findall(r.stdout))
    assert not missing, (script, sorted(missing))
