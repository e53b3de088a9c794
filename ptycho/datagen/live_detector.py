"""A simulated detector (``ptycho-live-sim``): a scan written frame by frame, at a given
rate, into an HDF5 file opened with SWMR (:mod:`ptycho.formats.live_hdf5`).

    ptycho-live-sim --output scan.h5 --scan outputs/example_scan/scan_ptychopinn.npz --rate 50
    ptycho-live-sim --output scan.h5 --frames 2000 --N 64 --rate 0

The frames come from any scan file the readers know (``--scan``: its patterns as stored,
counts or amplitudes, its positions, probe and bad pixels; scan 0) or from a simulated
Fermat-spiral scan of a grid-lines object (Poisson counts, ``ptycho.forward``), made chunk
by chunk so that a long scan never sits in memory. Every ``--chunk`` frames are appended and
flushed; ``--rate`` frames per second paces them (0: as fast as the disk allows). At the end
the scan is marked complete and the file closed. ``--directory`` writes a folder of one NPZ
file per chunk instead (:mod:`ptycho.formats.live_directory`). Faults for tests: ``--die-after K`` stops
after K frames without closing the file (the process ends, as a crashed writer would),
``--nan-frame i``, ``--saturate-frame i``, ``--late-position i`` (that frame's position is
written one chunk later), ``--lost-position i`` (never). numpy and h5py only.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from ptycho.config.cli import build_parser, flag, parse_known
from ptycho.config.live_config import LiveSimConfig
from ptycho.config.validation import ConfigError, StudyError
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import fermat_spiral
from ptycho.formats import read_scan
from ptycho.forward import expected_intensity
from ptycho.formats.live_directory import LiveDirectoryWriter
from ptycho.formats.live_hdf5 import LiveScanWriter
from ptycho.probes import make_probe

__all__ = ["FrameSource", "frame_source", "main", "write_live_scan"]


class FrameSource:
    """The frames to write: ``chunk(lo, hi)`` gives patterns (hi - lo, N, N); ``positions``
    (n, 2) px, ``probe``, ``bad_pixels``, ``unit``, ``pixel_m`` (y, x) metres, ``geometry``
    (the scan file's, or None)."""

    def __init__(self, positions, probe, bad_pixels, unit, pixel_m, chunk, geometry=None):
        self.positions, self.probe, self.bad_pixels = positions, probe, bad_pixels
        self.unit, self.pixel_m, self.chunk = unit, pixel_m, chunk
        self.geometry = geometry

    @property
    def n(self) -> int:
        return len(self.positions)


def _from_file(cfg: LiveSimConfig) -> FrameSource:
    try:
        raw = read_scan(cfg.scan)
    except (OSError, ValueError) as err:
        raise StudyError(f"{str(err).splitlines()[0]} [flag --scan]") from None
    sel = np.flatnonzero(raw.scan_index == raw.scan_index[0])
    if raw.probe is None:
        raise StudyError(f"dataset '{cfg.scan}': key '{raw.key('probe')}' is missing (expected "
                         "a probe: the live file carries it) [flag --scan]")
    if cfg.frames > sel.size:
        raise StudyError(f"LiveSimConfig.frames={cfg.frames} is more than the {sel.size} frames "
                         f"of scan '{cfg.scan}' (allowed: 0..{sel.size}) [flag --frames]")
    sel = sel[:cfg.frames or sel.size]
    pats = raw.patterns
    pixel = raw.geometry.object_pixel_m or (1e-8, 1e-8)
    return FrameSource(raw.positions_px[sel], raw.probe, raw.bad_pixels, raw.unit, pixel,
                       lambda lo, hi: pats[sel[lo:hi]], raw.geometry)


def _simulated(cfg: LiveSimConfig) -> FrameSource:
    """A Fermat spiral over a grid-lines object just large enough for it; Poisson counts at
    ``nphotons`` per pattern (the photon scale fixed on the first 64 frames)."""
    n, N = cfg.frames or 500, cfg.N
    rng = np.random.default_rng(cfg.seed)
    radius = cfg.step_px * math.sqrt(n / math.pi)
    size = int(2 * radius + 2 * N + 8)
    obj = make_object(size, max(40, int(40 * (size / 96.0) ** 2)), rng)
    pos = fermat_spiral(n, cfg.step_px) + size / 2.0
    pos = pos + rng.uniform(-0.5, 0.5, size=pos.shape)
    modes = make_probe(N)[None]
    s2 = cfg.nphotons / float(expected_intensity(obj, modes, pos[:64], N).sum(axis=(1, 2)).mean())

    def chunk(lo, hi):
        counts = rng.poisson(s2 * expected_intensity(obj, modes, pos[lo:hi], N))
        return counts.astype(np.float32)
    probe = (modes.astype(np.complex128) * math.sqrt(s2)).astype(np.complex64)
    return FrameSource(pos, probe, None, "counts", (1e-8, 1e-8), chunk)


def frame_source(cfg: LiveSimConfig) -> FrameSource:
    return _from_file(cfg) if cfg.scan else _simulated(cfg)


def _faulty(cfg: LiveSimConfig, lo: int, pats: np.ndarray, pos: np.ndarray):
    """The chunk starting at frame ``lo`` with the faults of ``cfg`` applied."""
    pats, pos = np.array(pats, np.float32), np.array(pos, np.float64)
    N = pats.shape[-1]
    for i, what in ((cfg.nan_frame, "nan"), (cfg.saturate_frame, "sat"),
                    (cfg.late_position, "pos"), (cfg.lost_position, "pos")):
        j = i - lo
        if i < 0 or not 0 <= j < len(pats):
            continue
        if what == "nan":
            pats[j, N // 2, N // 3] = np.nan
        elif what == "sat":
            pats[j, N // 2, N // 2] = 1e9
        else:
            pos[j] = np.nan
    return pats, pos


def write_live_scan(cfg: LiveSimConfig, out=sys.stdout) -> int:
    """Write the scan of ``cfg`` (module docstring); returns the frames written. With
    ``die_after`` the process ends there (``os._exit``), the file left open."""
    src = frame_source(cfg)
    w = (LiveDirectoryWriter(cfg.output, src.probe, src.bad_pixels, src.unit) if cfg.directory
         else LiveScanWriter(cfg.output, cfg.layout, src.probe, src.bad_pixels, src.unit,
                             chunk=cfg.chunk, pixel_m=src.pixel_m, geometry=src.geometry))
    t0, late = time.perf_counter(), None
    stop = min(src.n, cfg.die_after) if cfg.die_after else src.n
    for lo in range(0, stop, cfg.chunk):
        hi = min(lo + cfg.chunk, stop)
        if cfg.rate > 0:
            time.sleep(max(0.0, t0 + hi / cfg.rate - time.perf_counter()))
        w.append(*_faulty(cfg, lo, src.chunk(lo, hi), src.positions[lo:hi]))
        if late is not None:
            w.set_position(late, src.positions[late:late + 1])
            late = None
        if lo <= cfg.late_position < hi:
            late = cfg.late_position
    if cfg.die_after:
        print(f"live-sim: stopped after {w.n} frames without closing '{cfg.output}' "
              "(--die-after)", file=out, flush=True)
        os._exit(0)
    if late is not None:
        w.set_position(late, src.positions[late:late + 1])
    w.close()
    print(f"live-sim: wrote {w.n} frames to '{cfg.output}' in "
          f"{time.perf_counter() - t0:.1f} s and closed it", file=out)
    return w.n


def parse_live_sim(argv, prog: str = "ptycho-live-sim") -> LiveSimConfig:
    parser = build_parser(prog, "Write a scan frame by frame into an SWMR HDF5 file (a "
                          "simulated detector).", sections={"live_sim": LiveSimConfig},
                          config_flag=False)
    values = parse_known(parser, argv)
    if "output" not in values:
        raise StudyError("--output is required (allowed: a path; see --help)")
    try:
        return LiveSimConfig(**values)
    except ConfigError as err:
        raise StudyError(f"{err} [flag {flag(err.field)}]") from None


def main(argv=None) -> int:
    """Exit codes: 0 written; 2 refused (one ``error:`` line, nothing written); 130
    interrupted (the file stays a valid, unfinished scan)."""
    try:
        cfg = parse_live_sim(argv)
        write_live_scan(cfg)
    except (StudyError, ConfigError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the scan file was left unfinished", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
