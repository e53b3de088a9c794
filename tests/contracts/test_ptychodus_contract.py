"""The contract Ptychodus 1.7's PtychoPINN-Torch back end calls, without Ptychodus: its
config keywords, the child's call order for training and reconstruction, the refusals
(one line naming the Ptychodus setting) and the object frame. ``tests/ptychodus/`` drives
the real Ptychodus."""
import pickle
from dataclasses import fields

import lightning as L
import numpy as np
import pytest
import torch

from ptycho.config.config import DataConfig, InferenceConfig, ModelConfig, TrainingConfig
from ptycho.config.runner_config import TorchRunnerConfig
from ptycho.config.validation import ConfigError, StudyError
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.geometry import metres_to_pixels
from ptycho.formats.ptychodus import scan_centred_window, write_ptychodus
from ptycho.formats.ptychodus_product import read_product
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.formats.validation import make_raw_scan
from ptycho.probes import make_probe
from ptycho_torch import config_params as cp
from ptycho_torch.api.base_api import (
    ConfigManager,
    DataloaderFormats,
    InferenceEngine,
    PtychoDataLoader,
    PtychoModel,
    Trainer,
)
from ptycho_torch.api.frame import frame_shape, stitch_in_frame
from ptycho_torch.api.inputs import merge_scans
from ptycho_torch.api.model_file import read_model_configs, write_model_file
from ptycho_torch.api.refine_plan import RefinePlan, set_refine_plan
from ptycho_torch.api.refine_plan import main as refine_main
from ptycho_torch.api.translate import translate
from ptycho_torch.lightning_utils import find_best_checkpoint
from ptycho_torch.model import PtychoPINN_Lightning

N = 32

# the keywords reconstructor.py::_build_configs passes (Ptychodus 1.7.0)
KEYWORDS = {
    cp.DataConfig: "N C normalize neighbor_function scan_pattern probe_normalize x_bounds "
                   "y_bounds min_neighbor_distance max_neighbor_distance K_quadrant n_subsample "
                   "probe_scale K grid_size probe_ramp_removal data_scaling phase_subtraction",
    cp.ModelConfig: "mode object_big probe_big loss_function amp_activation cbam_encoder "
                    "decoder_last_amp_channels use_shared_decoder intensity_scale_trainable "
                    "intensity_scale max_position_jitter num_datasets C_model C_forward amp_loss "
                    "phase_loss amp_loss_coeff phase_loss_coeff n_filters_scale probe_mask "
                    "eca_decoder batch_norm edge_pad decoder_last_c_outer_fraction "
                    "cbam_bottleneck cbam_decoder spatial_decoder decoder_spatial_kernel "
                    "eca_encoder offset probe_reference_coeff amplitude_variance_loss "
                    "amplitude_variance_coeff",
    cp.TrainingConfig: "epochs batch_size learning_rate n_devices num_workers accum_steps "
                       "epochs_fine_tune fine_tune_gamma gradient_clip_val nll device strategy "
                       "framework orchestrator scheduler warmup_epochs min_lr_ratio notes "
                       "model_name enable_staged_finetuning finetune_stage1_epochs "
                       "finetune_stage2_epochs finetune_stage3_epochs finetune_stage1_lr_decoder "
                       "finetune_stage2_lr_encoder_top finetune_stage2_lr_decoder "
                       "finetune_stage2_lr_phase_head finetune_stage3_lr_encoder_bottom "
                       "finetune_stage3_lr_encoder_top finetune_stage3_lr_decoder "
                       "finetune_stage3_lr_phase_head finetune_skip_stage3 "
                       "finetune_early_stop_patience finetune_val_split",
    cp.InferenceConfig: "batch_size middle_trim experiment_number patch_weighting pad_eval window",
}


def test_config_params_take_every_keyword_ptychodus_passes_and_pickle():
    for cls, names in KEYWORDS.items():
        names = names.split()
        defaults = cls()
        rec = cls(**{k: getattr(defaults, k) for k in names})
        assert set(names) <= {f.name for f in fields(cls)}
        assert pickle.loads(pickle.dumps(rec)) == rec
    cp.TrainingConfig().n_devices = 1          # Ptychodus assigns it: the records are mutable
    assert cp.DatagenConfig() == pickle.loads(pickle.dumps(cp.DatagenConfig()))


def test_ptychodus_defaults_translate_to_valid_study_fields():
    tr = translate(cp.DataConfig(N=64), cp.ModelConfig(), cp.TrainingConfig(),
                   cp.InferenceConfig())
    ov = tr.overrides
    assert ov["gridsize"] == 2 and ov["N"] == 64 and ov["loss"] == "poisson"
    assert ov["architecture"] == "cnn" and ov["n_filters_scale"] == 2
    assert ov["stitch_crop"] == 32 and ov["infer_batch_size"] == 1000
    assert ov["encoder_attention"] == "cbam" and ov["generator_output_mode"] == "amp_silu_phase"
    assert ov["k_nearest"] == 6 and ov["groups_per_position"] == 7
    assert ov["stitch_weighting"] == "probe" and ov["scheduler"] == "none"
    assert tr.bounds == ((0.1, 0.9), (0.1, 0.9))
    study = TorchRunnerConfig(**ov, train_npz="scan.npz").to_study()   # every field is valid
    assert study.model.gridsize == 2 and study.training.epochs == 50
    assert "PtychoPINNTorchData.probe_scale" in tr.notes


@pytest.mark.parametrize("group,change,message", [
    ("data", {"grid_size": (3, 2)}, "PtychoPINNTorchData.grid_size_y, grid_size_x=(3, 2) is not "
     "supported by ptychopinn-torch (allowed: (1, 1) or (2, 2))"),
    ("data", {"C": 1}, "PtychoPINNTorchData.num_channels=1 is not supported by "
     "ptychopinn-torch (allowed: 4 with grid_size (2, 2))"),
    ("data", {"probe_scale": 2.0}, "PtychoPINNTorchData.probe_scale=2.0 is not supported by "
     "ptychopinn-torch (allowed: 4.0; ptychopinn-torch has no counterpart)"),
    ("model", {"mode": "Supervised"}, "Processing.Algorithm=ptychopinn-torch_supervised is not "
     "supported by ptychopinn-torch (allowed: ptychopinn-torch_unsupervised; supervised "
     "training is not built)"),
    ("model", {"object_big": False}, "PtychoPINNTorchModel.object_big=False is not supported by "
     "ptychopinn-torch (allowed: True)"),
    ("model", {"loss_function": "MSE"}, "PtychoPINNTorchModel.loss_function='MSE' is not "
     "supported by ptychopinn-torch (allowed: 'Poisson' or 'MAE')"),
    ("training", {"n_devices": 2}, "PtychoPINNTorchTraining.n_devices=2 is not supported by "
     "ptychopinn-torch (allowed: 1)"),
    ("training", {"strategy": "ddp"}, "PtychoPINNTorchTraining.distributed_strategy='ddp' is not "
     "supported by ptychopinn-torch (allowed: 'ddp_spawn' or 'auto' with n_devices 1)"),
    ("inference", {"middle_trim": 65}, "PtychoPINNTorchInference.middle_trim=65 is not "
     "supported by ptychopinn-torch (allowed: 1..64 (model_size))"),
])
def test_unsupported_settings_are_refused_in_one_line(group, change, message):
    recs = {"data": cp.DataConfig(N=64), "model": cp.ModelConfig(),
            "training": cp.TrainingConfig(), "inference": cp.InferenceConfig()}
    for k, v in change.items():
        setattr(recs[group], k, v)
    with pytest.raises(ConfigError) as err:
        ConfigManager(recs["data"], recs["model"], recs["training"], recs["inference"])
    assert str(err.value) == message


def test_neighbour_settings_have_no_effect_at_gridsize_1_and_say_so():
    tr = translate(cp.DataConfig(N=64, C=1, grid_size=(1, 1)), cp.ModelConfig(C_model=1,
                   C_forward=1, decoder_last_amp_channels=1), cp.TrainingConfig(),
                   cp.InferenceConfig())
    assert tr.overrides["gridsize"] == 1 and "k_nearest" not in tr.overrides
    assert {"PtychoPINNTorchData.num_nearest_neighbors_for_lookup",
            "PtychoPINNTorchData.coordinate_subsampling_factor"} <= set(tr.notes)
    TorchRunnerConfig(**tr.overrides, train_npz="scan.npz").to_study()


def test_cuda_without_cuda_trains_on_the_cpu_and_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tr = translate(cp.DataConfig(N=64), cp.ModelConfig(), cp.TrainingConfig(device="cuda"),
                   cp.InferenceConfig())
    assert tr.overrides["device"] == "cpu"
    assert tr.changes == ["device 'cuda' requested but no CUDA device is available: training "
                          "on the CPU"]


# ------------------------------------------------------------------ the child's calls
def _scan(seed=1, n=120):
    obj = make_object(80, 50, np.random.default_rng(seed))
    return simulate_spiral_scan(obj, N, n, step_px=4.0, jitter_px=0.5,
                                probe_modes=make_probe(N), nphotons=1e6, seed=seed)


def _records(gridsize=2, **training):
    """Ptychodus' defaults (CBAM, SiLU amplitude, Poisson, K 6 x 7 groups, x/y bounds,
    probe weighting) at N 32, a narrow CNN and one epoch."""
    C = gridsize * gridsize
    return (cp.DataConfig(N=N, C=C, grid_size=(gridsize, gridsize)),
            cp.ModelConfig(n_filters_scale=1, decoder_last_amp_channels=C, C_model=C,
                           C_forward=C),
            cp.TrainingConfig(**{"epochs": 1, "device": "cpu", **training}),
            cp.InferenceConfig(middle_trim=16))


class _Losses(L.Callback):
    """What Ptychodus' loss collector reads at each epoch end."""

    def __init__(self, names):
        self.names, self.seen = names, []

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(float(trainer.callback_metrics[self.names[0]]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptychodus")
    scan = _scan()
    data_dir = root / "data"
    data_dir.mkdir()
    write_ptychopinn_npz(data_dir / "export.npz", scan, key="diff3d")
    d, m, t, i = (pickle.loads(pickle.dumps(r)) for r in _records())   # they cross a spawn
    cm = ConfigManager(data_config=d, model_config=m, training_config=t, inference_config=i,
                       datagen_config=cp.DatagenConfig())
    loader = PtychoDataLoader(data_dir=data_dir, config_manager=cm,
                              data_format=DataloaderFormats("lightning_only_module"),
                              output_dir=root / "out")
    model = PtychoModel._new_model(model=PtychoPINN_Lightning, config_manager=cm)
    trainer = Trainer._from_lightning(model=model, dataloader=loader, orchestration="lightning",
                                      config_manager=cm)
    losses = _Losses((model.model.loss_name, model.model.val_loss_name))
    trainer._trainer.callbacks.append(losses)
    trainer.train(orchestration="lightning", experiment_name="")
    return scan, loader, losses, find_best_checkpoint(loader.output_dir)


def test_training_writes_a_weights_only_model_file_in_a_new_run_folder(trained):
    scan, loader, losses, ckpt = trained
    assert loader.output_dir.parent.name == "out" and loader.output_dir.name.startswith("run_")
    assert ckpt == loader.output_dir / "model.ckpt"
    assert len(losses.seen) == 1 and np.isfinite(losses.seen[0])
    hp = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert hp["ptychodus"]["mode"] == "Unsupervised"
    assert hp["model_config"]["gridsize"] == 2 and hp["inference_config"]["stitch_crop"] == 16
    assert hp["model_config"]["encoder_attention"] == "cbam"
    assert hp["inference_config"]["stitch_weighting"] == "probe"
    assert find_best_checkpoint(loader.output_dir.parent) is None
    # x/y bounds 0.1..0.9 keep the inner positions; each trains in 7 groups of 4
    pos = scan.positions_px
    lo, span = pos.min(0), pos.max(0) - pos.min(0)
    inside = np.all((pos >= lo + 0.1 * span) & (pos <= lo + 0.9 * span), axis=1).sum()
    assert 0 < inside < scan.n and loader.dataset.n == 7 * inside
    assert loader.dataset.channels == 4


def test_reconstruction_returns_the_object_in_the_input_objects_frame(trained):
    scan, _, _, ckpt = trained
    dc, mc, tc, ic = PtychoModel._extract_configs_from_checkpoint(str(ckpt))
    pm = PtychoModel(model_config=mc, data_config=dc, training_config=tc, inference_config=ic)
    pm.model = PtychoPINN_Lightning.load_from_checkpoint(ckpt, model_config=mc, data_config=dc,
                                                         training_config=tc,
                                                         inference_config=ic)
    cm = ConfigManager.from_loaded_model(pm)
    cm.validate_arch_compatibility(pm)
    assert cm.model_config.mode == "Unsupervised" and cm.data_config.C == 4
    # Ptychodus' frame: an object centred on the scan, positions as (row, column) pixels
    pos = scan.positions_px
    size = np.ceil(pos.max(0) - pos.min(0) + N).astype(int)
    px = pos - (pos.min(0) + pos.max(0)) / 2 + (size - 1) / 2
    loader = PtychoDataLoader.from_np(diff_patterns=scan.counts.astype(np.float32),
                                      probe=scan.probe, positions=px[:, ::-1], config_manager=cm)
    out = np.asarray(InferenceEngine(config_manager=cm, ptycho_model=pm).predict_and_stitch(loader))
    assert out.shape == (size[1], size[0]) and out.dtype == np.complex64
    assert np.isfinite(out).all()


def test_model_size_must_equal_the_pattern_size(tmp_path):
    write_ptychopinn_npz(tmp_path / "export.npz", _scan(n=20), key="diff3d")
    d, m, t, i = _records()
    d.N = 64
    cm = ConfigManager(d, m, t, i)
    with pytest.raises(StudyError) as err:
        PtychoDataLoader(data_dir=tmp_path, config_manager=cm, output_dir=tmp_path / "o")
    assert str(err.value) == (f"PtychoPINNTorchData.model_size=64 does not match the 32 x 32 "
                              f"patterns of '{tmp_path / 'export.npz'}' (allowed: 32)")
    assert not (tmp_path / "o").exists()


def test_a_folder_without_training_data_is_refused(tmp_path):
    cm = ConfigManager(*_records())
    with pytest.raises(StudyError) as err:
        PtychoDataLoader(data_dir=tmp_path, config_manager=cm)
    assert str(err.value) == (f"training data folder '{tmp_path}': holds no training data "
                              "(allowed: an exported training NPZ (Ptychodus' 'Export training "
                              "data'), or diffraction.h5 with product.h5)")


# ------------------------------------------------------------------ frame and merging
def test_stitching_in_the_frame_puts_every_patch_back_where_it_was_cut():
    rng = np.random.default_rng(3)
    obj = (rng.uniform(0.5, 1.5, (70, 90)) * np.exp(1j * rng.uniform(-1, 1, (70, 90)))
           ).astype(np.complex64)
    xs, ys = np.meshgrid(np.arange(16, 75, 6), np.arange(16, 55, 6))
    pos = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    patches = np.stack([obj[y - N // 2:y + N // 2, x - N // 2:x + N // 2]
                        for x, y in pos.astype(int)])[:, None]
    H, W = frame_shape(pos, N)
    assert (H, W) == (int(pos[:, 1].min() + pos[:, 1].max()) + 1,
                      int(pos[:, 0].min() + pos[:, 0].max()) + 1)
    out = stitch_in_frame(patches, pos[:, None, :], (H, W), crop=N, subpixel="none")
    (x0, y0), (x1, y1) = pos.min(0).astype(int) - N // 2, pos.max(0).astype(int) + N // 2
    np.testing.assert_allclose(out[y0:y1, x0:x1], obj[y0:y1, x0:x1], rtol=1e-5)
    assert np.allclose(out[:, x1:], np.abs(out[y0:y1, x0:x1]).mean())   # outside: mean, phase 0


def test_several_exported_scans_train_together_as_separate_objects():
    sa, sb = (make_raw_scan(f"{k}.npz", "ptychopinn_npz", s.counts, s.positions_px,
                            unit="counts", probe=s.probe, bad_pixels=s.bad_pixels)
              for k, s in (("a", _scan(1, 30)), ("b", _scan(2, 25))))
    bad = np.zeros((N, N), bool)
    bad[3, 4] = True
    sb = make_raw_scan("b.npz", "ptychopinn_npz", sb.patterns, sb.positions_px, unit="counts",
                       probe=sb.probe, bad_pixels=bad)
    merged = merge_scans([sa.to_dataset(gridsize=2, N=N), sb.to_dataset(gridsize=2, N=N)])
    assert merged.n == 55 and set(merged.object_index.tolist()) == {0, 1}
    assert np.unique(merged.pattern_ids()).size == 55
    assert merged.bad_pixels[3, 4] and not merged.diffraction[:, :, 3, 4].any()


def test_a_written_product_is_centred_like_ptychodus_objects(tmp_path):
    scan = _scan(4, 60)
    _, product = write_ptychodus(tmp_path, scan, object_frame="scan")
    p = read_product(product)
    pos = metres_to_pixels(p["x_m"], p["y_m"], p["object_center_m"], p["object_pixel_m"],
                           p["object_shape"])
    assert frame_shape(pos, N) == p["object_shape"]
    (r0, c0), _ = scan_centred_window(scan.positions_px, N)
    np.testing.assert_allclose(pos, scan.positions_px - [c0, r0], atol=1e-6)
    np.testing.assert_array_equal(p["object"][5:-5, 5:-5],
                                  scan.object[r0 + 5:r0 + p["object_shape"][0] - 5,
                                              c0 + 5:c0 + p["object_shape"][1] - 5])



def _family():
    return (DataConfig(), ModelConfig(N=N, architecture="cnn", n_filters_scale=1),
            TrainingConfig())


def test_a_study_checkpoint_reads_with_the_default_inference_config(tmp_path):
    dc, mc, tc = _family()
    path = write_model_file(tmp_path / "m.ckpt", PtychoPINN_Lightning(mc, dc, tc),
                            InferenceConfig(stitch_crop=8))
    assert read_model_configs(path) == (dc, mc, tc, InferenceConfig(stitch_crop=8))
    ckpt = torch.load(path, weights_only=True)
    del ckpt["hyper_parameters"]["inference_config"]
    torch.save(ckpt, tmp_path / "study.ckpt")
    assert read_model_configs(tmp_path / "study.ckpt") == (dc, mc, tc, InferenceConfig())


def test_the_refine_plan_is_a_property_of_the_model_file(tmp_path, capsys):
    dc, mc, tc = _family()
    path = write_model_file(tmp_path / "m.ckpt", PtychoPINN_Lightning(mc, dc, tc),
                            InferenceConfig())
    assert PtychoPINN_Lightning.load_from_checkpoint(path).reconstruct_request == {}
    assert refine_main([str(path), "--refine", "lsqml", "--refine-epochs", "5",
                        "--output", str(tmp_path / "r.ckpt")]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{tmp_path / 'r.ckpt'}: reconstruction = the network's object, then 5 Pty-chi LSQML "
        "epochs from it (object only; the input probe and positions fixed)")
    loaded = PtychoPINN_Lightning.load_from_checkpoint(tmp_path / "r.ckpt")
    assert RefinePlan.of({"reconstruct": loaded.reconstruct_request}) == RefinePlan("lsqml", 5)
    assert torch.load(path, weights_only=True)["hyper_parameters"].get("reconstruct") is None
    assert refine_main([str(path), "--refine-epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("error: RefinePlan.refine_epochs=0 is out of "
                                               "range (allowed: 1..100000)")


def _loaded(ckpt):
    dc, mc, tc, ic = PtychoModel._extract_configs_from_checkpoint(str(ckpt))
    pm = PtychoModel(model_config=mc, data_config=dc, training_config=tc, inference_config=ic)
    pm.model = PtychoPINN_Lightning.load_from_checkpoint(ckpt, model_config=mc, data_config=dc,
                                                         training_config=tc,
                                                         inference_config=ic)
    return pm, ConfigManager.from_loaded_model(pm)


@pytest.mark.iterative
def test_a_refine_plan_polishes_the_network_object_with_lsqml(trained, tmp_path, require_ptychi,
                                                               caplog):
    scan, _, _, ckpt = trained
    pos = scan.positions_px
    size = np.ceil(pos.max(0) - pos.min(0) + N).astype(int)
    px = (pos - (pos.min(0) + pos.max(0)) / 2 + (size - 1) / 2)[:, ::-1]
    outs = {}
    for name, plan in (("network", None), ("refined", RefinePlan("lsqml", 3))):
        path = ckpt if plan is None else set_refine_plan(ckpt, plan, tmp_path / "r.ckpt")
        pm, cm = _loaded(path)
        loader = PtychoDataLoader.from_np(diff_patterns=scan.counts, probe=scan.probe,
                                          positions=px, config_manager=cm)
        with caplog.at_level("INFO"):
            outs[name] = InferenceEngine(config_manager=cm, ptycho_model=pm).predict_and_stitch(loader)
    assert "reconstruction = the network's object, then 3 Pty-chi LSQML epochs" in caplog.text
    assert outs["refined"].shape == outs["network"].shape == (size[1], size[0])
    assert np.isfinite(outs["refined"]).all()
    assert not np.allclose(outs["refined"], outs["network"])
