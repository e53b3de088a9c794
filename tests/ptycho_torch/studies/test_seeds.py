"""The seed sweep (ptycho_torch/studies/seeds.py): one study per seed, a summary over them."""
import json

import pytest

from ptycho.config.validation import StudyError
from ptycho_torch.studies import seeds

TINY = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
        "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
        "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--epochs", "1", "--num-threads", "1", "--no-progress-bar"]


def test_seeds_are_parsed_and_refused():
    assert seeds.parse_seeds("1, 7,42,7") == (1, 7, 42)
    with pytest.raises(StudyError, match=r"^--seeds: 'x' is not a seed"):
        seeds.parse_seeds("1,x")
    with pytest.raises(StudyError, match=r"^--seeds '3' gives 1 seed\(s\)"):
        seeds.parse_seeds("3")


def test_a_sweep_runs_each_seed_and_summarises(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert seeds.main([*TINY, "--seeds", "1,7", "--output-dir", str(out)]) == 0
    result = json.loads((out / "seeds.json").read_text())
    per = {}
    for s in (1, 7):
        m = json.loads((out / f"seed_{s}" / "runs" / "pinn_fno" / "metrics.json").read_text())
        cfg = json.loads((out / f"seed_{s}" / "runs" / "pinn_fno" / "config.json").read_text())
        assert cfg["study"]["training"]["seed"] == s
        per[s] = m["ssim"][0]
    row = result["summary"]["amp SSIM"]
    assert row["per_seed"] == {"1": per[1], "7": per[7]}
    assert row["min"] == min(per.values()) and row["max"] == max(per.values())
    assert row["mean"] == pytest.approx(sum(per.values()) / 2)
    assert per[1] != per[7]                     # the seed reaches the study
    # the data do not depend on the seed: simulated once, into one cache for every seed
    assert len(list((out / "datasets").glob("*/test.npz"))) == 1
    assert not list(out.glob("seed_*/datasets"))
    assert "| amp SSIM |" in (out / "seeds.md").read_text()
    # run again: both seeds are reused, the summary is the same
    assert seeds.main([*TINY, "--seeds", "1,7", "--output-dir", str(out)]) == 0
    assert json.loads((out / "seeds.json").read_text())["summary"] == result["summary"]
    assert "reusing the finished study" in capsys.readouterr().err


def test_a_censored_frc50_is_a_lower_bound_over_the_seeds():
    """A seed whose FRC50 never crossed (null, '>= 0.5') is neither dropped nor a crash: it
    enters at its bound and makes the mean and max lower bounds."""
    rows = [{"frc50": [0.25, 0.2], "frc50_censored": [None, None]},
            {"frc50": [None, 0.3], "frc50_censored": [">= 0.5", None]},
            {"frc50": [0.35, 0.1], "frc50_censored": [None, None]}]
    out = seeds.summarise([1, 7, 42], rows)["amp FRC50"]
    assert out["per_seed"] == {1: 0.25, 7: ">= 0.5", 42: 0.35}
    assert out["mean"] == ">= 0.3667" and out["max"] == ">= 0.5" and out["min"] == 0.25
    table = seeds.table([1, 7, 42], {"amp FRC50": out})
    assert "| amp FRC50 | 0.25 | >= 0.5 | 0.35 | >= 0.3667 | 0.25 | >= 0.5 |" in table
    measured = seeds.summarise([1, 42], [rows[0], rows[2]])["amp FRC50"]
    assert measured["mean"] == pytest.approx(0.3) and measured["max"] == 0.35
    every = seeds.summarise([7], [rows[1]])["amp FRC50"]
    assert every["min"] == every["mean"] == every["max"] == ">= 0.5"


def test_the_two_half_frc_is_read_from_its_dict_censored_or_absent():
    """The ground-truth-free FRC50s of ``two_half_frc`` (no value on a row without it, such
    as an iterative method's) summarise like the other crossings."""
    rows = [{"two_half_frc": {"frc50": [0.13, 0.068], "frc50_censored": [None, None]}},
            {"two_half_frc": {"frc50": [0.14, None], "frc50_censored": [None, ">= 0.5"]}},
            {"two_half_frc": None}]
    out = seeds.summarise([1, 7, 42], rows)
    assert out["phase two-half FRC50"]["per_seed"] == {1: 0.068, 7: ">= 0.5", 42: None}
    assert out["phase two-half FRC50"]["max"] == ">= 0.5"
    assert out["amp two-half FRC50"]["per_seed"] == {1: 0.13, 7: 0.14, 42: None}
    assert out["amp two-half FRC50"]["mean"] == pytest.approx(0.135)
