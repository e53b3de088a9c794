"""ptycho.formats.geometry: the geometry the file writers record (conventional when none is
given; a geometry missing a field refused by name, before anything is written)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.cxi import write_cxi
from ptycho.formats.geometry import ScanGeometry, conventional_geometry, geometry_to_write
from ptycho.formats.ptychodus import write_ptychodus
from ptycho.formats.ptychodus_product import write_ptychodus_npz_product
from ptycho.probes import two_mode_probe

N = 32


@pytest.fixture(scope="module")
def scan():
    obj = make_object(64, 20, np.random.default_rng(0))
    return simulate_spiral_scan(obj, N, 10, step_px=4.0, jitter_px=0.5,
                                probe_modes=two_mode_probe(N), nphotons=1e4, seed=1,
                                bad_pixel_fraction=0.0)


def test_no_geometry_writes_the_conventional_one():
    assert dataclasses.asdict(geometry_to_write(None, N)) == dataclasses.asdict(
        conventional_geometry(N))


@pytest.mark.parametrize("missing", [f.name for f in dataclasses.fields(ScanGeometry)])
def test_every_writer_refuses_a_geometry_missing_a_field(scan, tmp_path, missing):
    partial = dataclasses.replace(conventional_geometry(N), **{missing: None})
    message = (rf"^geometry: {missing} is None \(a file writer records every field of "
               r"ScanGeometry: give them all, or geometry=None for the conventional geometry\)$")
    writers = [lambda: write_cxi(tmp_path / "scan.cxi", scan, partial),
               lambda: write_ptychodus(tmp_path / "ptychodus", scan, partial),
               lambda: write_ptychodus_npz_product(tmp_path / "product.npz", scan, partial)]
    for write in writers:
        with pytest.raises(ValueError, match=message):
            write()
    assert sorted(tmp_path.iterdir()) == []  # refused before anything is written
