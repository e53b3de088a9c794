"""Every relative link in README.md and docs/ reaches a file of this checkout (and, for a
markdown target, a heading when the link names one); every `docs/...` path the docs quote
exists, and so does every quoted path of a source file (`tests/...py`, `ptycho_torch/...py`,
...) outside the dated plans in docs/plans/ (which describe the tree as it was). Moving a
page or a module without fixing the docs fails here. The README stays at most 120 lines."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
QUOTED = re.compile(r"`(docs/[^`\s]+\.(?:md|png))`")
SOURCE = re.compile(r"`((?:tests|scripts|ptycho|ptycho_torch|tools|examples|data)/[^`\s:*<>]+"
                    r"\.(?:py|sh|md|npz))`")
CURRENT = [p for p in PAGES if "plans" not in p.relative_to(REPO).parts]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(path: Path) -> str:
    return FENCE.sub("", path.read_text())


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, and a
    repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if not m:
            continue
        base = re.sub(r"[^\w\- ]", "", m[1].strip().lower()).replace(" ", "-")
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links(path: Path):
    for target in LINK.findall(_prose(path)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_quoted_docs_path_exists(page):
    assert [p for p in QUOTED.findall(_prose(page)) if not (REPO / p).exists()] == []


def test_the_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [gone](missing.md) [bad](page.md#nope)\n"
                    "```\n[in code](ignored.md)\n```\n")
    targets = list(_links(page))
    assert targets == ["page.md#title", "missing.md", "page.md#nope"]
    assert _anchors(page) == {"title"}


@pytest.mark.parametrize("page", CURRENT, ids=lambda p: str(p.relative_to(REPO)))
def test_every_quoted_source_path_exists(page):
    assert [p for p in SOURCE.findall(page.read_text()) if not (REPO / p).exists()] == []


def test_the_source_check_sees_a_moved_module():
    text = "see `ptycho_torch/core/physics.py` and `ptycho_torch/physics.py`"
    assert [p for p in SOURCE.findall(text) if not (REPO / p).exists()] == ["ptycho_torch/physics.py"]


def test_the_readme_is_at_most_120_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= 120
