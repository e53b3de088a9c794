"""The scripts and tools name only what the packages hold: mypy (the [tool.mypy] settings,
the packages read but not reported on) finds no missing module attribute, undefined name
or unknown keyword argument in scripts/ or tools/. A function moved to another module
without fixing a script that calls it fails here, not in a user's hands. (The scripts are
not type-checked otherwise: their other findings are not errors of this kind.)"""
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parents[1]
CODES = ("[attr-defined]", "[name-defined]", "[call-arg]")


def _findings(*paths: str) -> list[str]:
    out, err, _ = api.run(["--follow-imports=silent", "--no-error-summary",
                           "--config-file", str(REPO / "pyproject.toml"), *paths])
    assert not err.strip(), err
    return [line for line in out.splitlines() if line.endswith(CODES)]


def test_scripts_and_tools_reference_what_exists():
    assert _findings(str(REPO / "scripts"), str(REPO / "tools")) == []


def test_a_missing_module_attribute_is_found(tmp_path):
    bad = tmp_path / "uses_a_moved_function.py"
    bad.write_text("from ptycho import reconstruction\n\n"
                   "reconstruction.reconstruct_test_object(None, None, None)\n")
    (finding,) = _findings(str(bad))
    assert 'Module has no attribute "reconstruct_test_object"' in finding
