"""The reference study's quality gate, in one place.

Contract: the Hybrid at N=128, gridsize 1, trained 5 epochs (seed 3) on ONE simulated
training object of 4 489 patterns (object 392 px, scan step 4 px: 67 x 67 positions), lr
2e-4 with the plateau schedule (factor 0.5, patience 2, min 1e-4), MAE loss, FNO
12/32/4/2, batch 16, ``real_imag`` output: the paper preset with ``epochs=5,
n_train_objects=1``. Test object 0, scored by the study, must reach amplitude SSIM >=
:data:`AMP_SSIM_MIN` and phase SSIM >= :data:`PHASE_SSIM_MIN`.

* :func:`quality_gate_config` builds the study config (and checks the paper preset still
  gives :data:`GATE_CONTRACT`); ``tests/ptycho_torch/studies/test_quality_gate.py`` (``-m slow``) and
  ``scripts/benchmarks/gpu_check.sh`` run it.
* ``python -m ptycho_torch.studies.quality_gate [--device cuda] [--output-dir DIR] [--overwrite]``
  runs the study, prints both SSIMs and PASS/FAIL, writes ``quality_gate.json`` and exits
  0 (PASS), 1 (FAIL) or 2 (refused input). Any study flag overrides the contract (e.g.
  ``--epochs 1 --max-train-patterns 64`` to try the code path); the verdict then says the
  run was not the contract.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ptycho.artifacts import write_json_atomic
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.cli import parse_known
from ptycho.config.presets import from_preset
from ptycho.config.study_config import NO_EFFECT_ON_RESULT, StudyConfig
from ptycho_torch.cli import parse_and_run_study

AMP_SSIM_MIN = 0.84
PHASE_SSIM_MIN = 0.94
GATE_PATTERNS = 67 * 67  # one training object: (392 - 128) / 4 + 1 = 67 positions per side
DEFAULT_OUTPUT_DIR = "outputs/quality_gate"

# what the gate's numbers depend on (flat StudyConfig values); the paper preset must give them
GATE_CONTRACT = dict(
    architecture="hybrid", N=128, gridsize=1, epochs=5, seed=3, n_train_objects=1,
    object_size=392, train_stride=4, learning_rate=2e-4, scheduler="plateau",
    plateau_factor=0.5, plateau_patience=2, min_lr=1e-4, loss="mae", fno_modes=12,
    fno_width=32, fno_blocks=4, fno_cnn_blocks=2, batch_size=16,
    generator_output_mode="real_imag", max_train_patterns=0, max_steps=0,
    max_train_minutes=0.0, early_stopping_patience=0, weight_average="none",
    gradient_clip_val=0.0)
# explicit on top of the paper preset; the rest of the contract comes from the preset
GATE_EXPLICIT = dict(epochs=5, n_train_objects=1, object_size=392, train_stride=4, gridsize=1)
# settings that may differ without leaving the contract (where it runs and writes)
MAY_DIFFER = NO_EFFECT_ON_RESULT | frozenset({"device", "infer_batch_size", "deterministic"})
# the probe the data are simulated with: the reference's contract used an experimental probe
# (not public), so the gate takes any probe file; the verdict names the probe it ran with
PROBE_SETTINGS = ("probe_npz", "probe_scale_mode", "probe_smoothing_sigma")


def quality_gate_config(output_dir=DEFAULT_OUTPUT_DIR, **overrides) -> StudyConfig:
    """The gate's study config (``from_preset("paper", epochs=5, n_train_objects=1, ...)``)
    writing into ``output_dir``; flat ``overrides`` on top. Raises RuntimeError when the
    paper preset no longer gives :data:`GATE_CONTRACT`."""
    cfg = from_preset("paper", **{**GATE_EXPLICIT, "output_dir": str(output_dir),
                                  "progress_bar": False})
    flat = cfg.flat()
    drift = {k: (flat[k], v) for k, v in GATE_CONTRACT.items() if flat[k] != v}
    if drift:
        k, (got, want) = next(iter(drift.items()))
        raise RuntimeError(f"the paper preset gives {k}={got!r} but the quality gate's contract "
                           f"is {k}={want!r}: update GATE_CONTRACT or the preset")
    return cfg.replace(**overrides) if overrides else cfg


def contract_differences(cfg: StudyConfig) -> dict:
    """``{field: value}`` of ``cfg`` that differ from the gate's config (where it runs and
    writes excepted); empty for the contract."""
    gate = quality_gate_config(cfg.run.output_dir).flat()
    return {k: v for k, v in cfg.flat().items()
            if k not in MAY_DIFFER and k not in PROBE_SETTINGS and gate[k] != v}


def probe_description(cfg: StudyConfig) -> str:
    """The probe the gate's data were simulated with, in words."""
    if not cfg.run.probe_npz:
        return "the synthetic defocused aperture"
    return (f"{cfg.run.probe_npz} ({cfg.run.probe_scale_mode}, smoothing "
            f"{cfg.run.probe_smoothing_sigma:g} px)")


def verdict(metrics: dict) -> tuple[float, float, bool]:
    """``(amplitude SSIM, phase SSIM, passed)`` from a study's metrics.json content."""
    ssim = metrics.get("ssim") or [float("nan"), float("nan")]
    amp, phase = float(ssim[0]), float(ssim[1])
    return amp, phase, bool(amp >= AMP_SSIM_MIN and phase >= PHASE_SSIM_MIN)


def build_parser(prog: str = "quality_gate"):
    return build_config_parser(
        prog, "Run the reference study's quality gate (Hybrid, N=128, 5 epochs on one object "
        f"of {GATE_PATTERNS} patterns) and check amplitude SSIM >= {AMP_SSIM_MIN} and phase "
        f"SSIM >= {PHASE_SSIM_MIN}. Study flags override the contract (the verdict then says "
        "so).", exclude=("preset",), config_flag=False)


def config_from_argv(argv=None, prog: str = "quality_gate") -> StudyConfig:
    values = parse_known(build_parser(prog), argv)
    return quality_gate_config(values.pop("output_dir", DEFAULT_OUTPUT_DIR), **values)


def main(argv=None, prog: str = "quality_gate") -> int:
    """Exit codes: 0 PASS; 1 FAIL; 2 refused input (one ``error:`` line on stderr); 130
    interrupted."""
    code, cfg, metrics = parse_and_run_study(argv, prog, parse=config_from_argv)
    if code or not metrics:  # refused, interrupted, or an extra rank of a distributed launch
        return code
    amp, phase, passed = verdict(metrics)
    differences = contract_differences(cfg)
    note = "" if not differences else " (overridden: " + ", ".join(
        f"{k}={v!r}" for k, v in differences.items()) + "; not the gate's contract)"
    word = "PASS" if passed else "FAIL"
    print(f"amplitude SSIM {amp:.4f} (>= {AMP_SSIM_MIN})")
    print(f"phase SSIM {phase:.4f} (>= {PHASE_SSIM_MIN})")
    print(f"quality gate: {word}{note}; {metrics['epochs_completed']} epoch(s), "
          f"{metrics['n_train_patterns']} training patterns, {metrics['train_time_s']:.0f} s "
          f"training on {metrics['device']}; probe: {probe_description(cfg)} (fill "
          f"{metrics.get('probe_fill') or float('nan'):.2f})")
    write_json_atomic(Path(cfg.run.output_dir) / "quality_gate.json", {
        "passed": passed, "amp_ssim": amp, "phase_ssim": phase,
        "amp_ssim_min": AMP_SSIM_MIN, "phase_ssim_min": PHASE_SSIM_MIN,
        "contract": not differences, "overrides": differences,
        "probe": probe_description(cfg), "probe_fill": metrics.get("probe_fill"),
        "metrics_json": str(Path(cfg.run.output_dir) / "runs" / cfg.model_id / "metrics.json"),
        "device": metrics["device"], "train_time_s": metrics["train_time_s"],
        "epochs_completed": metrics["epochs_completed"],
        "n_train_patterns": metrics["n_train_patterns"]})
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
