"""The probe and positions as estimates: routes, the learned probe in the model,
the noise floor, the scan-sized budget, moved positions, the simulated benchmark scan and
``ptycho-reconstruct --probe-source``."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.config.probe_config import ProbeConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import ConfigError
from ptycho.datagen.from_file import dataset_arrays, simulate_from_file
from ptycho.io import load_dataset, save_dataset
from ptycho_torch.pipeline import probe_update
from ptycho_torch.engine.training import scaled_budget
from ptycho_torch.model import PtychoPINN_Lightning
from ptycho_torch.ptychi.probe import centres_by_pattern, with_positions

REPO = Path(__file__).resolve().parents[3]
SOURCE = REPO / "data" / "run1084_recon3_postPC.npz"
sys.path.insert(0, str(REPO / "scripts" / "studies"))
import grid_lines_torch_runner as runner  # noqa: E402
import make_example_scan  # noqa: E402

from ptycho_torch.cli import reconstruct_main  # noqa: E402

TINY = ["--architecture", "fno", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--fno-cnn-blocks", "1", "--num-threads", "1", "--no-progress-bar", "--batch-size", "8"]


# ------------------------------------------------------------------------- routes
@pytest.mark.parametrize("flat, simulated, ptychi, route", [
    ({}, True, True, "none"),
    ({"refine_probe_epochs": 5}, False, True, "lsqml"),
    ({"probe_update": "learn"}, False, True, "learn"),
    ({"probe_update": "lsqml"}, True, False, "lsqml"),
    ({"probe_update": "auto"}, True, True, "none"),
    ({"probe_update": "auto"}, False, True, "lsqml"),
    ({"probe_update": "auto"}, False, False, "learn"),
])
def test_routes(monkeypatch, flat, simulated, ptychi, route):
    monkeypatch.setattr(probe_update, "ptychi_available", lambda: ptychi)
    extra = {} if simulated else {"train_npz": "scan.npz"}
    cfg = StudyConfig.from_flat({**flat, **extra})
    assert probe_update.resolve_route(cfg)[0] == route
    assert (probe_update.model_probe_config(cfg, route).probe_update
            == ("learn" if route == "learn" else "none"))


@pytest.mark.parametrize("flat, simulated, corrected", [
    ({"probe_update": "auto"}, False, True),           # a real scan: positions are estimates
    ({"probe_update": "auto", "refine_positions": False}, False, False),
    ({"probe_update": "auto"}, True, False),           # simulated: route none
    ({"probe_update": "lsqml"}, False, False),         # explicit lsqml keeps them unless asked
    ({"probe_update": "lsqml", "refine_positions": True}, False, True),
    ({"refine_probe_epochs": 5}, False, False),
    ({"refine_probe_epochs": 5, "refine_positions": True}, True, True),
])
def test_which_routes_correct_the_positions(monkeypatch, flat, simulated, corrected):
    monkeypatch.setattr(probe_update, "ptychi_available", lambda: True)
    cfg = StudyConfig.from_flat({**flat, **({} if simulated else {"train_npz": "scan.npz"})})
    route = probe_update.resolve_route(cfg)[0]
    assert probe_update.corrects_positions(cfg, route) is corrected
    # only the lsqml route moves positions, whatever the flag says
    assert probe_update.corrects_positions(cfg, "learn") is False
    assert probe_update.corrects_positions(cfg, "none") is False


def test_refine_positions_flag_has_an_auto_default_and_both_forms():
    from ptycho.config.cli import build_parser, parse_known
    assert ProbeConfig().refine_positions is None
    parser = build_parser("ptycho-study", "test")
    assert parse_known(parser, ["--refine-positions"])["refine_positions"] is True
    assert parse_known(parser, ["--no-refine-positions"])["refine_positions"] is False
    assert "refine_positions" not in parse_known(parser, [])
    with pytest.raises(ConfigError, match=r"^ProbeConfig.refine_positions='yes' must be true or "
                       r"false$"):
        ProbeConfig(refine_positions="yes")
    # --no-refine-positions is allowed on any route: it asks for nothing
    assert StudyConfig.from_flat({"refine_positions": False}).probe.refine_positions is False


def test_refusals_of_the_probe_settings(monkeypatch):
    with pytest.raises(ConfigError, match=r"^ProbeConfig.probe_update='learn' with "
                       r"refine_probe_epochs=5: the LSQML epochs belong to the lsqml route"):
        StudyConfig.from_flat({"probe_update": "learn", "refine_probe_epochs": 5})
    with pytest.raises(ConfigError, match=r"^ProbeConfig.refine_positions needs the lsqml route"):
        StudyConfig.from_flat({"refine_positions": True})
    with pytest.raises(ConfigError, match="probe_update"):
        ProbeConfig(probe_update="guess")
    monkeypatch.setattr(probe_update, "ptychi_available", lambda: False)
    cfg = StudyConfig.from_flat({"probe_update": "auto", "refine_positions": True,
                                 "train_npz": "scan.npz"})
    with pytest.raises(Exception, match=r"--refine-positions needs Pty-chi .*"
                       r"\[flag --refine-positions\]$"):
        probe_update.resolve_route(cfg)


# -------------------------------------------------------------- learned probe model
def _model(learn: bool, epochs_warmup: int = 1):
    pc = ProbeConfig(probe_update="learn" if learn else "none", probe_learning_rate=3e-3,
                     probe_warmup_epochs=epochs_warmup)
    return PtychoPINN_Lightning(ModelConfig(N=16, architecture="cnn", fno_modes=4),
                                DataConfig(), TrainingConfig(), pc)


def test_a_learned_probe_has_its_own_learning_rate_and_checkpoint(tmp_path):
    from ptycho.probes import make_probe
    model = _model(True)
    p0 = make_probe(16)
    model.set_probe(p0)
    torch.testing.assert_close(model.current_probe(), torch.from_numpy(p0))
    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 3e-3]
    assert opt.param_groups[1]["params"][0] is model.learned_probe.correction
    with torch.no_grad():
        model.learned_probe.correction.normal_(0, 0.05)
    learned = model.current_probe()
    assert not torch.allclose(learned, torch.from_numpy(p0))
    # the learned probe enters the forward model
    x = torch.rand(2, 1, 16, 16)
    pos = torch.zeros(2, 1, 1, 2)
    obj = model.forward_predict(x, pos, None, torch.ones(2, 1, 1, 1))
    from ptycho_torch.core.physics import diffraction_amplitude
    torch.testing.assert_close(model(x, pos, None, torch.ones(2, 1, 1, 1)),
                               diffraction_amplitude(obj, learned))
    # saved and restored with the weights and hyperparameters
    import lightning as L
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    back = PtychoPINN_Lightning.load_from_checkpoint(str(path))
    torch.testing.assert_close(back.current_probe(), learned)


def test_without_learning_nothing_changes():
    model = _model(False)
    assert model.learned_probe is None and "probe_config" not in model.hparams
    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert len(opt.param_groups) == 1


def test_the_probe_waits_for_its_warm_up():
    model = _model(True, epochs_warmup=2)
    for epoch, trainable in ((0, False), (1, False), (2, True)):
        type(model).current_epoch = property(lambda self, e=epoch: e)
        model.on_train_epoch_start()
        assert model.learned_probe.correction.requires_grad is trainable
    del type(model).current_epoch


# ----------------------------------------------------------------- noise floor
def test_poisson_floor_matches_a_simulation():
    rng = np.random.default_rng(0)
    lam = rng.uniform(0, 60, size=(40, 16, 16))
    counts = rng.poisson(lam)
    s = 7.0
    amp = np.sqrt(counts) / s
    floor = probe_update.poisson_floor_mae(amp, s)
    # a perfect model predicts sqrt(lam): its amplitude MAE is the floor
    mae = float(np.abs(np.sqrt(lam) / s - amp).sum() / amp.sum())
    assert floor == pytest.approx(mae, rel=0.05)
    big = probe_update.poisson_floor_mae(np.full((2, 4, 4), 100.0), 1.0)  # 1e4 counts
    assert big == pytest.approx(0.5 * math.sqrt(2 / math.pi) / 100, rel=1e-3)


# --------------------------------------------------------------------- budget
def test_a_small_scan_trains_at_least_min_steps():
    tc = TrainingConfig(epochs=7, min_steps=1000)
    assert scaled_budget(tc, 65).epochs == 16             # 7 x 65 = 455 < 1000
    assert scaled_budget(tc, 819) is tc                   # the grid lines: 5733 steps
    assert scaled_budget(TrainingConfig(epochs=7), 10).epochs == 7


# ------------------------------------------------------------------- positions
def test_with_positions_moves_patches_by_pattern(tiny_data):
    train, _ = tiny_data
    ids = train.pattern_ids()[:, 0]
    new = train.centres[:, 0].astype(np.float64) + np.array([0.25, -0.5])
    moved = with_positions(train, ids[:5], new[:5])
    np.testing.assert_allclose(moved.centres[:5, 0], new[:5], atol=1e-5)
    np.testing.assert_array_equal(moved.centres[5:], train.centres[5:])
    np.testing.assert_array_equal(moved.coords_nominal, train.coords_nominal)
    np.testing.assert_allclose(centres_by_pattern(train, ids[:5], new[:5])[:5, 0], new[:5])


def test_with_positions_keeps_the_group_convention_at_gridsize_2(tiny_data_g2):
    """After a position correction at gridsize 2 every patch sits at its pattern's corrected
    position, ``coords_offsets`` is its group's centre (the mean of the corrected members) and
    ``coords_nominal`` its offset from it: the offsets the training loader hands the overlap
    constraint, and the canvas the model is built with."""
    from ptycho_torch.config_factory import build_model, data_config_from
    from ptycho_torch.engine.data import make_loaders, split_indices
    train, _ = tiny_data_g2
    ids = train.pattern_ids()
    uniq, first = np.unique(ids.ravel(), return_index=True)
    before = train.centres.reshape(-1, 2).astype(np.float64)[first]
    shift = np.random.default_rng(5).uniform(-3.0, 3.0, before.shape)
    moved = with_positions(train, uniq, before + shift)
    want = (before + shift)[np.searchsorted(uniq, ids)]                     # (n, C, 2)
    centre = want.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(moved.centres, want, atol=1e-4)
    np.testing.assert_allclose(moved.coords_offsets[:, :, 0], np.broadcast_to(centre, want.shape),
                               atol=1e-4)
    np.testing.assert_allclose(moved.coords_nominal[:, :, 0], want - centre, atol=1e-4)
    split = split_indices(moved.n, 0.25, 0)
    _, val = make_loaders(moved, split, 1.0, batch_size=moved.n, seed=0)
    _, positions, _ = next(iter(val))
    np.testing.assert_allclose(positions[:, :, 0].numpy(), (want - centre)[split.val_idx],
                               atol=1e-4)
    reach = int(np.abs(np.floor(want - centre + 0.5)).max())
    assert reach > 2   # the grid's own offsets are +-2 px: the canvas must follow the move
    model = build_model(ModelConfig(N=32, gridsize=2, architecture="fno", fno_width=4,
                                    fno_modes=4, fno_blocks=1, fno_cnn_blocks=1),
                        data_config_from(moved), TrainingConfig(), moved)
    assert model.overlap_region_size == 32 + 2 * reach


# -------------------------------------------------------------- benchmark scan
def test_scan_from_the_real_object_probe_and_positions(tmp_path):
    scan, truth = simulate_from_file(SOURCE, nphotons=1e6, positions="nominal", n_positions=60,
                                     seed=1)
    with np.load(SOURCE) as z:
        true_xy = np.stack([z["xcoords"], z["ycoords"]], 1)[:60]
        start_xy = np.stack([z["xcoords_start"], z["ycoords_start"]], 1)[:60]
    np.testing.assert_array_equal(truth.positions_px, true_xy)
    np.testing.assert_array_equal(scan.positions_px, start_xy)
    assert scan.counts.shape == (60, 64, 64)
    assert scan.counts.sum((1, 2)).mean() == pytest.approx(1e6, rel=0.01)
    assert float(np.sum(np.abs(truth.probe) ** 2)) == pytest.approx(1.0, rel=1e-5)
    jittered, _ = simulate_from_file(SOURCE, positions="true", jitter_px=2.0, n_positions=400,
                                     seed=1)
    with np.load(SOURCE) as z:
        err = jittered.positions_px - np.stack([z["xcoords"][:400], z["ycoords"][:400]], 1)
    assert np.std(err) == pytest.approx(2.0, rel=0.1)
    path = save_dataset(tmp_path / "d.npz", *dataset_arrays(scan, truth))
    d = load_dataset(path)
    assert d.ground_truth.shape == (227, 226) and d.n == 60
    np.testing.assert_allclose(d.centres[:, 0], start_xy, atol=1e-4)
    with pytest.raises(ValueError, match=r"^positions='guess' is not supported"):
        simulate_from_file(SOURCE, positions="guess")


def test_scan_from_the_file_at_a_larger_N():
    """--N 128 from the 64 x 64 probe: the probe zero-padded (same pixel size), the counts of
    that probe; a window that leaves the object is refused, naming the file and keys."""
    scan, truth = simulate_from_file(SOURCE, nphotons=1e6, n_positions=20, seed=1, N=128)
    small, small_truth = simulate_from_file(SOURCE, nphotons=1e6, n_positions=20, seed=1)
    assert scan.counts.shape == (20, 128, 128) and truth.probe.shape == (1, 128, 128)
    np.testing.assert_allclose(truth.probe[0, 32:96, 32:96], small_truth.probe[0], atol=1e-6)
    assert np.abs(truth.probe[0, :32]).max() == 0
    # the same exit wave on a finer far-field grid: equal photons, the counts spread wider
    assert scan.counts.sum((1, 2)).mean() == pytest.approx(1e6, rel=0.01)
    with pytest.raises(ValueError, match=r"an N=200 window at the positions 'xcoords' / "
                                         r"'ycoords' leaves the \(227, 226\) object"):
        simulate_from_file(SOURCE, n_positions=20, N=200)


def test_make_example_scan_refusals(tmp_path, capsys):
    assert make_example_scan.main(["--from", str(tmp_path / "none.npz"),
                                   "--output-dir", str(tmp_path / "o")]) == 2
    assert "none.npz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        make_example_scan.main(["--positions", "nominal", "--output-dir", str(tmp_path / "p")])


# ------------------------------------------------- reconstruct with the model's probe
def test_reconstruct_scores_with_the_models_probe(tmp_path):
    scan, truth = simulate_from_file(SOURCE, nphotons=1e6, n_positions=150, seed=2)
    good = save_dataset(tmp_path / "good.npz", *dataset_arrays(scan, truth))
    arrays, meta = dataset_arrays(scan, truth)
    wrong = save_dataset(tmp_path / "wrong.npz", {**arrays, "probeGuess": np.roll(
        arrays["probeGuess"], 9, axis=1)}, meta)
    study = tmp_path / "study"
    assert runner.main(["--train-npz", str(good), "--N", "64", "--epochs", "1",
                        "--output-dir", str(study), *TINY]) == 0
    ckpt = study / "runs" / "pinn_fno" / "model.ckpt"
    res = {}
    for source in ("model", "file"):
        out = tmp_path / f"rec_{source}"
        assert reconstruct_main(["--checkpoint", str(ckpt), "--data", str(wrong),
                                 "--output-dir", str(out), "--probe-source", source,
                                 "--device", "cpu"]) == 0
        res[source] = json.loads((out / "metrics.json").read_text())["data_residual"]
        with np.load(out / "recon.npz") as z:
            probe = z["probe"]
        expect = arrays["probeGuess"] if source == "model" else np.roll(arrays["probeGuess"], 9, 1)
        np.testing.assert_allclose(probe, expect, atol=1e-6)
    assert res["model"]["amplitude_mae"] < res["file"]["amplitude_mae"]


def test_a_learned_probe_at_gridsize_1_is_flagged(caplog):
    cfg = StudyConfig.from_flat({"probe_update": "learn", "train_npz": "scan.npz"})
    with caplog.at_level("WARNING", logger="ptycho_torch.pipeline.probe_update"):
        probe_update.warn_learned_probe(cfg, "learn")
        probe_update.warn_learned_probe(cfg, "lsqml")
    assert len(caplog.records) == 1
    assert "--probe-update lsqml" in caplog.records[0].getMessage()
