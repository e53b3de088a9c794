"""Candidate starts (``--candidates K``): each start is scored by the neighbour disagreement
of its own checkpoint on test object 1, the lowest goes on, and the study's model is then
the uninterrupted run of the chosen seed, bit for bit; bad settings are refused in one line
before anything is written."""
import json

import numpy as np
import pytest
import torch

from ptycho.config.config import InferenceConfig, TrainingConfig
from ptycho.config.validation import ConfigError
from ptycho.formats.readers import read_dataset
from ptycho.neighbour_agreement import neighbour_disagreement
from ptycho_torch.cli import study_main
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.pipeline.candidates import candidate_seed
from ptycho_torch.pipeline.reconstruct import load_model
from torch_fixtures import TINY_STUDY_FLAGS

TINY = [*TINY_STUDY_FLAGS, "--architecture", "fno", "--num-threads", "1"]
TINY[TINY.index("--n-test-objects") + 1] = "2"  # object 1 to choose on
TINY[TINY.index("--epochs") + 1] = "3"
BUDGET = ["--candidates", "3", "--candidate-epochs", "1"]


def _flags(**over):
    flags = list(TINY)
    for key, value in over.items():
        flags[flags.index(key) + 1] = value
    return flags


@pytest.fixture(scope="module")
def chosen(tmp_path_factory):
    """A tiny study with three starts of one epoch each, and its files."""
    root = tmp_path_factory.mktemp("candidates")
    out = root / "study"
    assert study_main([*TINY, *BUDGET, "--cache-dir", str(root / "cache"),
                       "--output-dir", str(out)]) == 0
    m = json.loads((out / "runs" / "pinn_fno" / "metrics.json").read_text())
    test_npz = json.loads((out / "runs" / "pinn_fno" / "config.json").read_text())["data"]["test_npz"]
    return root, out, m, test_npz


def _object_disagreement(ckpt, test_npz, index):
    """The median neighbour disagreement of a checkpoint's patches of test object
    ``index``, computed here from the library's pair function and the study's crop."""
    data = read_dataset(test_npz)
    sub = data.select(data.object_selection(index))
    model = load_model(ckpt, "cpu")
    patches = np.asarray(predict_patches(model, sub, 7))[:, 0]
    crop = InferenceConfig().stitch_crop or patches.shape[-1] // 2  # the default: N / 2
    return neighbour_disagreement(patches, sub.centres.reshape(-1, 2), crop)["median"]


def test_each_start_is_scored_on_object_1_and_the_lowest_goes_on(chosen):
    root, out, m, test_npz = chosen
    rows = m["candidates"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert rows[0]["seed"] == 42 and len({r["seed"] for r in rows}) == 3
    work = out / ".work" / "pinn_fno"
    for r in rows:
        ckpt = work / f"candidate_{r['index']}" / "checkpoints" / "last.ckpt"
        assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 0
        assert r["neighbour_disagreement"] == pytest.approx(
            _object_disagreement(ckpt, test_npz, 1), rel=1e-6)
    scores = [r["neighbour_disagreement"] for r in rows]
    assert [r["chosen"] for r in rows] == [i == int(np.argmin(scores)) for i in range(3)]
    assert m["epochs_completed"] == 3 and m["resumed_from_epoch"] is None
    assert m["train_time_s"] > sum(r["train_time_s"] for r in rows)


def test_the_study_s_model_is_the_chosen_seed_s_plain_run(chosen):
    root, out, m, _ = chosen
    seed = next(r["seed"] for r in m["candidates"] if r["chosen"])
    plain = root / "plain"
    assert study_main([*TINY, "--seed", str(seed), "--cache-dir", str(root / "cache"),
                       "--output-dir", str(plain)]) == 0
    a = torch.load(out / "runs" / "pinn_fno" / "model.ckpt", weights_only=True)["state_dict"]
    b = torch.load(plain / "runs" / "pinn_fno" / "model.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = [json.loads((d / "runs" / "pinn_fno" / "history.json").read_text())
            for d in (out, plain)]
    assert hist[0].keys() == hist[1].keys() and "time_s" in hist[0]  # wall-clock stamps
    assert all(hist[0][k] == hist[1][k] for k in hist[0] if k != "time_s")
    pm = json.loads((plain / "runs" / "pinn_fno" / "metrics.json").read_text())
    assert pm["candidates"] is None and pm["psnr"] == m["psnr"]


def test_candidate_seeds():
    assert candidate_seed(7, 0) == 7
    seeds = [candidate_seed(7, k) for k in range(1, 6)]
    assert len(set(seeds)) == 5 and 7 not in seeds
    assert seeds == [int(np.random.SeedSequence([7, k]).generate_state(1)[0]) for k in range(1, 6)]
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize("kwargs, message", [
    (dict(candidate_epochs=2), "TrainingConfig.candidate_epochs=2 has no effect with candidates=1 "
                               "(it sets the epochs of each start)"),
    (dict(candidates=2, epochs=3, candidate_epochs=3),
     "TrainingConfig.candidate_epochs=3 leaves nothing to go on with (allowed: fewer than "
     "epochs=3)"),
    (dict(candidates=2, devices=2), "TrainingConfig.devices=2 is not supported with "
                                    "candidates=2 (allowed: 1)"),
    (dict(candidates=2, max_train_minutes=5.0), "TrainingConfig.max_train_minutes=5 is not "
                                                "supported with candidates=2 (allowed: 0)"),
    (dict(candidates=2, scheduler="onecycle"), "TrainingConfig.scheduler='onecycle' is not "
                                               "supported with candidates=2 (allowed: plateau, "
                                               "none)"),
    (dict(candidates=0), "TrainingConfig.candidates"),
])
def test_bad_candidate_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError) as err:
        TrainingConfig(**kwargs)
    assert str(err.value).startswith(message)


def test_a_test_scan_without_object_1_is_refused_before_any_write(tmp_path, capsys):
    out = tmp_path / "study"
    argv = [*_flags(**{"--n-test-objects": "1"}), *BUDGET, "--cache-dir", str(tmp_path / "c"),
            "--output-dir", str(out)]
    assert study_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--candidates 3: the starts are chosen on test object 1, which no "
                            "score uses, and the test scan has objects [0] (simulate two or "
                            "more: --n-test-objects 2)")
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_resume_scores_the_same_starts_and_goes_on_with_the_chosen_one(chosen, tmp_path):
    """A study stopped after its starts (here: its metrics.json removed, the training state
    kept) resumes: the starts load as they were, score the same, the same start goes on."""
    import shutil
    root, out, m, _ = chosen
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    (copy / "runs" / "pinn_fno" / "metrics.json").unlink()
    assert study_main([*TINY, *BUDGET, "--cache-dir", str(root / "cache"), "--output-dir",
                       str(copy), "--resume"]) == 0
    again = json.loads((copy / "runs" / "pinn_fno" / "metrics.json").read_text())
    drop = ("train_time_s",)
    assert ([{k: v for k, v in r.items() if k not in drop} for r in again["candidates"]]
            == [{k: v for k, v in r.items() if k not in drop} for r in m["candidates"]])
    assert again["resumed_from_epoch"] == 2 and again["psnr"] == m["psnr"]
