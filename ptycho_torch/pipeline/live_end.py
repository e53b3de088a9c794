"""The end of a live scan (``ptycho-live``): the final products, the data residual and the
optional LSQML polish.

- ``product-live.h5``: the whole stitched canvas of every frame (the last live snapshot);
- ``product-out.h5``: the object on the scored region (:func:`ptycho.stitching.scan_region`
  of the positions), positions relative to its corner: what ``ptycho-reconstruct`` writes
  for the same frames;
- ``live.json`` ``data_residual``: the amplitude MAE of the delivered canvas re-simulated at
  every frame's position (:func:`ptycho_torch.core.residual.object_residual`, the object as
  stitched, scale 1), read back from the file in blocks, so memory stays that of a block;
- ``--refine lsqml``: the network-initialised LSQML polish of ``ptycho-reconstruct
  --refine lsqml`` (:func:`ptycho_torch.pipeline.polish.polish_with_lsqml`), which needs
  every frame at once: the accepted frames are read back and predicted again, and
  ``product-out.h5`` then holds the polished object and probe; ``live.json`` ``refined``
  holds its data residual and the wall seconds of the prediction and of the polish.

When the file was replaced or can no longer be read, only the live outputs are written.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np

from ptycho.artifacts import write_json_atomic
from ptycho.dataset import PtychoDataset
from ptycho.formats.ptychodus_product import write_product
from ptycho.formats.raw_scan import _on_canvas
from ptycho.live_outputs import write_scored_product
from ptycho_torch.core.residual import object_residual
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.pipeline.polish import polish_with_lsqml

log = logging.getLogger(__name__)
_BLOCK = 512


def finish_scan(run, readable: bool = True) -> None:
    """The end-of-scan outputs of a :class:`ptycho_torch.pipeline.live.LiveRun`."""
    st, out = run.status, run.out
    if run.canvas.n == 0:
        st.note = "no frame was stitched: no product written"
        write_json_atomic(out / "live.json", asdict(st))
        return
    run.snapshot()
    if readable:
        recon, region = run.canvas.scored()
        write_scored_product(out / "product-out.h5", recon, region, run.canvas, run.probe,
                             run.product_meta)
        st.data_residual = canvas_residual(run)
        if run.cfg.refine == "lsqml":
            st.refined = refine(run)
    write_json_atomic(out / "live.json", asdict(st))


def accepted_blocks(run):
    """``(patterns in the model's units (b, 1, N, N), centres (b, 2))`` of the stitched
    frames, block by block, in the order they were stitched."""
    ids = np.concatenate(run.accepted)
    for s in range(0, len(ids), _BLOCK):
        block = ids[s:s + _BLOCK]
        amp = run.units.amplitudes(run.reader.read_frames(block))
        yield amp[:, None], run.canvas.centres[s:s + _BLOCK]


def canvas_residual(run) -> dict:
    """Amplitude MAE ``sum|A_pred - A_meas| / sum A_meas`` of the whole stitched canvas at
    every stitched frame (module docstring)."""
    img, _, (row0, col0) = run.canvas.image()
    bad = run.reader.bad_pixels
    measured = np.ones((run.reader.N,) * 2, bool) if bad is None else ~bad
    abs_sum = obs_sum = 0.0
    for amp, centres in accepted_blocks(run):
        local = (centres - np.array([col0, row0], np.float64))[:, None, :]
        r = object_residual(img, local, amp, run.probe, bad_pixels=bad)
        obs = float(amp[..., measured].astype(np.float64).sum())
        abs_sum, obs_sum = abs_sum + r["amplitude_mae"] * obs, obs_sum + obs
    mae = abs_sum / max(obs_sum, 1e-300)
    log.info("data residual of the stitched canvas: amplitude MAE %.4g over %d frames", mae,
             run.canvas.n)
    return {"amplitude_mae": mae, "n_patterns": int(run.canvas.n),
            "note": "the whole stitched canvas re-simulated at every stitched frame's "
                    "position (scale 1, not fitted), sum|A_pred - A_meas| / sum A_meas"}


def full_dataset(run) -> PtychoDataset:
    """Every stitched frame as one dataset (for the polish only), positions moved onto a
    canvas by the readers' rule."""
    blocks = list(accepted_blocks(run))
    amp = np.concatenate([b[0] for b in blocks])
    centres, shift, canvas = _on_canvas(run.canvas.centres, run.reader.N, 0)
    n = len(amp)
    probe = run.probe[0] if run.probe.shape[0] == 1 else run.probe
    s = run.units.k if run.units.unit == "counts" else 1.0
    return PtychoDataset(path=run.cfg.source, diffraction=amp,
                         coords_nominal=np.zeros((n, 1, 1, 2), np.float32),
                         coords_offsets=centres[:, None, None, :].astype(np.float32),
                         probe=probe, object_index=np.zeros(n, np.int64),
                         metadata={"scale": s, "canvas_shape": list(canvas),
                                   "position_origin_px": [float(v) for v in shift]},
                         bad_pixels=run.reader.bad_pixels,
                         pattern_index=np.arange(n, dtype=np.int64)[:, None])


def refine(run) -> dict:
    """``--refine lsqml``: the network start predicted again on every stitched frame, then
    :func:`polish_with_lsqml`; ``product-out.h5`` is rewritten with the polished object.
    The wall seconds of each part are recorded: ``network_s`` (the frames read back and
    predicted), ``polish_s`` (LSQML's start, its epochs and the data residual, of which
    ``lsqml_s`` is Pty-chi's task build and epochs) and ``seconds`` (all, the write too)."""
    t0 = time.perf_counter()
    data = full_dataset(run)
    rec = reconstruct_test_object(run.model, data, run.inference)
    t1 = time.perf_counter()
    refined, polished, residual = polish_with_lsqml(data, rec, run.inference,
                                                    epochs=run.cfg.refine_epochs,
                                                    device=run.device)
    t2 = time.perf_counter()
    region = polished.region
    positions = data.centres.reshape(-1, 2).astype(np.float64) - [region[1], region[0]]
    write_product(run.out / "product-out.h5", polished.recon, refined.probe_modes, positions,
                  **dict(run.product_meta, comments=run.product_meta["comments"]
                         + f"; polished by {run.cfg.refine_epochs} LSQML epochs"))
    seconds = time.perf_counter() - t0
    log.info("end of scan: network %.1f s, LSQML polish %.1f s, %.1f s in all", t1 - t0,
             t2 - t1, seconds)
    return {"engine": "lsqml", "epochs": run.cfg.refine_epochs, "data_residual": residual,
            "network_s": t1 - t0, "polish_s": t2 - t1,
            "lsqml_s": float(polished.inference_time_s), "seconds": seconds}
