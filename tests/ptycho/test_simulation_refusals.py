"""The simulators and readers refuse what would fail late or silently: a dose <= 0, a
probe with NaN / Inf (named as such, not as zeros), counts above the uint32 range (kept in
uint64, never wrapped), and a pattern size no study takes (never advised as --N)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho.datagen.from_file import simulate_from_file
from ptycho.datagen.spiral_scan import simulate_at_positions
from ptycho.dataset_validation import pattern_size_advice
from ptycho.formats import read_scan
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.formats.readers import read_dataset, read_probe
from ptycho.forward import simulation_scale
from ptycho.io import load_dataset, save_dataset
from ptycho.probes import make_probe

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "data" / "run1084_recon3_postPC.npz"
FLAT = np.ones((48, 48), np.complex64)
CENTRES = np.array([[24.0, 24.0], [23.5, 24.5]])


def test_counts_above_uint32_are_kept_exactly_in_uint64():
    """1e13 photons on a 16 x 16 detector: the DC pixel of a flat object holds ~1e13
    counts, which uint32 would wrap; the stored counts add up to the dose."""
    probe = make_probe(16)
    big = simulate_at_positions(FLAT, 16, CENTRES, probe, 1e13, np.random.default_rng(0))
    assert big.counts.dtype == np.uint64 and int(big.counts.max()) > 2 ** 32
    assert big.counts.sum((1, 2)).astype(np.float64).mean() == pytest.approx(1e13, rel=1e-6)
    small = simulate_at_positions(FLAT, 16, CENTRES, probe, 1e6, np.random.default_rng(0))
    assert small.counts.dtype == np.uint32             # files of ordinary doses unchanged


def test_uint64_counts_round_trip_through_a_writer(tmp_path):
    scan = simulate_at_positions(FLAT, 16, CENTRES, make_probe(16), 1e13,
                                 np.random.default_rng(1))
    raw = read_scan(write_ptychopinn_npz(tmp_path / "bright.npz", scan))
    assert raw.unit == "counts"
    assert np.allclose(raw.patterns, scan.counts.astype(np.float32))


@pytest.mark.parametrize("nphotons", [0.0, -1.0, float("nan")])
def test_dose_must_be_positive(nphotons):
    with pytest.raises(ValueError) as info:
        simulate_at_positions(FLAT, 16, CENTRES, make_probe(16), nphotons,
                              np.random.default_rng(0))
    assert str(info.value) == (f"simulate_at_positions: nphotons={nphotons!r} is out of range "
                               "(allowed: a finite number > 0 of mean counts per pattern)")
    with pytest.raises(ValueError, match=r"^nphotons=.* is out of range"):
        simulate_from_file(SOURCE, nphotons=nphotons, n_positions=5)


def test_a_nan_probe_is_named_as_nan_not_zeros(tmp_path):
    probe = make_probe(16).astype(np.complex64)
    probe[3, 4] = np.nan
    probe[5, 6] = np.inf
    with pytest.raises(ValueError) as info:
        simulation_scale(np.ones((2, 16, 16), np.complex64), probe, 1e6)
    assert str(info.value) == ("probe contains non-finite values (1 NaN, 1 Inf) (expected "
                               "finite values only)")
    with pytest.raises(ValueError) as info:
        simulate_at_positions(FLAT, 16, CENTRES, probe, 1e6, np.random.default_rng(0))
    assert str(info.value) == ("simulate_at_positions: probe contains non-finite values (1 NaN, "
                               "1 Inf) (expected finite values only)")
    # a probe file (read by --probe-npz) and a source file (make_example_scan --from)
    np.savez(tmp_path / "probe.npz", probeGuess=probe)
    with pytest.raises(ValueError) as info:
        read_probe(tmp_path / "probe.npz")
    assert str(info.value) == (f"dataset '{tmp_path / 'probe.npz'}': key 'probeGuess' contains "
                               "non-finite values (1 NaN, 1 Inf) (expected finite values only)")
    with np.load(SOURCE) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["probeGuess"] = arrays["probeGuess"].copy()
    arrays["probeGuess"][0, 0] = np.nan
    np.savez(tmp_path / "source.npz", **arrays)
    with pytest.raises(ValueError) as info:
        simulate_from_file(tmp_path / "source.npz", n_positions=5)
    assert str(info.value) == (f"source '{tmp_path / 'source.npz'}': key 'probeGuess' contains "
                               "non-finite values (1 NaN, 0 Inf) (expected finite values only)")


def test_an_unsupported_pattern_size_is_not_advised_as_N(tmp_path):
    """100 x 100 patterns: no study takes N = 100, so the refusal says which N it takes
    instead of advising --N 100; a supported size is still advised."""
    assert pattern_size_advice(32) == "pass --N 32 to use these patterns"
    n = 3
    arrays = {"diffraction": np.ones((n, 100, 100, 1), np.float32),
              "coords_nominal": np.zeros((n, 1, 2, 1), np.float32),
              "coords_offsets": np.full((n, 1, 2, 1), 60.0, np.float32),
              "probeGuess": np.ones((100, 100), np.complex64)}
    p = save_dataset(tmp_path / "n100.npz", arrays, {})
    with pytest.raises(ValueError) as info:
        load_dataset(p, expect_N=64)
    assert str(info.value) == (
        f"dataset '{p}': key 'diffraction' has pattern size N = 100 (expected N = 64, the "
        "study's --N; a study takes N in 16, 32, 64, 128, 256 only, so crop or bin the "
        "detector to one of them before reading (either changes the object pixel size))")
    scan = simulate_at_positions(np.ones((160, 160), np.complex64), 100,
                                 np.array([[80.0, 80.0], [81.0, 79.0]]), make_probe(100), 1e6,
                                 np.random.default_rng(0))
    raw = write_ptychopinn_npz(tmp_path / "raw100.npz", scan)
    with pytest.raises(ValueError) as info:
        read_dataset(raw, N=64)
    assert str(info.value) == (
        f"dataset '{raw}': key 'diffraction' has pattern size N = 100 (expected N = 64, the "
        "study's --N; a study takes N in 16, 32, 64, 128, 256 only, so crop or bin the "
        "detector to one of them before reading (either changes the object pixel size))")
