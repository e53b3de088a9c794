#!/usr/bin/env python
"""Grid-lines ptychography study, end to end, in PyTorch.

    python scripts/studies/grid_lines_torch_runner.py --fno-width 64
    python scripts/studies/grid_lines_torch_runner.py --preset quick

Simulates (or loads) the grid-lines dataset, builds the generator named by
``--architecture`` from the config hyperparameters, trains it unsupervised through the
differentiable far-field model with Lightning, predicts the test scan in batches with
``forward_predict``, stitches test object 0, scores amplitude and phase against the
ground truth and writes JSON, NPZ and PNG artifacts under ``--output-dir``.

Every CLI flag is generated from a field of :class:`TorchRunnerConfig`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho.config.config import (  # noqa: E402
    ARCHITECTURES, DEVICES, LOSSES, OPTIMIZERS, OUTPUT_MODES, SCHEDULERS, STRATEGIES,
    CanonicalConfig, InferenceConfig, ModelConfig, TrainingConfig,
)
from ptycho.config.validation import check_bool, check_choice, check_float, check_int  # noqa: E402

PRESETS = ("none", "quick", "paper")
log = logging.getLogger("grid_lines_torch_runner")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TorchRunnerConfig:
    """Every knob of one grid-lines study. Validated on construction."""

    architecture: str = _f("hybrid", "generator architecture", choices=ARCHITECTURES)
    output_dir: str = _f("outputs/grid_lines_torch", "directory that receives runs/, recons/ and visuals/")
    train_npz: Optional[str] = _f(None, "training NPZ to use instead of simulating (needs --test-npz too)")
    test_npz: Optional[str] = _f(None, "test NPZ (with YY_ground_truth) to use instead of simulating")
    cache_dir: Optional[str] = _f(None, "where simulated datasets are cached (default: <output-dir>/datasets)")
    N: int = _f(64, "diffraction pattern / object patch size in pixels (16, 32, 64, 128 or 256)")
    gridsize: int = _f(1, "patches per group per side: 1, or 2 for the real-space overlap constraint (C=4)")
    object_size: int = _f(392, "side of each simulated square object in pixels")
    n_lines: int = _f(400, "random line segments drawn per simulated object")
    n_train_objects: int = _f(2, "number of simulated training objects")
    n_test_objects: int = _f(2, "number of simulated test objects (object 0 is scored)")
    train_stride: int = _f(4, "scan step in pixels on training objects")
    test_stride: int = _f(10, "scan step in pixels on test objects (also the stitched tile size)")
    nphotons: float = _f(1e9, "mean photons per diffraction pattern (Poisson noise level)")
    train_seed: int = _f(1, "random seed of the simulated training objects and their noise")
    test_seed: int = _f(2, "random seed of the simulated test objects and their noise")
    seed: int = _f(42, "random seed of weights, data split and shuffling")
    epochs: int = _f(50, "maximum training epochs")
    max_train_minutes: float = _f(0.0, "stop training after this many minutes (0: no limit)")
    batch_size: int = _f(16, "training batch size")
    learning_rate: float = _f(1e-3, "initial learning rate")
    optimizer: str = _f("adam", "optimizer", choices=OPTIMIZERS)
    weight_decay: float = _f(0.0, "weight decay of the optimizer")
    scheduler: str = _f("plateau", "LR schedule: ReduceLROnPlateau on the validation loss, or none",
                        choices=SCHEDULERS)
    plateau_factor: float = _f(0.5, "LR multiplier when the validation loss plateaus")
    plateau_patience: int = _f(2, "epochs without improvement before the LR is reduced")
    min_lr: float = _f(1e-4, "lower bound of the learning rate under the plateau schedule")
    loss: str = _f("mae", "training loss: normalized amplitude MAE or Poisson NLL", choices=LOSSES)
    val_fraction: float = _f(0.05, "fraction of training patterns held out for validation")
    max_train_patterns: int = _f(0, "use at most this many training patterns (0: all)")
    early_stopping_patience: int = _f(0, "stop after this many epochs without validation improvement (0: off)")
    infer_batch_size: int = _f(128, "test patterns moved to the device per inference batch")
    fno_modes: int = _f(12, "Fourier modes kept per axis by each spectral layer (<= N/2)")
    fno_width: int = _f(32, "channel width of the spectral blocks")
    fno_blocks: int = _f(4, "number of spectral (FNO) blocks")
    fno_cnn_blocks: int = _f(2, "convolutional refiner blocks (fno) / bottleneck blocks (hybrid)")
    n_filters_scale: int = _f(2, "width multiplier of the CNN baseline")
    generator_output_mode: str = _f("real_imag", "how the generator's two output channels are read",
                                    choices=OUTPUT_MODES)
    device: str = _f("auto", "where to train and predict", choices=DEVICES)
    devices: int = _f(1, "number of devices (processes) to train on")
    strategy: str = _f("auto", "Lightning strategy; ddp for data-parallel training", choices=STRATEGIES)
    num_threads: int = _f(0, "torch CPU threads (0: torch's default)")
    deterministic: bool = _f(True, "ask torch for deterministic algorithms (warn where unavailable)")
    progress_bar: bool = _f(True, "show Lightning's progress bar")
    overwrite: bool = _f(False, "replace a finished study of the same model in --output-dir")
    resume: bool = _f(False, "continue an interrupted study from its last checkpoint")
    preset: str = _f("none", "starting values: quick (10-minute CPU study) or paper (published contract); "
                     "explicit flags override them", choices=PRESETS)

    def __post_init__(self) -> None:
        o = "TorchRunnerConfig"
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices:
                check_choice(o, f.name, getattr(self, f.name), choices)
        check_int(o, "object_size", self.object_size, 16, 8192)
        check_int(o, "n_lines", self.n_lines, 0, 100000)
        check_int(o, "n_train_objects", self.n_train_objects, 1, 64)
        check_int(o, "n_test_objects", self.n_test_objects, 1, 64)
        check_int(o, "train_stride", self.train_stride, 1, 1024)
        check_int(o, "test_stride", self.test_stride, 1, 1024)
        if self.test_stride > self.N:
            raise ValueError(f"{o}.test_stride={self.test_stride} exceeds N={self.N} "
                             f"(allowed: 1..{self.N}; stitched tiles are test_stride wide)")
        if self.object_size < self.N:
            raise ValueError(f"{o}.object_size={self.object_size} is smaller than N={self.N} "
                             f"(allowed: >= {self.N})")
        check_int(o, "train_seed", self.train_seed, 0, 2**32 - 1)
        check_int(o, "test_seed", self.test_seed, 0, 2**32 - 1)
        check_float(o, "max_train_minutes", self.max_train_minutes, 0.0, 1e6)
        check_int(o, "num_threads", self.num_threads, 0, 1024)
        for name in ("deterministic", "progress_bar", "overwrite", "resume"):
            check_bool(o, name, getattr(self, name))
        if (self.train_npz is None) != (self.test_npz is None):
            raise ValueError(f"{o}.train_npz and {o}.test_npz must be given together "
                             "(or neither, to simulate)")
        if not str(self.output_dir).strip():
            raise ValueError(f"{o}.output_dir is empty (allowed: a directory path)")
        self.canonical()  # model / training / inference validation

    @property
    def model_id(self) -> str:
        return f"pinn_{self.architecture}"

    def canonical(self) -> CanonicalConfig:
        """The canonical configs this runner config resolves to."""
        def pick(cls):
            return cls(**{f.name: getattr(self, f.name) for f in fields(cls) if hasattr(self, f.name)})
        return CanonicalConfig(model=pick(ModelConfig), training=pick(TrainingConfig),
                               inference=pick(InferenceConfig))

    def overrides(self) -> dict:
        """Flat canonical overrides for ``create_training_payload`` (every shared field)."""
        c = self.canonical()
        return {**asdict(c.model), **asdict(c.training), **asdict(c.inference)}

    def grid_lines_spec(self):
        from ptycho.datagen.grid_lines import GridLinesSpec
        return GridLinesSpec(object_size=self.object_size, N=self.N, gridsize=self.gridsize,
                             n_lines=self.n_lines, train_stride=self.train_stride,
                             test_stride=self.test_stride, n_train_objects=self.n_train_objects,
                             n_test_objects=self.n_test_objects, nphotons=self.nphotons,
                             train_seed=self.train_seed, test_seed=self.test_seed)


# Preset values; explicit CLI flags (or keyword arguments to ``from_preset``) win.
PRESET_VALUES = {
    "none": {},
    "quick": dict(architecture="fno", fno_width=16, fno_modes=12, fno_blocks=4, fno_cnn_blocks=2,
                  learning_rate=2e-3, min_lr=2e-4, epochs=100, max_train_minutes=8.0,
                  batch_size=16, infer_batch_size=64, output_dir="outputs/grid_lines_quick"),
    "paper": dict(architecture="hybrid", N=128, epochs=40, learning_rate=2e-4, scheduler="plateau",
                  plateau_factor=0.5, plateau_patience=2, min_lr=1e-4, seed=3, batch_size=16,
                  fno_modes=12, fno_width=32, fno_blocks=4, fno_cnn_blocks=2, loss="mae",
                  generator_output_mode="real_imag", output_dir="outputs/grid_lines_paper"),
}


def from_preset(preset: str = "none", **explicit) -> TorchRunnerConfig:
    """Config from a preset with ``explicit`` values on top."""
    check_choice("TorchRunnerConfig", "preset", preset, PRESETS)
    return TorchRunnerConfig(**{**PRESET_VALUES[preset], **explicit, "preset": preset})


# ----------------------------------------------------------------------------- CLI
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """One flag per TorchRunnerConfig field; defaults are left out so presets can apply."""
    p = argparse.ArgumentParser(
        prog="grid_lines_torch_runner.py",
        description="Simulate, train, reconstruct and score a grid-lines ptychography study.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = TorchRunnerConfig()
    for f in fields(TorchRunnerConfig):
        kw = dict(dest=f.name, default=argparse.SUPPRESS,
                  help=f"{f.metadata['help']} (default: {getattr(defaults, f.name)!r})")
        if f.type in ("bool", bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = {"int": int, "float": float}.get(str(f.type), str)
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            kw["metavar"] = f.name.upper() if "choices" not in f.metadata else None
        p.add_argument(_flag(f.name), **kw)
    return p


def config_from_argv(argv=None) -> TorchRunnerConfig:
    ns = vars(build_parser().parse_args(argv))
    preset = ns.pop("preset", "none")
    return from_preset(preset, **ns)


def _flag_hint(message: str) -> str:
    for f in fields(TorchRunnerConfig):
        if f".{f.name}=" in message or message.startswith(f"{f.name}="):
            return f"{message} [flag {_flag(f.name)}]"
    return message


# ------------------------------------------------------------------------- the study
class StudyError(ValueError):
    """Refused input: one line for the user, exit code 2."""


def _prepare_output(cfg: TorchRunnerConfig):
    from ptycho.artifacts import StudyLayout
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise StudyError(f"output_dir={str(out)!r} is a file (allowed: a directory path) "
                         "[flag --output-dir]")
    layout = StudyLayout(out, cfg.model_id)
    if layout.is_finished() and not cfg.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a finished study of "
                         f"{cfg.model_id} ({layout.metrics_path}); pass --overwrite to replace it "
                         "or choose another --output-dir")
    return layout


def _load_data(cfg: TorchRunnerConfig):
    from ptycho.datagen.grid_lines import simulate_grid_lines
    from ptycho.io import load_dataset
    if cfg.train_npz is not None:
        train_path, test_path = Path(cfg.train_npz), Path(cfg.test_npz)
        cached = None
    else:
        cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.output_dir) / "datasets"
        t0 = time.perf_counter()
        paths = simulate_grid_lines(cfg.grid_lines_spec(), cache)
        train_path, test_path, cached = paths.train, paths.test, paths.cached
        log.info("dataset %s in %.1f s: %s", "reused" if cached else "simulated",
                 time.perf_counter() - t0, train_path.parent)
    train = load_dataset(train_path, expect_N=cfg.N, expect_gridsize=cfg.gridsize)
    test = load_dataset(test_path, expect_N=cfg.N, expect_gridsize=cfg.gridsize,
                        require_ground_truth=True)
    return train, test, {"train_npz": str(train_path), "test_npz": str(test_path), "cached": cached}


def run_grid_lines_torch(cfg: TorchRunnerConfig) -> dict:
    """Run one study; returns the metrics dict that is also written to metrics.json."""
    import numpy as np
    import torch

    from ptycho.artifacts import copy_atomic, write_json_atomic
    from ptycho.plotting import save_study_figures
    from ptycho_torch.config_factory import create_training_payload
    from ptycho_torch.data import input_scale_from
    from ptycho_torch.generators import count_parameters
    from ptycho_torch.study import reconstruct_test_object, save_reconstruction, score
    from ptycho_torch.training import fit_model, resolve_accelerator

    t_start = time.perf_counter()
    layout = _prepare_output(cfg)
    resolve_accelerator(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    t0 = time.perf_counter()
    train, test, data_info = _load_data(cfg)
    data_time = time.perf_counter() - t0
    probe = train["probeGuess"]
    input_scale = input_scale_from(train["diffraction"])
    photon_scale = float((train.get("metadata") or {}).get("scale", 1.0))
    payload = create_training_payload(cfg.canonical(), overrides={
        "input_scale": input_scale, "photon_scale": photon_scale})

    if cfg.overwrite and layout.is_finished():
        layout.metrics_path.unlink()  # the old study no longer counts as finished
        if not cfg.resume and layout.work_dir.exists():
            shutil.rmtree(layout.work_dir)
    if not cfg.resume and layout.work_dir.exists():
        shutil.rmtree(layout.work_dir)  # a stale interrupted run: start fresh
    layout.work_dir.mkdir(parents=True, exist_ok=True)

    fit = fit_model(payload, train, probe, layout.work_dir, resume=cfg.resume,
                    max_minutes=cfg.max_train_minutes, progress_bar=cfg.progress_bar)
    if not fit.extra.get("is_global_zero", True):
        return {}
    model = fit.model
    device = torch.device(resolve_accelerator(cfg.device))
    model.to(device)
    rec = reconstruct_test_object(model, test, cfg.infer_batch_size, cfg.test_stride)
    result, (amp, amp_gt, ph, ph_gt) = score(rec)
    n_params = count_parameters(model.generator)

    write_json_atomic(layout.run_dir / "config.json", {
        "runner": asdict(cfg), "canonical": payload.canonical.to_dict(),
        "torch": {"model": payload.model_config.to_dict(), "data": payload.data_config.to_dict(),
                  "training": payload.training_config.to_dict()},
        "data": data_info})
    write_json_atomic(layout.run_dir / "history.json", fit.history)
    if fit.checkpoint is not None and Path(fit.checkpoint).exists():
        copy_atomic(fit.checkpoint, layout.run_dir / "model.ckpt")
    save_reconstruction(layout.recon_dir / "recon.npz", rec)
    figures = save_study_figures(layout.visuals_dir, cfg.model_id, amp_gt, ph_gt, amp, ph,
                                 result["frc"], title=f"{cfg.model_id}: test object 0")
    n_train_seen = fit.n_train * max(len(fit.history.get("epoch", [])), 1)
    metrics = {
        "model_id": cfg.model_id, "architecture": cfg.architecture,
        "metrics": result["metrics"],
        "phase_correlation": result["phase_correlation"],
        "phase_strength_ratio": result["phase_strength_ratio"],
        "frc": result["frc"],
        "n_parameters": n_params,
        "epochs_completed": len(fit.history.get("epoch", [])),
        "n_train_patterns": fit.n_train, "n_val_patterns": fit.n_val,
        "n_test_patterns_scored": rec.n_patterns,
        "region": list(rec.region),
        "train_time_s": fit.train_time_s,
        "train_patterns_per_s": n_train_seen / max(fit.train_time_s, 1e-9),
        "inference_time_s": rec.inference_time_s,
        "inference_patterns_per_s": rec.n_patterns / max(rec.inference_time_s, 1e-9),
        "stitch_time_s": rec.stitch_time_s,
        "data_time_s": data_time,
        "total_time_s": time.perf_counter() - t_start,
        "final_train_loss": (fit.history.get("train_loss") or [float("nan")])[-1],
        "final_val_loss": (fit.history.get("val_loss") or [float("nan")])[-1],
        "device": str(device), "torch_version": torch.__version__,
        "figures": [str(p) for p in figures],
        "input_scale": input_scale,
    }
    write_json_atomic(layout.metrics_path, metrics)  # written last: marks the study finished
    return metrics


def summary_table(m: dict) -> str:
    rows = [f"| {m['model_id']} | amplitude | phase |", "|---|---|---|"]
    for key in ("ssim", "psnr", "mae", "frc50"):
        a, p = m["metrics"][key]
        rows.append(f"| {key} | {a:.4g} | {p:.4g} |")
    rows.append(f"| phase correlation | | {m['phase_correlation']:.3f} |")
    rows.append(f"| phase strength ratio | | {m['phase_strength_ratio']:.3f} |")
    rows.append(f"\nparameters {m['n_parameters']:,}; epochs {m['epochs_completed']}; "
                f"train {m['train_time_s']:.0f} s; inference {m['inference_time_s']:.1f} s; "
                f"total {m['total_time_s']:.0f} s")
    return "\n".join(rows)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = config_from_argv(argv)
        metrics = run_grid_lines_torch(cfg)
    except (ValueError, FileNotFoundError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {_flag_hint(msg)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; resume with --resume", file=sys.stderr)
        return 130
    if metrics:
        print(summary_table(metrics))
        print(f"artifacts: {Path(cfg.output_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
