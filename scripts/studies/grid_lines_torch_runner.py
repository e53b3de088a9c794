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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho.config.config import (  # noqa: E402
    ARCHITECTURES, DEVICES, INPUT_TRANSFORMS, LOSSES, OPTIMIZERS, OUTPUT_MODES, SCHEDULERS, STRATEGIES,
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
    snapshot_every: int = _f(0, "every this many epochs, write a PNG of a few predicted test patches to "
                             "visuals/snapshots/<model_id>_epoch<k>.png (0: off)")
    infer_batch_size: int = _f(128, "test patterns moved to the device per inference batch")
    fno_modes: int = _f(12, "Fourier modes kept per axis by each spectral layer (<= N/2)")
    fno_width: int = _f(32, "channel width of the spectral blocks")
    fno_blocks: int = _f(4, "number of spectral (FNO) blocks")
    fno_cnn_blocks: int = _f(2, "convolutional refiner blocks (fno) / bottleneck blocks (hybrid)")
    n_filters_scale: int = _f(2, "width multiplier of the CNN baseline")
    generator_output_mode: str = _f("real_imag", "how the generator's two output channels are read",
                                    choices=OUTPUT_MODES)
    input_transform: str = _f("none", "compression of the scaled diffraction amplitudes before the generator "
                              "(sqrt or log1p lift the weak high-angle signal)", choices=INPUT_TRANSFORMS)
    device: str = _f("auto", "where to train and predict", choices=DEVICES)
    devices: int = _f(1, "number of devices (processes) to train on")
    strategy: str = _f("auto", "Lightning strategy; ddp for data-parallel training", choices=STRATEGIES)
    num_nodes: int = _f(1, "machines for multi-node DDP (SLURM or torchrun start the processes); "
                        "num_nodes x devices processes in all")
    num_threads: int = _f(0, "torch CPU threads (0: torch's default)")
    deterministic: bool = _f(True, "ask torch for deterministic algorithms (warn where unavailable)")
    progress_bar: bool = _f(True, "show Lightning's progress bar")
    overwrite: bool = _f(False, "replace a finished study (or discard an interrupted run) of the same "
                         "model in --output-dir")
    resume: bool = _f(False, "continue an interrupted study from its last checkpoint "
                      "(<output-dir>/.work/<model_id>/checkpoints/last.ckpt)")
    preset: str = _f("none", "starting values: quick (10-minute CPU study) or paper (published contract); "
                     "explicit flags override them", choices=PRESETS)

    def __post_init__(self) -> None:
        o = "TorchRunnerConfig"
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices:
                check_choice(o, f.name, getattr(self, f.name), choices)
        check_int(o, "object_size", self.object_size, 16, 8192)
        check_int(o, "n_lines", self.n_lines, 1, 100000)
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
        check_int(o, "num_nodes", self.num_nodes, 1, 1024)
        check_int(o, "snapshot_every", self.snapshot_every, 0, 100000)
        if self.num_nodes > 1 and self.strategy != "ddp":
            raise ValueError(f"{o}.num_nodes={self.num_nodes} needs strategy='ddp' "
                             f"(allowed with strategy={self.strategy!r}: 1)")
        for name in ("deterministic", "progress_bar", "overwrite", "resume"):
            check_bool(o, name, getattr(self, name))
        if (self.train_npz is None) != (self.test_npz is None):
            raise ValueError(f"{o}.train_npz and {o}.test_npz must be given together "
                             "(or neither, to simulate)")
        if not str(self.output_dir).strip():
            raise ValueError(f"{o}.output_dir is empty (allowed: a directory path)")
        self.canonical()  # model / training / inference validation
        if self.train_npz is None:
            self._check_simulation()

    def _check_simulation(self) -> None:
        """Refuse a simulated dataset that could not be trained on (before simulating)."""
        from ptycho.datagen.grid_lines import n_groups
        self.grid_lines_spec()  # GridLinesSpec's own rules (e.g. nphotons <= 1e15)
        n = n_groups(self.object_size, self.N, self.train_stride, self.gridsize) * self.n_train_objects
        if n < 2:
            raise ValueError(
                f"TorchRunnerConfig.train_stride={self.train_stride} gives {n} training pattern(s) "
                f"for object_size={self.object_size}, N={self.N}, n_train_objects="
                f"{self.n_train_objects} (allowed: settings giving >= 2 patterns, one for validation)")

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
    # Measured on the 2-core CPU (docs/studies.md): the hybrid improves most per step;
    # width 16 keeps it fast; amp_phase + log1p input learn the weak phase far faster.
    "quick": dict(architecture="hybrid", fno_width=16, fno_modes=12, fno_blocks=4,
                  fno_cnn_blocks=2, generator_output_mode="amp_phase", input_transform="log1p",
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
class StudyError(ValueError):
    """Refused input: one line for the user, exit code 2, nothing written."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`StudyError` (one line) instead of printing usage."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        raise StudyError(f"{message.splitlines()[0]} (run with --help to list the flags)")


def build_parser() -> argparse.ArgumentParser:
    """One flag per TorchRunnerConfig field; defaults are left out so presets can apply.

    Flags must be spelled out (no abbreviations); a bad flag or value raises
    :class:`StudyError` with one line.
    """
    p = _Parser(
        prog="grid_lines_torch_runner.py",
        description="Simulate, train, reconstruct and score a grid-lines ptychography study.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
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


def _unknown_arguments(extra: list[str], parser: argparse.ArgumentParser) -> StudyError:
    import difflib
    flags = sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))
    for tok in extra:
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            return StudyError(f"unknown flag {name!r}{hint} (allowed: the flags listed by --help, "
                              "one per TorchRunnerConfig field)")
    return StudyError(f"unexpected argument {extra[0]!r} (allowed: --flag VALUE pairs only; "
                      "see --help)")


def config_from_argv(argv=None) -> TorchRunnerConfig:
    """Parse CLI flags into a validated config; raises ValueError (one line) when refused."""
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:
        raise _unknown_arguments(extra, parser)
    ns = vars(ns)
    preset = ns.pop("preset", "none")
    return from_preset(preset, **ns)


def _flag_hint(message: str) -> str:
    """Append ``[flag --x]`` when the message names a TorchRunnerConfig field's value."""
    if "[flag --" in message:
        return message
    for f in fields(TorchRunnerConfig):
        if (f".{f.name}=" in message or f".{f.name} = " in message
                or message.startswith(f"{f.name}=")):
            flag = _flag(f.name)
            return message if flag in message else f"{message} [flag {flag}]"
    return message


# ------------------------------------------------------------------------- the study
# Runner fields that may differ between an interrupted run and its --resume (everything
# else must match: a changed learning rate, say, would be silently replaced by the
# optimizer state stored in the checkpoint). batch_size may change, e.g. after a training OOM.
RESUME_MAY_CHANGE = frozenset({
    "epochs", "max_train_minutes", "early_stopping_patience", "infer_batch_size", "batch_size",
    "device", "devices", "num_nodes", "strategy", "num_threads", "progress_bar", "overwrite",
    "resume", "preset", "output_dir", "cache_dir", "snapshot_every", "deterministic"})
_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def is_launch_rank_zero() -> bool:
    """False in the extra processes of a distributed launch (Lightning's DDP launcher,
    torchrun, SLURM and MPI set these variables); only rank 0 writes into the output
    directory."""
    for var in _RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) != 0:
            return False
    return True


def _check_dir_target(name: str, path: Path) -> None:
    """``path`` must be a directory or creatable as one (its nearest existing parent a
    writable directory). Writes nothing."""
    if path.exists() and not path.is_dir():
        raise StudyError(f"{name}={str(path)!r} is a file (allowed: a directory path) "
                         f"[flag {_flag(name)}]")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StudyError(f"{name}={str(path)!r} lies under {str(parent)!r}, which is a file "
                         f"(allowed: a directory path) [flag {_flag(name)}]")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StudyError(f"{name}={str(path)!r} is not writable ({str(parent)!r}) "
                         f"(allowed: a writable directory) [flag {_flag(name)}]")


def _last_checkpoint(layout) -> Path:
    return layout.work_dir / "checkpoints" / "last.ckpt"


def _check_resume(cfg: TorchRunnerConfig, layout) -> None:
    """Refuse --resume from an unreadable checkpoint or with changed training settings."""
    from ptycho_torch.training import read_checkpoint_epoch
    last = _last_checkpoint(layout)
    try:
        read_checkpoint_epoch(last)
    except ValueError as err:
        raise StudyError(f"cannot resume: {err}; drop --resume and pass --overwrite to start "
                         "over") from None
    saved_path = layout.work_dir / "runner_config.json"
    try:
        saved = json.loads(saved_path.read_text())["runner"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing to compare with (older run); Lightning checks the weights' shapes
    now = asdict(cfg)
    changed = [k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k]]
    if changed:
        k = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise StudyError(f"cannot resume: {k}={now[k]!r} but the interrupted run used "
                         f"{k}={saved[k]!r}{more} (allowed: the interrupted run's value; or drop "
                         f"--resume and pass --overwrite to start over) [flag {_flag(k)}]")


def _prepare_output(cfg: TorchRunnerConfig):
    """Check the output directory and the resume state. Writes nothing.

    Every rank of a distributed launch runs the same read-only checks (so a refusal stops
    all of them alike); only rank 0 writes, later, in :func:`_start_work`.
    """
    from ptycho.artifacts import StudyLayout
    out = Path(cfg.output_dir)
    _check_dir_target("output_dir", out)
    if cfg.cache_dir:
        _check_dir_target("cache_dir", Path(cfg.cache_dir))
    layout = StudyLayout(out, cfg.model_id)
    if layout.is_finished() and not cfg.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a finished study of "
                         f"{cfg.model_id} ({layout.metrics_path}); pass --overwrite to replace it "
                         "or choose another --output-dir")
    last = _last_checkpoint(layout)
    if last.exists() and not cfg.resume and not cfg.overwrite:
        try:
            from ptycho_torch.training import read_checkpoint_epoch
            where = f"checkpoint after epoch {read_checkpoint_epoch(last) + 1}: {last}"
        except ValueError:
            where = f"unreadable checkpoint {last}"
        raise StudyError(f"output_dir={str(out)!r} holds an interrupted run of {cfg.model_id} "
                         f"({where}); pass --resume to continue it or --overwrite to start over")
    if cfg.resume and last.exists():
        _check_resume(cfg, layout)
    return layout


def _load_data(cfg: TorchRunnerConfig):
    """Simulate (or reuse) and load both splits, validated against --N and --gridsize.

    With --train-npz/--test-npz nothing is written; a simulated dataset is written to the
    cache (``<output_dir>/datasets`` by default) before it is loaded.
    """
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
    try:
        train = load_dataset(train_path, expect_N=cfg.N, expect_gridsize=cfg.gridsize)
    except ValueError as err:
        raise StudyError(f"{err} [flag --train-npz]" if cfg.train_npz else str(err)) from None
    try:
        test = load_dataset(test_path, expect_N=cfg.N, expect_gridsize=cfg.gridsize,
                            require_ground_truth=True)
    except ValueError as err:
        raise StudyError(f"{err} [flag --test-npz]" if cfg.test_npz else str(err)) from None
    return train, test, {"train_npz": str(train_path), "test_npz": str(test_path), "cached": cached}


def _check_data(cfg: TorchRunnerConfig, train: dict, test: dict) -> tuple[float, float]:
    """Every data check that training, stitching and scoring would otherwise hit late.

    Returns ``(input_scale, photon_scale)``. Raises StudyError (one line) naming the file
    and key.
    """
    import numpy as np

    from ptycho.stitching import clip_to_region, grid_region
    from ptycho_torch.data import input_scale_from, split_indices
    from ptycho_torch.study import object0_selection, scan_geometry

    def bad(ds, key, what, expected, flag):
        hint = f" [flag {flag}]" if cfg.train_npz else ""
        return StudyError(f"dataset '{ds['path']}': key '{key}' {what} (expected {expected}){hint}")

    n = train["diffraction"].shape[0]
    if n < 2:
        raise bad(train, "diffraction", f"has {n} pattern(s)",
                  "at least 2: one is held out for validation", "--train-npz")
    split_indices(n, cfg.val_fraction, cfg.seed, cfg.max_train_patterns)
    try:
        input_scale = input_scale_from(train["diffraction"])
    except ValueError:
        raise bad(train, "diffraction", "is all zeros", "some positive amplitudes",
                  "--train-npz") from None
    if not float(np.sum(np.abs(train["probeGuess"]) ** 2)) > 0:
        raise bad(train, "probeGuess", "is all zeros", "a probe with nonzero intensity",
                  "--train-npz")
    photon_scale = (train.get("metadata") or {}).get("scale", 1.0)
    if isinstance(photon_scale, bool) or not isinstance(photon_scale, (int, float)) \
            or not np.isfinite(photon_scale) or photon_scale <= 0:
        raise bad(train, "_metadata", f"has scale={photon_scale!r}",
                  "a positive number (the simulation scale s), or no 'scale' entry",
                  "--train-npz")
    # test object 0 must stitch and be scored exactly as after training
    try:
        sel = object0_selection(test)
        n_side, stride = scan_geometry(test, cfg.test_stride)
    except ValueError as err:
        raise StudyError(f"{err}{' [flag --test-npz]' if cfg.test_npz else ''}") from None
    g = int(test["gridsize"])
    if (n_side - g + 1) ** 2 != sel.size:
        raise bad(test, "_metadata", f"has n_side={n_side}, which gives {(n_side - g + 1) ** 2} "
                  f"patterns, but test object 0 has {sel.size}",
                  "n_side consistent with the scan of object 0", "--test-npz")
    if not 1 <= stride <= cfg.N:
        raise bad(test, "_metadata", f"has stride={stride}", f"1..N = 1..{cfg.N}", "--test-npz")
    region = grid_region(cfg.N, stride, n_side)
    try:
        clip_to_region(test["YY_ground_truth"], region)
    except ValueError:
        raise bad(test, "YY_ground_truth", f"has shape {test['YY_ground_truth'].shape}, too small "
                  f"for the stitched region {region} (row0, col0, height, width)",
                  "an object covering the scan of test object 0", "--test-npz") from None
    return input_scale, float(photon_scale)


def _check_device(cfg: TorchRunnerConfig) -> str:
    import torch

    from ptycho_torch.training import resolve_accelerator
    accelerator = resolve_accelerator(cfg.device)
    if accelerator == "cuda" and cfg.devices > torch.cuda.device_count():
        raise StudyError(f"TorchRunnerConfig.devices={cfg.devices} but {torch.cuda.device_count()} "
                         f"CUDA device(s) are visible (allowed: 1..{torch.cuda.device_count()} "
                         "per node) [flag --devices]")
    return accelerator


def _start_work(cfg: TorchRunnerConfig, layout) -> None:
    """First writes into output_dir (rank 0 only): reset or keep the training state."""
    from ptycho.artifacts import write_json_atomic
    if cfg.overwrite and layout.is_finished():
        layout.metrics_path.unlink()  # the old study no longer counts as finished
    keep = cfg.resume and _last_checkpoint(layout).exists()
    if not keep:
        if cfg.resume:
            log.info("--resume: no checkpoint under %s; starting from scratch", layout.work_dir)
        if layout.work_dir.exists():
            shutil.rmtree(layout.work_dir)  # a stale run without a checkpoint, or --overwrite
        for old in (layout.visuals_dir / "snapshots").glob(f"{cfg.model_id}_epoch*.png"):
            old.unlink()
    else:  # a checkpoint write cut short by a kill leaves its temporary file behind
        for stale in (layout.work_dir / "checkpoints").glob(".*.tmp-*"):
            stale.unlink()
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    saved = layout.work_dir / "runner_config.json"
    if not keep or not saved.exists():
        write_json_atomic(saved, {"runner": asdict(cfg)})


def run_grid_lines_torch(cfg: TorchRunnerConfig) -> dict:
    """Run one study; returns the metrics dict that is also written to metrics.json.

    Every check (config, output directory, resume state, device, both datasets, the
    stitching geometry) runs before anything is written into ``output_dir`` (except the
    simulated-dataset cache, which is only written for data that pass those checks by
    construction); a refusal raises :class:`StudyError`. In a distributed launch only
    global rank 0 writes; the other ranks return ``{}`` after training.
    """
    import torch

    from ptycho.artifacts import copy_atomic, write_json_atomic
    from ptycho.plotting import save_study_figures
    from ptycho_torch.config_factory import create_training_payload
    from ptycho_torch.generators import count_parameters
    from ptycho_torch.study import reconstruct_test_object, save_reconstruction, score
    from ptycho_torch.training import fit_model

    t_start = time.perf_counter()
    rank_zero = is_launch_rank_zero()
    try:
        layout = _prepare_output(cfg)
        accelerator = _check_device(cfg)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:  # cuBLAS reads it when its first handle is created
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        t0 = time.perf_counter()
        train, test, data_info = _load_data(cfg)
        data_time = time.perf_counter() - t0
        input_scale, photon_scale = _check_data(cfg, train, test)
        payload = create_training_payload(cfg.canonical(), overrides={
            "input_scale": input_scale, "photon_scale": photon_scale})
    except StudyError:
        raise
    except ValueError as err:
        raise StudyError(_flag_hint(str(err).splitlines()[0])) from None
    probe = train["probeGuess"]

    # ---- first write into output_dir (besides the simulated-dataset cache) ----
    if rank_zero:
        _start_work(cfg, layout)
    callbacks = []
    if cfg.snapshot_every:
        from ptycho_torch.snapshots import SnapshotCallback
        callbacks.append(SnapshotCallback(test, layout.visuals_dir / "snapshots", cfg.model_id,
                                          cfg.snapshot_every))
    try:
        fit = fit_model(payload, train, probe, layout.work_dir, resume=cfg.resume,
                        max_minutes=cfg.max_train_minutes, progress_bar=cfg.progress_bar,
                        extra_callbacks=callbacks, num_nodes=cfg.num_nodes)
    except (KeyboardInterrupt, SystemExit):
        log.error("training interrupted: no metrics.json written; continue with --resume")
        raise
    if not fit.extra.get("is_global_zero", True):
        return {}
    if fit.interrupted:
        raise KeyboardInterrupt
    model = fit.model
    device = torch.device(accelerator)
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
    ckpt = fit.checkpoint if fit.checkpoint is not None else _last_checkpoint(layout)
    if Path(ckpt).exists():
        copy_atomic(ckpt, layout.run_dir / "model.ckpt")
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
        "stop_reason": fit.extra.get("stop_reason"),
        "resumed_from_epoch": fit.extra.get("resumed_from_epoch"),
        "world_size": fit.extra.get("world_size", 1),
        "n_train_patterns": fit.n_train, "n_val_patterns": fit.n_val,
        "n_test_patterns_scored": rec.n_patterns,
        "region": list(rec.region),
        "train_time_s": fit.train_time_s,
        "train_patterns_per_s": n_train_seen / max(fit.train_time_s, 1e-9),
        "inference_time_s": rec.inference_time_s,
        "inference_patterns_per_s": rec.n_patterns / max(rec.inference_time_s, 1e-9),
        "infer_batch_size_used": rec.infer_batch_size,
        "stitch_time_s": rec.stitch_time_s,
        "data_time_s": data_time,
        "total_time_s": time.perf_counter() - t_start,
        "final_train_loss": (fit.history.get("train_loss") or [float("nan")])[-1],
        "final_val_loss": (fit.history.get("val_loss") or [float("nan")])[-1],
        "device": str(device), "torch_version": torch.__version__,
        "figures": [str(p) for p in figures],
        "snapshots": [str(p) for p in callbacks[0].written] if callbacks else [],
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


def _refuse(err: BaseException) -> int:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"error: {_flag_hint(msg)}", file=sys.stderr)
    return 2


def _configure_logging() -> None:
    """INFO messages of this project on stderr; Lightning keeps its own single handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("grid_lines_torch_runner", "ptycho", "ptycho_torch"):
        lg = logging.getLogger(name)
        if not lg.handlers:
            lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False


def main(argv=None) -> int:
    """CLI entry point. Exit codes: 0 done; 2 refused input (one ``error:`` line on
    stderr, nothing written); 130 interrupted (resume with --resume)."""
    _configure_logging()
    try:
        cfg = config_from_argv(argv)
    except ValueError as err:
        return _refuse(err)
    try:
        metrics = run_grid_lines_torch(cfg)
    except StudyError as err:
        return _refuse(err)
    except KeyboardInterrupt:
        print("error: interrupted; resume with --resume", file=sys.stderr)
        return 130
    if metrics:
        print(summary_table(metrics))
        print(f"artifacts: {Path(cfg.output_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
