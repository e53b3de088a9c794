"""The named presets of a study (flat values; explicit values win over them)."""
from __future__ import annotations

from typing import Any

from ptycho.config.choices import PRESETS
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import check_choice

# Preset values (flat); explicit values win. Measured on the 2-core CPU (docs/results/):
# quick = a width-8 Hybrid for 7 epochs (a budget in steps, so a seed gives the same result on
# a busy machine; width 8 for 7 epochs beat width 16 for 4 at equal compute; no wall-clock
# cap: one stopped a seed at 5230 of 5733 steps on a loaded CPU). On a file, the probe and
# the positions are estimates (probe_update auto: LSQML with Pty-chi, positions corrected,
# else a learned probe) and a small scan trains at least 2000 steps (the grid-lines study's
# 7 epochs are 5733 steps; on the N = 128, 500-pattern benchmark 2000 steps against 1000
# took the residual from 1.22x to 1.18x LSQML's, mean of seeds 1, 7, 42: docs/results/
# 2026-12-realistic-benchmark.md).
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "none": {},
    "quick": dict(architecture="hybrid", fno_width=8, fno_modes=12, fno_blocks=4,
                  fno_cnn_blocks=2, generator_output_mode="amp_phase", input_transform="log1p",
                  learning_rate=2e-3, min_lr=2e-4, epochs=7, batch_size=16, infer_batch_size=64,
                  output_dir="outputs/grid_lines_quick", probe_update="auto", min_steps=2000),
    "paper": dict(architecture="hybrid", N=128, epochs=40, learning_rate=2e-4,
                  scheduler="plateau", plateau_factor=0.5, plateau_patience=2, min_lr=1e-4, seed=3,
                  batch_size=16, fno_modes=12, fno_width=32, fno_blocks=4, fno_cnn_blocks=2,
                  loss="mae", generator_output_mode="real_imag",
                  output_dir="outputs/grid_lines_paper"),
}


def from_preset(preset: str = "none", **explicit) -> StudyConfig:
    """A study config from a preset with flat ``explicit`` values on top."""
    check_choice("RunConfig", "preset", preset, PRESETS)
    return StudyConfig.from_flat({**PRESET_VALUES[preset], **explicit, "preset": preset})


