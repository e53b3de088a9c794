"""The settings of ``ptycho-live`` (a trained model following a scan while it is measured)
and of ``ptycho-live-sim`` (a simulated detector writing one)."""
from __future__ import annotations

from dataclasses import dataclass

from ptycho.config.choices import DATA_UNITS, DEVICES, PREDICT_PRECISIONS, REFINE_ENGINES
from ptycho.config.record import Record
from ptycho.config.record import described as _f
from ptycho.config.validation import check_bool, check_float, check_int, refuse

#: the layouts a live scan file is written in (ptycho.formats.live_hdf5.LAYOUTS)
LIVE_LAYOUTS = ("ptychopinn", "ptychodus", "cxi")


@dataclass(frozen=True)
class LiveConfig(Record):
    """Follow a growing scan file and reconstruct it chunk by chunk (``ptycho-live``)."""

    checkpoint: str = _f("", "a trained study's model.ckpt (runs/<model_id>/model.ckpt)")
    source: str = _f("", "the scan being written: an HDF5 file opened with SWMR, or a folder "
                         "of one file per chunk (both as ptycho-live-sim writes them)")
    polling_observer: bool = _f(False, "a folder --source on a network file system: watch it "
                                "by polling (watchdog's PollingObserver) instead of kernel "
                                "events")
    output_dir: str = _f("outputs/live", "directory that receives product-live.h5, live.png, "
                         "live.json and, at the end, product-out.h5")
    every_frames: int = _f(64, "write product-live.h5 and live.png after this many new frames "
                           "(0: only by --every-seconds)")
    every_seconds: float = _f(2.0, "write them at least this often while frames arrive, in "
                              "seconds (0: only by --every-frames)")
    quiet_seconds: float = _f(30.0, "end the scan when no new frame arrived for this long "
                              "(a writer that stopped without closing the file)")
    frames: int = _f(0, "end the scan after this many frames (0: when the writer closes it)")
    poll_seconds: float = _f(0.2, "how often the file is looked at for new frames")
    saturation: float = _f(0.0, "leave out a frame with a measured pixel at or above this "
                           "value, in the file's units (0: no check)")
    data_unit: str = _f("auto", "unit of the patterns: detector counts or amplitudes (auto: "
                        "the file's 'unit' attribute, else the rule in docs/reference/formats.md)",
                        choices=DATA_UNITS)
    device: str = _f("auto", "where to predict", choices=DEVICES)
    precision: str = _f("model", "arithmetic of prediction: the one the model trained with "
                        "(model), 32 or bf16-mixed", choices=PREDICT_PRECISIONS)
    num_threads: int = _f(0, "torch CPU threads (0: the usable CPUs that other work leaves "
                             "free, chosen at start)")
    refine: str = _f("none", "at the end of the scan: polish the network's object and probe "
                     "with Pty-chi (lsqml; needs the 'iterative' extra)", choices=REFINE_ENGINES)
    refine_epochs: int = _f(20, "LSQML epochs of --refine lsqml")
    overwrite: bool = _f(False, "replace an earlier live reconstruction in --output-dir")
    trust_checkpoint: bool = _f(False, "load a --checkpoint that holds Python objects beyond "
                                "weights and plain values (refused otherwise)")
    adapt: bool = _f(False, "online adaptation: while the scan runs, fit the generator to the "
                     "recent frames with a few steps of its own physics loss (no labels); the "
                     "chunks after each round are predicted by the adapted model")
    adapt_steps: int = _f(4, "--adapt: optimizer steps per adaptation round")
    adapt_every: int = _f(64, "--adapt: frames stitched between adaptation rounds")
    adapt_window: int = _f(256, "--adapt: the most recent frames kept for adaptation (a ring "
                           "buffer: its memory is bounded by the window, not the scan)")
    adapt_lr: float = _f(1e-4, "--adapt: Adam learning rate of the adaptation steps")
    adapt_batch_size: int = _f(16, "--adapt: frames drawn at random from the window per step")

    def __post_init__(self) -> None:
        o = "LiveConfig"
        self._check_choices()
        for name in ("checkpoint", "source", "output_dir"):
            if not str(getattr(self, name)).strip():
                raise refuse(o, name, " is empty (allowed: a path)")
        for name in ("overwrite", "trust_checkpoint", "polling_observer", "adapt"):
            check_bool(o, name, getattr(self, name))
        check_int(o, "every_frames", self.every_frames, 0, 1 << 30)
        check_float(o, "every_seconds", self.every_seconds, 0.0, 86400.0)
        check_float(o, "quiet_seconds", self.quiet_seconds, 0.0, 86400.0, lo_open=True)
        check_float(o, "poll_seconds", self.poll_seconds, 0.0, 60.0, lo_open=True)
        check_float(o, "saturation", self.saturation, 0.0)
        check_int(o, "frames", self.frames, 0, 1 << 40)
        check_int(o, "refine_epochs", self.refine_epochs, 1, 100000)
        check_int(o, "num_threads", self.num_threads, 0, 1024)
        check_int(o, "adapt_steps", self.adapt_steps, 1, 10000)
        check_int(o, "adapt_every", self.adapt_every, 1, 1 << 30)
        check_int(o, "adapt_window", self.adapt_window, 1, 1 << 20)
        check_float(o, "adapt_lr", self.adapt_lr, 0.0, 1.0, lo_open=True)
        check_int(o, "adapt_batch_size", self.adapt_batch_size, 1, 1 << 20)
        if self.adapt_batch_size > self.adapt_window:
            raise refuse(o, "adapt_batch_size", f"={self.adapt_batch_size} is larger than "
                         f"adapt_window={self.adapt_window} (allowed: <= adapt_window)")
        if self.every_frames == 0 and self.every_seconds == 0:
            raise refuse(o, "every_frames", "=0 with every_seconds=0 never writes the live "
                         "product (allowed: either > 0)")


@dataclass(frozen=True)
class LiveSimConfig(Record):
    """A simulated detector: a scan written frame by frame into an HDF5 file opened with
    SWMR (``ptycho-live-sim``)."""

    output: str = _f("", "the HDF5 file to write (an existing file is replaced: a new scan)")
    scan: str = _f("", "frames from this scan file (any supported format, docs/reference/formats.md); "
                       "empty: a simulated Fermat-spiral scan of a grid-lines object")
    rate: float = _f(20.0, "frames per second (0: as fast as possible)")
    chunk: int = _f(8, "frames written (and flushed) together")
    frames: int = _f(0, "frames to write (0: every frame of --scan, or 500 simulated)")
    directory: bool = _f(False, "write --output as a folder, one NPZ file per chunk (a "
                         "detector that writes files), instead of one HDF5 file")
    layout: str = _f("ptychopinn", "key names: this project's NPZ-like (diffraction, xcoords, "
                     "ycoords, probeGuess), Ptychodus' (patterns, probe_position_x_m, ...) or "
                     "CXI's (entry_1/data_1/data, .../geometry_1/translation, ...)",
                     choices=LIVE_LAYOUTS)
    N: int = _f(64, "simulated scan only: pattern size")
    nphotons: float = _f(1e6, "simulated scan only: mean photons per pattern")
    step_px: float = _f(4.0, "simulated scan only: the spiral's step in object pixels")
    seed: int = _f(0, "simulated scan only: random seed of object, jitter and noise")
    die_after: int = _f(0, "fault: stop after this many frames without closing the file "
                        "(0: off)")
    nan_frame: int = _f(-1, "fault: write NaN into this frame (-1: off)")
    saturate_frame: int = _f(-1, "fault: put one pixel of this frame at 1e9 counts (-1: off)")
    late_position: int = _f(-1, "fault: this frame's position arrives one chunk later (-1: off)")
    lost_position: int = _f(-1, "fault: this frame's position never arrives (-1: off)")

    def __post_init__(self) -> None:
        o = "LiveSimConfig"
        self._check_choices()
        if not str(self.output).strip():
            raise refuse(o, "output", " is empty (allowed: a path)")
        check_bool(o, "directory", self.directory)
        check_float(o, "rate", self.rate, 0.0, 1e7)
        check_int(o, "chunk", self.chunk, 1, 1 << 20)
        check_int(o, "frames", self.frames, 0, 1 << 30)
        check_int(o, "N", self.N, 8, 1024)
        check_float(o, "nphotons", self.nphotons, 0.0, 1e15, lo_open=True)
        check_float(o, "step_px", self.step_px, 0.0, 1e4, lo_open=True)
        check_int(o, "seed", self.seed, 0)
        check_int(o, "die_after", self.die_after, 0)
        for name in ("nan_frame", "saturate_frame", "late_position", "lost_position"):
            check_int(o, name, getattr(self, name), -1)
