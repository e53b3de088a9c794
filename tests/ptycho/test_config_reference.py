"""The flag reference renderer: a generated flag is rendered from its config field (type and
choices as argparse parses them, the field's default and help, the presets beside it), a
command's own flags as argparse declares them, and a command that shares the study flags
lists exactly the ones it leaves out."""
import argparse
from dataclasses import fields

from ptycho.config.cli import build_parser
from ptycho.config.config import ModelConfig
from ptycho.config.presets import PRESET_VALUES
from ptycho.config.reference import Command, anchor, cell, render, render_command, value
from ptycho.config.study_config import SECTIONS


def _rows(lines: list[str]) -> dict[str, list[str]]:
    """Table rows keyed by their first cell."""
    out = {}
    for line in lines:
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells
    return out


def test_a_generated_flag_is_rendered_from_its_field_with_the_preset_beside_it():
    parser = build_parser("p", "d", sections={"model": ModelConfig}, config_flag=False)
    lines = render_command(Command("p", ("p",), parser, {"model": ModelConfig},
                                   {"quick": PRESET_VALUES["quick"]}))
    rows = _rows(lines)
    assert len(rows) == len(fields(ModelConfig))
    assert rows["`--fno-width`"] == ["`--fno-width`", "int", "`32`", "`8`",
                                     "channel width of the spectral blocks"]
    assert rows["`--N`"][1:4] == ["`16`, `32`, `64`, `128`, `256`", "`64`", ""]
    assert rows["`--overlap-constraint` / `--no-overlap-constraint`"][1:3] == ["on / off", "`True`"]
    assert "| flag | takes | default | quick | help |" in lines


def test_a_shared_command_lists_what_it_leaves_out_and_only_its_own_flags():
    study = Command("study", ("s",), build_parser("s", "d"), SECTIONS)
    other = build_parser("o", "d", exclude=("architecture", "seed"), config_flag=False)
    other.add_argument("--seeds", required=True, help="comma-separated")
    text = "\n".join(render_command(Command("other", ("o",), other, SECTIONS, shared=study)))
    assert ("Every config flag of [`study`](#study), except `--architecture`, `--seed`, "
            "`--config`.") in text
    assert _rows(text.splitlines()) == {"`--seeds`": ["`--seeds`", "str", "required",
                                                      "comma-separated"]}


def test_a_required_choice_of_flags_is_said():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--a", type=int, default=argparse.SUPPRESS, help="x")
    g.add_argument("--b", action="store_true")
    lines = render_command(Command("t", ("t",), p))
    assert "Exactly one of `--a`, `--b`." in lines
    assert _rows(lines)["`--a`"] == ["`--a`", "int", "-", "x"]
    assert _rows(lines)["`--b`"][1:3] == ["switch", "`False`"]


def test_values_are_written_exactly():
    assert [value(v) for v in (1e9, 1e-6, 2e-4, 1.2345678901, 14.0, "", None, "a,b")] == [
        "`1e9`", "`1e-6`", "`0.0002`", "`1.2345678901`", "`14`", "`''`", "none", "`a,b`"]
    assert cell("10%% warm-up | |P|^2") == "10% warm-up \\| \\|P\\|^2"


def test_anchors_follow_github_headings():
    assert anchor("make_example_scan.py") == "make_example_scanpy"
    assert anchor("ptycho-study") == "ptycho-study"
    assert anchor("learning curve") == "learning-curve"
    text = render([Command("learning curve", ("x",), argparse.ArgumentParser())], ["intro"])
    assert text.startswith("# Command-line flags\n\nintro\n\n- [learning curve](#learning-curve)\n")
    assert "\n## learning curve\n" in text and text.endswith("\n") and not text.endswith("\n\n")
