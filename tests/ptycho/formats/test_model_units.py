"""The scan-scale rule (ptycho.formats.model_units): one scan in every layout, in counts or
in amplitudes, reaches a model as the same amplitudes and probe.

The scan: N = 32, 30 Fermat-spiral positions on a grid-lines object, a 2-mode probe,
Poisson counts at 1e5 photons per pattern (photon scale s != 1), no bad pixels (this
project's NPZ cannot hold them).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.cxi import write_cxi
from ptycho.formats.model_units import check_parseval, read_in_model_units
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.io import load_dataset
from ptycho.probes import two_mode_probe


def _scan(nphotons: float = 1e5):
    obj = make_object(96, 40, np.random.default_rng(3))
    return simulate_spiral_scan(obj, 32, 30, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=nphotons, seed=4)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, write_layouts):
    scan = _scan()
    return scan, write_layouts(scan, tmp_path_factory.mktemp("units"))


def test_every_layout_reaches_the_model_as_the_same_amplitudes(layouts):
    scan, files = layouts
    s = scan.photon_scale
    assert s > 10  # counts and amplitudes differ by far more than any tolerance below
    model_probe = load_dataset(files["dataset"]).probe        # the probe a model trained with
    expect = np.sqrt(scan.counts.astype(np.float64)) / s      # the training amplitudes
    for name, path in files.items():
        data, scale = read_in_model_units(str(path), model_probe)
        # float32 tolerance: each layout rounds its stored values once
        np.testing.assert_allclose(data.diffraction[:, 0], expect, rtol=2e-7, atol=1e-7 * expect.max(),
                                   err_msg=name)
        np.testing.assert_allclose(data.probe, model_probe, rtol=0, atol=1e-6 * np.abs(model_probe).max())
        assert scale.photon_scale == pytest.approx(s, rel=1e-6), name
        assert data.metadata["scale"] == scale.photon_scale
        assert data.metadata["scan_scale"]["value"] == scale.photon_scale
        assert scale.relative == pytest.approx(1.0 if name == "dataset" else s, rel=1e-6)
        assert "scan scale: " in data.metadata["normalisation"]


def test_another_dose_reaches_the_model_at_the_trained_illumination(layouts, tmp_path):
    """Four times the photons (counts x 4, the photon-unit probe x 2): the same amplitudes,
    the photon scale doubled."""
    scan, files = layouts
    model_probe = load_dataset(files["dataset"]).probe
    brighter = replace(scan, counts=scan.counts * 4,
                       probe=(scan.probe.astype(np.complex128) * 2).astype(np.complex64))
    bright, scale = read_in_model_units(str(write_cxi(tmp_path / "x4.cxi", brighter)), model_probe)
    base, _ = read_in_model_units(str(files["cxi"]), model_probe)
    np.testing.assert_allclose(bright.diffraction, base.diffraction, rtol=2e-7)
    assert scale.photon_scale == pytest.approx(2 * scan.photon_scale, rel=1e-6)


def test_a_probe_that_cannot_relate_the_units_is_refused(layouts, tmp_path):
    scan, files = layouts
    model_probe = load_dataset(files["dataset"]).probe
    path = str(write_ptychopinn_npz(tmp_path / "dark.npz", replace(scan, probe=scan.probe * 0)))
    with pytest.raises(ValueError) as err:
        read_in_model_units(path, model_probe)
    assert str(err.value) == (f"dataset '{path}': key 'probeGuess' has total intensity 0.0 "
                              "(expected a probe with intensity, in the patterns' units: it "
                              "relates them to the model's units, docs/reference/formats.md)")
    # a probe 1000x too weak for its counts: by Parseval no object gives these patterns
    weak = str(write_ptychopinn_npz(tmp_path / "weak.npz", replace(scan, probe=scan.probe / 1000)))
    data, scale = read_in_model_units(weak, model_probe)
    training_rms = float(np.sqrt(np.mean(load_dataset(files["dataset"]).diffraction.astype(np.float64) ** 2)))
    assert check_parseval(str(files["npz"]), *read_in_model_units(str(files["npz"]), model_probe),
                          training_rms) == pytest.approx(1.0, rel=1e-6)
    r = 1000 * math.sqrt(np.mean(scan.counts.astype(np.float64))) / scan.photon_scale / training_rms
    with pytest.raises(ValueError) as err:
        check_parseval(weak, data, scale, training_rms)
    assert str(err.value) == (
        f"dataset '{weak}': key 'probeGuess' is not in the units of the patterns 'diffraction' "
        f"(read as counts): with the probe at the model's total intensity their amplitude RMS "
        f"is {r:.3g}x the training data's (expected 0.1..10, by Parseval an object like the "
        "training one's; check --data-unit, or store the probe in the patterns' units)")
