"""Reconstruct a scan while it is measured (``ptycho-live``).

    ptycho-live --checkpoint RUN/model.ckpt --source scan.h5 --output-dir OUT

Follows the HDF5 file a detector writes with SWMR (:class:`ptycho.formats.live_hdf5.
LiveScanReader`): every ``--poll-seconds`` it refreshes the datasets and takes the frames
whose pattern and position are both there (a frame without its position waits for it).
Frames with NaN / inf or (``--saturation``) saturated pixels are left out, one log line
each, counted. The rest are brought to the model's units (:class:`ptycho.live_frames.
FrameUnits`, the rule ``ptycho-reconstruct`` applies), predicted in batches
(:func:`ptycho_torch.engine.inference.predict_patches`, the model's own probe) and added to
a running weighted canvas (:class:`ptycho.stitching.incremental.IncrementalCanvas`; the
frames are not kept). Every ``--every-frames`` K frames or ``--every-seconds`` T the outputs
of :mod:`ptycho.live_outputs` are replaced atomically. With ``--adapt`` the model also keeps
learning from the latest frames, a round of its own physics loss every ``--adapt-every``
frames (:mod:`ptycho_torch.pipeline.live_adapt`); the chunks after a round are predicted by
the adapted model, and the canvas keeps what was stitched before it.

The scan ends when the writer marks it complete and closes it, when ``--frames`` N frames
were handled, or after ``--quiet-seconds`` without a new frame (a writer that died); then the
final ``product-live.h5``, ``product-out.h5`` (the scored region, as ``ptycho-reconstruct``
writes it: the same object for the same frames), the data residual
(:mod:`ptycho_torch.pipeline.live_end`) and, with ``--refine lsqml``, the LSQML polish. A
file replaced by a new scan stops the run with one line; so does Ctrl-C (exit 130). In
every case the last ``product-live.h5`` is a whole, readable product.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.config.live_config import LiveConfig
from ptycho.config.validation import StudyError
from ptycho.formats.live_directory import LiveDirectoryReader
from ptycho.formats.live_hdf5 import LiveScanReader, SourceReplacedError
from ptycho.live_frames import FrameUnits
from ptycho.live_outputs import LIVE_FILES, LatencyHistogram, LiveStatus, write_live_outputs
from ptycho.reconstruction import stitch_weights
from ptycho.stitching.incremental import IncrementalCanvas
from ptycho_torch.core.precision import check_precision
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.engine.outputs import check_dir_target
from ptycho_torch.engine.threads import apply_num_threads, threads_line
from ptycho_torch.model.checkpoint import load_model
from ptycho_torch.pipeline.live_adapt import LiveAdapter
from ptycho_torch.pipeline.live_end import finish_scan
from ptycho_torch.ptychi import IterativeUnavailableError, import_ptychi

log = logging.getLogger(__name__)
_REASONS = (("NaN", "nan_or_inf"), ("saturated", "saturated"))


def check_live_inputs(cfg: LiveConfig) -> Path:
    """The output directory (refused when it holds a live reconstruction, without
    ``--overwrite``) and Pty-chi for ``--refine lsqml``: one line each, before any work."""
    out = Path(cfg.output_dir)
    check_dir_target("output_dir", out)
    done = [f for f in LIVE_FILES if (out / f).exists()]
    if done and not cfg.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a live reconstruction "
                         f"({done[0]}); pass --overwrite to replace it or choose another "
                         "--output-dir")
    if cfg.refine == "lsqml":
        try:
            import_ptychi()
        except IterativeUnavailableError as err:
            raise StudyError(f"LiveConfig.refine='lsqml' needs Pty-chi, which cannot be "
                             f"imported here ({err}) (allowed without it: 'none') "
                             "[flag --refine]") from None
    return out


def open_source(cfg: LiveConfig):
    """The reader of ``--source``: a folder of chunk files (:class:`LiveDirectoryReader`) or
    an SWMR HDF5 file (:class:`LiveScanReader`); a source the detector has just created (not
    yet in SWMR mode, no scan.npz yet) is retried for up to ``--quiet-seconds`` (at most
    10 s); a missing one refused."""
    t0 = time.monotonic()
    while True:
        try:
            if os.path.isdir(cfg.source):
                return LiveDirectoryReader(cfg.source, polling=cfg.polling_observer)
            return LiveScanReader(cfg.source)
        except ValueError as err:
            if (not os.path.exists(cfg.source)
                    or time.monotonic() - t0 > min(cfg.quiet_seconds, 10.0)):
                raise StudyError(f"{str(err).splitlines()[0]} [flag --source]") from None
        time.sleep(cfg.poll_seconds)


class LiveRun:
    """One followed scan: the model, the frames' units, the canvas and the status."""

    def __init__(self, cfg: LiveConfig, inference: InferenceConfig, out: Path):
        self.cfg, self.inference, self.out = cfg, inference, out
        try:
            self.device = resolve_device(cfg.device)
        except ValueError as err:
            raise StudyError(f"{err} [flag --device]") from None
        log.info(threads_line(*apply_num_threads(cfg.num_threads)))
        self.reader = open_source(cfg)
        try:
            self.model = self._model()
        except BaseException:
            self.reader.close()
            raise
        self.probe = self.model.current_probe().detach().cpu().numpy().astype(np.complex64)
        N = self.reader.N
        self.canvas = IncrementalCanvas(N, inference.crop_for(N), inference.stitch_subpixel,
                                        stitch_weights(inference, self.probe))
        self.units: FrameUnits | None = None
        self.status = LiveStatus(source=cfg.source, scan_id=self.reader.scan_id)
        self.adapter = (LiveAdapter(self.model, cfg, N, self.reader.bad_pixels)
                        if cfg.adapt else None)
        self.latency, self.waiting = LatencyHistogram(), []
        self.accepted: list[np.ndarray] = []
        self.t_first, self.readable = None, True
        self.product_meta = {"object_pixel_m": self.reader.pixel_m, "name": Path(cfg.source).stem,
                             "comments": f"ptychopinn-torch live reconstruction of "
                                         f"{cfg.source} with {cfg.checkpoint}"}

    def _model(self):
        cfg, reader = self.cfg, self.reader
        model = load_model(cfg.checkpoint, self.device, trust=cfg.trust_checkpoint)
        if cfg.precision != "model":
            model.set_precision(cfg.precision)
        try:
            check_precision(model.precision, self.device)
        except ValueError as err:
            raise StudyError(f"{err} [flag --precision]") from None
        mc = model.model_config
        if reader.N != mc.N or mc.gridsize != 1:
            raise StudyError(f"dataset '{cfg.source}': key '{reader.layout.patterns}' has "
                             f"pattern size N = {reader.N} (expected N = {mc.N}, the model's, "
                             f"at gridsize 1; the model has gridsize {mc.gridsize}) "
                             "[flag --source]")
        modes = model.current_probe().reshape(-1, mc.N, mc.N).shape
        if tuple(modes) != reader.probe.shape:
            raise StudyError(f"checkpoint '{cfg.checkpoint}': its probe has {modes[0]} modes "
                             f"but the source's '{reader.layout.probe}' {reader.probe.shape} "
                             "(expected the same modes) [flag --source]")
        return model

    # -- one chunk ------------------------------------------------------------------
    def take(self, idx, patterns, positions, times) -> None:
        """Screen, predict and stitch newly complete frames."""
        if self.units is None:
            r = self.reader
            self.units = FrameUnits.of(self.cfg.source, r.layout.probe, r.probe,
                                       self.model.probe.detach().cpu().numpy(), patterns,
                                       self.cfg.data_unit if self.cfg.data_unit != "auto"
                                       else r.unit, bad_pixels=r.bad_pixels,
                                       saturation=self.cfg.saturation)
            log.info("scan %s: unit %s, scan scale k = %.6g", self.cfg.source, self.units.unit,
                     self.units.k)
        reasons = self.units.screen(patterns)
        for i, why in zip(idx, reasons):
            if why is not None:
                key = next(k for word, k in _REASONS if word in why)
                self.status.left_out[key] += 1
                log.warning("frame %d left out: %s", int(i), why)
        keep = np.array([w is None for w in reasons], bool)
        if not keep.any():
            return
        amp, pos = self.units.amplitudes(patterns[keep]), np.asarray(positions)[keep]
        ids, n = np.asarray(idx)[keep], int(keep.sum())
        start = 0
        while start < n:      # --adapt: a round every adapt_every frames, within a chunk too
            stop = n if self.adapter is None else min(n, start + self.adapter.until_next())
            self._stitch(amp[start:stop], pos[start:stop])
            if self.adapter is not None:
                self.adapter.add(amp[start:stop], pos[start:stop], ids[start:stop])
                if self.adapter.due():
                    self.adapter.round()
                    self.status.adaptation = self.adapter.summary()
            start = stop
        self.accepted.append(ids)
        self.waiting.append(np.asarray(times)[keep])
        self.status.frames += n

    def _stitch(self, amp, positions) -> None:
        """Predict frames (amplitudes in the model's units) and add them to the canvas."""
        n = len(amp)
        batch = {"diffraction": amp[:, None], "coords_nominal": np.zeros((n, 1, 1, 2), np.float32),
                 "probeGuess": self.probe}
        patches = predict_patches(self.model, batch, self.inference.infer_batch_size)
        self.canvas.add(patches[:, 0], positions)

    def snapshot(self) -> None:
        """Write the live outputs; the frames stitched since the last one get their latency."""
        if self.canvas.n == 0:
            return
        self.status.frames_per_s = self.status.frames / max(time.monotonic() - self.t_first, 1e-9)
        done = write_live_outputs(self.out, self.canvas, self.probe, self.status, self.latency,
                                  self.product_meta, Path(self.cfg.source).name)
        if self.waiting:     # known once the product holding them is in place
            self.latency.add(done - np.concatenate(self.waiting))
            self.waiting = []
            self.status.latency_s = {"median": self.latency.quantile(0.5),
                                     "p95": self.latency.quantile(0.95)}

    # -- the loop -------------------------------------------------------------------
    def follow(self) -> str:
        """Poll until the scan ends; returns how it ended (one line)."""
        cfg, reader = self.cfg, self.reader
        last_new = last_write = time.monotonic()
        since = 0
        # a backlog is taken in chunks of this size, so it is written every K frames too
        per_poll = min(4096, max(self.inference.infer_batch_size, cfg.every_frames))
        while True:
            complete = reader.is_complete()
            limit = per_poll if not cfg.frames else max(0, min(per_poll, cfg.frames - reader.cursor))
            try:
                batch = reader.poll(limit)
            except SourceReplacedError as err:
                self.readable = False
                return f"{err}; stopped"
            now = time.monotonic()
            if len(batch[0]):
                self.t_first = self.t_first or now
                self.take(*batch)
                since, last_new = since + len(batch[0]), now
            due = ((cfg.every_frames and since >= cfg.every_frames)
                   or (cfg.every_seconds and since and now - last_write >= cfg.every_seconds))
            if due:
                self.snapshot()
                since, last_write = 0, time.monotonic()
            if cfg.frames and reader.cursor >= cfg.frames and not reader.pending:
                return f"--frames {cfg.frames} reached"
            if complete and not len(batch[0]) and reader.caught_up():
                return "the writer completed the scan and closed the file"
            if now - last_new > cfg.quiet_seconds:
                return (f"no new frame for {cfg.quiet_seconds:g} s (--quiet-seconds): the writer "
                        "stopped without closing the file")
            if not len(batch[0]):
                time.sleep(cfg.poll_seconds)


def run_live(cfg: LiveConfig, inference: InferenceConfig) -> LiveStatus:
    """Everything the module docstring describes; returns the final status (``live.json``)."""
    out = check_live_inputs(cfg)
    run = LiveRun(cfg, inference, out)
    try:
        end = run.follow()
        if run.reader.pending:
            run.status.left_out["no_position"] = len(run.reader.pending)
            log.warning("%d frame(s) never got a position (first: frame %d); left out",
                        len(run.reader.pending), run.reader.pending[0])
        run.status.state, run.status.end = "ended", end
        finish_scan(run, run.readable)
    finally:
        run.reader.close()
    return run.status
