"""The live product opens in Ptychodus 1.7: ``product-live.h5`` read by Ptychodus' own HDF5
product reader gives the stitched canvas, the probe and the positions ptycho-live wrote.

Needs ``$PTYCHODUS`` (``bash scripts/install_ptychodus.sh``); run with ``-m ptychodus``."""
from __future__ import annotations

import numpy as np
import pytest

from ptycho.live_outputs import LatencyHistogram, LiveStatus, write_live_outputs
from ptycho.probes import make_probe
from ptycho.stitching import probe_weights
from ptycho.stitching.incremental import IncrementalCanvas
from ptychodus_host import executable, read_with_ptychodus

pytestmark = pytest.mark.ptychodus


def test_product_live_opens_in_ptychodus(tmp_path):
    rng = np.random.default_rng(0)
    N, n = 32, 40
    probe = make_probe(N)[None]
    canvas = IncrementalCanvas(N, 16, "fourier", probe_weights(probe))
    centres = rng.uniform(-20, 30, (n, 2))
    patches = np.exp(1j * rng.uniform(0, 1, (n, N, N))).astype(np.complex64)
    canvas.add(patches[:25], centres[:25])
    canvas.add(patches[25:], centres[25:])
    write_live_outputs(tmp_path, canvas, probe, LiveStatus("scan.h5", "id"), LatencyHistogram(),
                       {"object_pixel_m": (2e-8, 2e-8), "name": "scan", "comments": "test"},
                       "scan.h5")
    got = read_with_ptychodus(executable(), tmp_path / "product-live.h5", tmp_path / "read.npz")
    img, _, (row0, col0) = canvas.image()
    np.testing.assert_allclose(got["layer0"], img, atol=1e-6)
    np.testing.assert_allclose(got["probe"][0], probe[0], atol=1e-6)
    # Ptychodus maps the positions back onto the object's pixels: the stitched centres
    np.testing.assert_allclose(got["x_px"], centres[:, 0] - col0, atol=1e-6)
    np.testing.assert_allclose(got["y_px"], centres[:, 1] - row0, atol=1e-6)
