"""docs/reference/flags.md is generated (scripts/docs/flag_reference.py): the committed file
equals the rendering, --check says in one line when it does not, and the file holds every
study field with its default and its quick-preset value."""
import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from ptycho.config.cli import flag
from ptycho.config.presets import PRESET_VALUES
from ptycho.config.reference import value
from ptycho.config.study_config import SECTIONS
from torch_fixtures import load_repo_file

REPO = Path(__file__).resolve().parents[2]
FLAGS = REPO / "docs" / "reference" / "flags.md"


@pytest.fixture(scope="module")
def script():
    return load_repo_file("scripts/docs/flag_reference.py")


@pytest.fixture(scope="module")
def rendered(script):
    return script.reference()


def test_the_committed_reference_is_the_rendering(rendered):
    assert FLAGS.read_text() == rendered, ("docs/reference/flags.md is not current: run "
                                           "python scripts/docs/flag_reference.py")


def test_taking_a_parser_leaves_argparse_as_it_was(script, rendered):
    assert argparse.ArgumentParser.parse_known_args.__qualname__ == \
        "ArgumentParser.parse_known_args"
    assert argparse.ArgumentParser.parse_args.__qualname__ == "ArgumentParser.parse_args"


def test_every_study_field_has_its_row_with_default_and_quick_value(rendered):
    study = rendered.split("\n## ptycho-study\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in study.splitlines()
            if line.startswith("| `--")}
    for cls in SECTIONS.values():
        for f in fields(cls):
            key = next(k for k in rows if k.startswith(f"`{flag(f.name)}`"))
            row = rows[key]
            assert row[2] == value(f.default), f.name
            quick = PRESET_VALUES["quick"]
            assert row[3] == (value(quick[f.name]) if f.name in quick else ""), f.name


def test_each_command_lists_its_own_flags(rendered):
    sections = {s.split("\n", 1)[0]: s for s in rendered.split("\n## ")[1:]}
    assert "`--reuse-models`" in sections["ptycho-compare"]
    assert "| `--nphotons-list` | str | `1e2,1e3,1e4,1e5,1e9` |" in sections["ptycho-dose-study"]
    assert "| `--seeds` | str | required |" in sections["ptycho-seeds"]
    assert "except `--seed`." in sections["ptycho-seeds"]
    assert "| `--checkpoint` | str | `''` |" in sections["ptycho-reconstruct"]
    assert "| `--epochs` | `50` | `5` |" in sections["quality gate"]


def test_check_names_a_stale_file_in_one_line_and_writing_makes_it_current(script, tmp_path,
                                                                         capsys):
    stale = tmp_path / "flags.md"
    stale.write_text("old\n")
    assert script.main(["--check", "--output", str(stale)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {stale} is not current (regenerate it: python "
                   "scripts/docs/flag_reference.py)\n")
    assert stale.read_text() == "old\n"
    assert script.main(["--output", str(stale)]) == 0
    assert script.main(["--check", "--output", str(stale)]) == 0
    assert stale.read_text() == FLAGS.read_text()
