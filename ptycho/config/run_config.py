"""Where a study reads and writes, and how the process runs (:class:`RunConfig`), a member
of the config family of :mod:`ptycho.config.config` (which re-exports it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptycho.config.choices import CXI_TRANSLATION_SIGNS, DATA_UNITS, LOGGERS, PRESETS, PROBE_SCALE_MODES
from ptycho.config.record import Record
from ptycho.config.record import described as _f
from ptycho.config.validation import check_bool, check_float, check_int, refuse


@dataclass(frozen=True)
class RunConfig(Record):
    """Where a study reads and writes, and how the process runs."""

    output_dir: str = _f("outputs/grid_lines_torch", "directory that receives runs/, recons/ "
                         "and visuals/")
    train_npz: Optional[str] = _f(None, "training scan to use instead of simulating: this "
                                  "project's NPZ, an upstream PtychoPINN NPZ, a Ptychodus "
                                  "diffraction.h5 or a CXI file (detected by content)")
    test_npz: Optional[str] = _f(None, "scan to reconstruct (any supported file; default: the "
                                 "training scan); ground truth, when present, is scored")
    data_unit: str = _f("auto", "unit of the patterns in --train-npz/--test-npz: detector "
                        "counts or amplitudes (auto: the rule in docs/reference/formats.md)",
                        choices=DATA_UNITS)
    cxi_translation_sign: int = _f(1, "CXI files only: 1 reads the translations with "
                                   "Ptychodus's sign (object pixel = +translation / pixel); -1 "
                                   "for files written with the opposite sign",
                                   choices=CXI_TRANSLATION_SIGNS)
    probe_npz: Optional[str] = _f(None, "the probe of this file (any supported format): it "
                                  "simulates the data instead of the synthetic aperture, or "
                                  "replaces the probe of --train-npz / --test-npz, scaled to "
                                  "each scan's mean total intensity (docs/guide/own-scan.md)")
    probe_scale_mode: str = _f("pad", "how --probe-npz's probe is made N x N: pad (zero-pad), "
                               "pad_preserve (smooth, zero-pad), pad_extrapolate (edge-pad the "
                               "amplitude, fitted quadratic phase, smooth; the reference's) or "
                               "interpolate (cubic resampling; changes the pixel size)",
                               choices=PROBE_SCALE_MODES)
    probe_smoothing_sigma: float = _f(0.5, "pad_preserve and pad_extrapolate: Gaussian "
                                      "smoothing of the probe's amplitude and phase in pixels")
    cache_dir: Optional[str] = _f(None, "where simulated datasets are cached (default: "
                                  "<output-dir>/datasets)")
    snapshot_every: int = _f(0, "every this many epochs, write a PNG of a few predicted test "
                                "patches to visuals/snapshots/<model_id>_epoch<k>.png (0: off)")
    num_threads: int = _f(0, "torch CPU threads, Pty-chi's too (0: the usable CPUs that other "
                             "work leaves free, chosen at start; OMP_NUM_THREADS, when set, "
                             "wins)")
    progress_bar: bool = _f(True, "show Lightning's progress bar (on a terminal only; logs get "
                            "one line per epoch)")
    logger: str = _f("csv", "Lightning experiment logger under .work/<model_id>/logs: csv, "
                     "tensorboard (needs tensorboard or tensorboardX) or mlflow (needs mlflow)",
                     choices=LOGGERS)
    overwrite: bool = _f(False, "replace a finished study (or discard an interrupted run) of "
                         "the same model in --output-dir")
    resume: bool = _f(False, "continue an interrupted study from its last checkpoint "
                      "(<output-dir>/.work/<model_id>/checkpoints/last.ckpt)")
    trust_checkpoint: bool = _f(False, "load checkpoints (--resume's, --reuse-models', the "
                                "study's own) that hold Python objects beyond weights and "
                                "plain values (refused otherwise: unpickling them can run "
                                "code); only for files from a source you trust")
    preset: str = _f("none", "starting values: quick (10-minute CPU study) or paper (published "
                     "contract); explicit flags override them", choices=PRESETS)

    def datasets_dir(self) -> str:
        """Where simulated datasets are cached: ``cache_dir``, else ``<output_dir>/datasets``."""
        return self.cache_dir or str(Path(self.output_dir) / "datasets")

    def __post_init__(self) -> None:
        o = "RunConfig"
        self._check_choices()
        if not str(self.output_dir).strip():
            raise refuse(o, "output_dir", " is empty (allowed: a directory path)")
        check_int(o, "snapshot_every", self.snapshot_every, 0, 100000)
        check_int(o, "num_threads", self.num_threads, 0, 1024)
        for name in ("progress_bar", "overwrite", "resume", "trust_checkpoint"):
            check_bool(o, name, getattr(self, name))
        check_float(o, "probe_smoothing_sigma", self.probe_smoothing_sigma, 0.0, 64.0)
        if self.probe_scale_mode != "pad" and self.probe_npz is None:
            raise refuse(o, "probe_scale_mode", f"={self.probe_scale_mode!r} needs --probe-npz "
                         "(allowed: pad without a probe file)")
        if self.test_npz is not None and self.train_npz is None:
            raise refuse(o, "test_npz", " needs --train-npz too (allowed: both, --train-npz "
                         "alone, or neither to simulate)")
        if self.cxi_translation_sign != 1 and self.train_npz is None:
            raise refuse(o, "cxi_translation_sign", f"={self.cxi_translation_sign!r} needs a "
                         "CXI file in --train-npz (allowed: 1 for simulated data)")
