"""A network's reconstruction polished by Pty-chi (``ptycho-reconstruct --refine lsqml``).

The network gives the start in one pass; LSQML, started at the network's stitched object
(:func:`ptycho_torch.ptychi.start.start_from_patches`: the network's complex object where its
patches reach, the flat Parseval estimate elsewhere, scaled to the measured counts) and at
the scan's probe, then fits *this* scan's patterns for ``epochs`` epochs with the object
**and** the probe optimized (positions fixed). The refined probe is put back in the scan's
units with the starting probe's total intensity (the object takes the factor,
:func:`ptycho_torch.ptychi.probe.dataset_probe`). The result is scored like every
iterative row (:func:`ptycho_torch.ptychi.baseline.iterative_reconstruction`).
"""
from __future__ import annotations

import logging
from dataclasses import replace


from ptycho.config.config import InferenceConfig
from ptycho.dataset import PtychoDataset
from ptycho_torch.core.residual import whole_object_residual
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho_torch.ptychi.engine import PtychiOptions, PtychiRun
from ptycho_torch.ptychi.probe import dataset_probe, default_batch_size
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho_torch.ptychi.start import start_from_patches
from ptycho.reconstruction import Reconstruction, stitch_options

log = logging.getLogger(__name__)


def polish_with_lsqml(data: PtychoDataset, rec: Reconstruction, inference: InferenceConfig, *,
                      epochs: int, device: str, seed: int = 0, optimize_probe: bool = True
                      ) -> tuple[PtychoDataset, Reconstruction, dict]:
    """``(data with the refined probe, the polished reconstruction, its data residual)``
    of scan 0 of ``data``, starting at the network reconstruction ``rec``. With
    ``optimize_probe=False`` only the object is fitted and the probe stays the scan's."""
    scan = scan_for_ptychi(data, 0)
    sub = data.select(data.object_selection(0))
    init = start_from_patches(rec.patches, sub.centres, scan, stitch_options(inference, data.N),
                              pattern_ids=sub.pattern_ids())
    n = int(scan.patterns.shape[0])
    options = PtychiOptions("lsqml", epochs=int(epochs), batch_size=default_batch_size(n),
                            device=device, seed=int(seed), optimize_probe=bool(optimize_probe))
    log.info("polishing with %d Pty-chi LSQML epochs from the network's object (%s)", epochs,
             "object and probe" if optimize_probe else "object; probe fixed")
    with PtychiRun(scan, options, initial_object=init) as run:
        run.run()
        obj, probe_c, seconds, bs = run.object(), run.probe(), run.elapsed_s, run.batch_size()
    if optimize_probe:
        probe, obj, _ = dataset_probe(probe_c, obj, scan, data.probe)
        refined = replace(data, probe=probe)
    else:
        refined = data
    out = iterative_reconstruction(refined, obj, time_s=seconds, n_patterns=n, batch_size=bs,
                                   inference=inference)
    residual = whole_object_residual(out, sub, refined.probe, photon_scale=data.photon_scale,
                                     bad_pixels=data.bad_pixels)
    log.info("polished in %.1f s: data residual (amplitude MAE) %.4g", seconds,
             residual["amplitude_mae"])
    return refined, out, residual
