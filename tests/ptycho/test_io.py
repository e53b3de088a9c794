"""Tests for ptycho.io: round trip and one named error per defect."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ptycho.datagen.grid_lines import GridLinesSpec, make_object, simulate_split
from ptycho.datagen.grid_lines_files import simulate_grid_lines
from ptycho.dataset import PtychoDataset
from ptycho.io import load_dataset, save_dataset

N = 16


def small_split(gridsize=1):
    spec = GridLinesSpec(object_size=48, N=N, gridsize=gridsize, n_lines=10, train_stride=8,
                         test_stride=8, n_train_objects=1, n_test_objects=1,
                         probe_defocus=2.0)
    rng = np.random.default_rng(0)
    objs = [make_object(48, 10, rng), make_object(48, 10, rng)]
    return simulate_split(spec, objs, 8, 5.0, rng)


def valid_arrays(n=3, C=1):
    rng = np.random.default_rng(1)
    return {
        "diffraction": rng.random((n, N, N, C)).astype(np.float32),
        "Y_I": rng.random((n, N, N, C)).astype(np.float32),
        "Y_phi": rng.random((n, N, N, C)).astype(np.float32),
        "coords_nominal": np.zeros((n, 1, 2, C), np.float32),
        "coords_offsets": rng.random((n, 1, 2, C)).astype(np.float32),
        "probeGuess": np.ones((N, N), np.complex64),
        "norm_Y_I": np.float32(2.0),
    }


def write(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def err(path, key, what):
    return rf"^dataset '{re.escape(str(path))}': key '{key}' {what}"


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("gridsize", [1, 2])
def test_round_trip_simulated_split(tmp_path, gridsize):
    arrays = small_split(gridsize)
    C = gridsize ** 2
    path = save_dataset(tmp_path / "split.npz", arrays, {"split": "train", "N": N})
    assert not list(tmp_path.glob("*.tmp.npz"))
    d = load_dataset(path, expect_N=N, expect_gridsize=gridsize)
    assert isinstance(d, PtychoDataset)
    n = arrays["diffraction"].shape[0]
    assert d.n == n and d.N == N and d.gridsize == gridsize and d.path == str(path)
    for key in ("diffraction", "Y_I", "Y_phi"):
        a = getattr(d, key)
        assert a.shape == (n, C, N, N) and a.dtype == np.float32
        assert a.flags.c_contiguous
        np.testing.assert_array_equal(a, np.moveaxis(arrays[key], -1, 1))
    for key in ("coords_nominal", "coords_offsets"):
        a = getattr(d, key)
        assert a.shape == (n, C, 1, 2) and a.dtype == np.float32
        np.testing.assert_array_equal(a[:, :, 0, :], arrays[key][:, 0].transpose(0, 2, 1))
    np.testing.assert_array_equal(d.centres, (d.coords_offsets + d.coords_nominal)[:, :, 0, :])
    assert d.probe.dtype == np.complex64
    np.testing.assert_array_equal(d.probe, arrays["probeGuess"])
    assert d.probe_modes.shape == (1, N, N)
    assert d.norm_Y_I == pytest.approx(float(arrays["norm_Y_I"]))
    assert isinstance(d.norm_Y_I, float)
    np.testing.assert_array_equal(d.object_index, arrays["object_index"])
    assert d.metadata == {"split": "train", "N": N}
    assert d.ground_truth is None and d.ground_truth_all is None and d.bad_pixels is None
    # select / object_selection index every per-pattern array alike
    sub = d.select(d.object_selection(1))
    assert sub.n == int((arrays["object_index"] == 1).sum()) and (sub.object_index == 1).all()
    np.testing.assert_array_equal(sub.Y_I, d.Y_I[d.object_index == 1])
    with pytest.raises(ValueError, match=r"no patterns of object 5 \(key 'object_index'\)"):
        d.object_selection(5)


def test_load_simulated_test_split_ground_truth(tmp_path):
    spec = GridLinesSpec(object_size=64, N=N, n_lines=10, train_stride=8, test_stride=16,
                         n_train_objects=1, n_test_objects=2, probe_defocus=2.0)
    paths = simulate_grid_lines(spec, tmp_path)
    te = load_dataset(paths.test, expect_N=N, expect_gridsize=1, require_ground_truth=True)
    assert te.ground_truth.shape == (64, 64)
    assert te.ground_truth.dtype == np.complex64
    assert te.ground_truth_all.shape == (2, 64, 64)
    assert te.diffraction.shape == (2 * 4 * 4, 1, N, N)
    assert te.metadata["split"] == "test" and te.metadata["N"] == N
    assert te.object_index.tolist() == [0] * 16 + [1] * 16
    tr = load_dataset(paths.train)
    assert tr.metadata["scale"] == te.metadata["scale"] == tr.photon_scale
    with pytest.raises(ValueError, match=err(paths.train, "YY_ground_truth", "is missing")):
        load_dataset(paths.train, require_ground_truth=True)


def test_reference_style_file_accepted(tmp_path):
    rng = np.random.default_rng(2)
    path = write(tmp_path, diffraction=rng.random((4, N, N)).astype(np.float64),
                 probeGuess=np.ones((N, N), np.complex128),
                 coords_nominal=np.zeros((4, 2)), coords_offsets=rng.random((4, 2)),
                 xcoords=np.arange(4))  # unknown keys are ignored
    d = load_dataset(path)
    assert d.diffraction.shape == (4, 1, N, N) and d.diffraction.dtype == np.float32
    assert d.coords_offsets.shape == (4, 1, 1, 2)
    assert d.gridsize == 1 and d.metadata == {} and d.norm_Y_I == 1.0
    assert d.photon_scale == 1.0  # no 'scale' in the metadata
    assert d.object_index.tolist() == [0, 0, 0, 0]
    assert d.Y_I is None and not hasattr(d, "xcoords")


def test_missing_coords_default_to_zeros_and_int_diffraction_cast(tmp_path):
    path = write(tmp_path, diffraction=np.ones((2, N, N, 4), np.int32),
                 probeGuess=np.ones((N, N), np.float32))
    d = load_dataset(path)
    assert d.gridsize == 2 and d.diffraction.dtype == np.float32
    assert d.coords_nominal.shape == (2, 4, 1, 2) and not d.coords_nominal.any()
    assert d.probe.dtype == np.complex64


def test_save_dataset_exact_path_and_guards(tmp_path):
    path = save_dataset(tmp_path / "sub" / "noext", valid_arrays(), {"a": 1})
    assert path.name == "noext" and path.is_file()
    assert load_dataset(path).metadata == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["noext"]
    with pytest.raises(ValueError, match="key '_metadata' given in arrays"):
        save_dataset(tmp_path / "x.npz", {"_metadata": np.array("{}")}, {})
    with pytest.raises(ValueError, match="key '_metadata' is not JSON-serialisable"):
        save_dataset(tmp_path / "x.npz", valid_arrays(), {"bad": object()})
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------- defects

def test_missing_file(tmp_path):
    p = tmp_path / "nope.npz"
    with pytest.raises(ValueError, match=rf"^dataset '{re.escape(str(p))}': cannot read NPZ: "
                                         r"file does not exist"):
        load_dataset(p)


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("hello, I am not an archive\n")
    pattern = r"cannot read NPZ: not a zip archive \(starts with b.hello,.\) \(expected a"
    with pytest.raises(ValueError, match=pattern):
        load_dataset(p)


def test_npy_not_npz(tmp_path):
    p = tmp_path / "arr.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match=r"cannot read NPZ: file holds a single \.npy array"):
        load_dataset(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read NPZ: file is empty"):
        load_dataset(p)


def test_corrupted_member(tmp_path):
    import zipfile
    good = save_dataset(tmp_path / "good.npz", valid_arrays(), {})
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:  # where the first member's bytes are, from the archive
        info = z.infolist()[0]
    # local header (30 bytes + name + extra field), then the payload: zero its middle
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    mid = start + info.compress_size // 2
    data[mid:mid + 32] = b"\x00" * 32
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(data))
    key = info.filename[:-len(".npy")]
    with pytest.raises(ValueError) as exc:
        load_dataset(bad)
    line = str(exc.value)
    assert line.startswith(f"dataset '{bad}': cannot read NPZ: key '{key}': "), line
    assert line.endswith("(expected a readable .npz archive written by numpy.savez)")
    assert "\n" not in line


def test_truncated_file(tmp_path):
    good = save_dataset(tmp_path / "good.npz", valid_arrays(), {})
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cannot read NPZ: "):
            load_dataset(bad)


@pytest.mark.parametrize("drop,key,what", [
    ("diffraction", "diffraction", "is missing"),
    ("probeGuess", "probeGuess", r"is missing \(expected a \(16, 16\) complex64"),
])
def test_missing_required_key(tmp_path, drop, key, what):
    arrays = valid_arrays()
    del arrays[drop]
    p = write(tmp_path, **arrays)
    with pytest.raises(ValueError, match=err(p, key, what)):
        load_dataset(p)


@pytest.mark.parametrize("mutate,key,what", [
    (lambda a: a.update(diffraction=np.ones((3, N), np.float32)), "diffraction",
     r"has shape \(3, 16\) \(ndim 2\) \(expected"),
    (lambda a: a.update(diffraction=np.ones((3, N, N + 1, 1), np.float32)), "diffraction",
     "has non-square patterns"),
    (lambda a: a.update(diffraction=np.ones((0, N, N, 1), np.float32)), "diffraction",
     r"is empty \(0 patterns\) \(expected at least 1 pattern\)"),
    (lambda a: a.update(diffraction=np.ones((3, N, N, 3), np.float32)), "diffraction",
     r"has C = 3 channels, not a perfect square \(expected C = gridsize\*\*2"),
    (lambda a: a.update(diffraction=np.ones((3, N, N, 1), np.complex64)), "diffraction",
     r"has complex dtype complex64 \(expected a real float or integer dtype\)"),
    (lambda a: a["diffraction"].__setitem__((1, 2, 3, 0), np.nan), "diffraction",
     r"contains non-finite values \(1 NaN, 0 Inf\) \(expected finite values only\)"),
    (lambda a: a["diffraction"].__setitem__((0, 0, 0, 0), -0.5), "diffraction",
     r"has 1 negative values .*\(expected amplitudes >= 0\)"),
    (lambda a: a["Y_phi"].__setitem__((2, 0, 0, 0), np.inf), "Y_phi",
     r"contains non-finite values \(0 NaN, 1 Inf\)"),
    (lambda a: a.update(Y_I=np.ones((2, N, N, 1), np.float32)), "Y_I",
     r"has 2 patterns \(expected 3, as in 'diffraction'\)"),
    (lambda a: a.update(Y_I=np.ones((3, N, N, 4), np.float32)), "Y_I",
     r"has shape \(3, 16, 16, 4\) \(expected \(3, 16, 16, 1\) to match 'diffraction'\)"),
    (lambda a: a.update(probeGuess=np.ones((N * 2, N * 2), np.complex64)), "probeGuess",
     r"has shape \(32, 32\) \(expected \(16, 16\), or \(modes, 16, 16\), to match "
     r"'diffraction' N = 16\)"),
    (lambda a: a.update(probeGuess=np.full((N, N), "x")), "probeGuess",
     r"has dtype \S+ \(expected a complex"),  # the dtype's spelling is numpy's
    (lambda a: a["probeGuess"].__setitem__((0, 0), np.nan), "probeGuess",
     "contains non-finite values"),
    (lambda a: a.update(coords_offsets=np.zeros((3, 1, 3, 1), np.float32)), "coords_offsets",
     r"has shape \(3, 1, 3, 1\) \(expected \(n, 1, 2, C\) = \(3, 1, 2, 1\) or \(n, 2\)"),
    (lambda a: a.update(coords_nominal=np.zeros((4, 2), np.float32)), "coords_nominal",
     r"has 4 patterns \(expected 3, as in 'diffraction'\)"),
    (lambda a: a.update(coords_nominal=np.zeros((3, 1, 2, 1), np.complex64)),
     "coords_nominal", "has complex dtype"),
    (lambda a: a.update(norm_Y_I=np.float32(-1)), "norm_Y_I",
     r"is -1\.0 \(expected a positive scalar\)"),
    (lambda a: a.update(object_index=np.zeros(3, np.float32)), "object_index",
     "has dtype float32"),
    (lambda a: a.update(pattern_index=np.zeros((3, 2), np.int64)), "pattern_index",
     r"has shape \(3, 2\) \(expected \(n, C\) = \(3, 1\)\)"),
    (lambda a: a.update(pattern_index=np.zeros((3, 1), np.float32)), "pattern_index",
     "has dtype float32"),
    (lambda a: a.update(pattern_index=-np.ones((3, 1), np.int64)), "pattern_index",
     r"has negative values \(expected indices >= 0\)"),
    (lambda a: a.update(YY_ground_truth=np.ones((4, 4, 2), np.complex64)), "YY_ground_truth",
     r"has shape \(4, 4, 2\)"),
    (lambda a: a.update(_metadata=np.array("{not json")), "_metadata", "is not valid JSON"),
    (lambda a: a.update(_metadata=np.array("[1, 2]")), "_metadata",
     r"is a JSON list \(expected a JSON object\)"),
])
def test_defects_named(tmp_path, mutate, key, what):
    arrays = valid_arrays()
    mutate(arrays)
    p = write(tmp_path, **arrays)
    with pytest.raises(ValueError, match=err(p, key, what)) as info:
        load_dataset(p)
    assert "\n" not in str(info.value)


def test_expectations(tmp_path):
    p = write(tmp_path, **valid_arrays(C=4))
    assert load_dataset(p).gridsize == 2
    with pytest.raises(ValueError, match=err(p, "diffraction",
                                             r"has C = 4 channels \(gridsize 2\) "
                                             r"\(expected gridsize 1, C = 1\)")):
        load_dataset(p, expect_gridsize=1)
    with pytest.raises(ValueError, match=err(p, "diffraction",
                                             r"has pattern size N = 16 \(expected N = 64, the study's --N; "
                                             r"pass --N 16 to use these patterns\)$")):
        load_dataset(p, expect_N=64)
    arrays = valid_arrays(C=4)
    arrays["coords_offsets"] = np.zeros((3, 2), np.float32)
    p2 = write(tmp_path, "c4.npz", **arrays)
    with pytest.raises(ValueError, match=err(p2, "coords_offsets", r"has shape \(3, 2\)")):
        load_dataset(p2)


def test_metadata_is_json_string(tmp_path):
    path = save_dataset(tmp_path / "m.npz", valid_arrays(), {"nested": {"x": [1, 2]}})
    with np.load(path, allow_pickle=False) as z:
        assert z["_metadata"].shape == () and z["_metadata"].dtype.kind == "U"
        assert json.loads(str(z["_metadata"])) == {"nested": {"x": [1, 2]}}


def test_pattern_index_round_trips_and_is_kept_by_select(tmp_path):
    """Which measured pattern each patch is survives the file and any subset."""
    arrays = small_split(gridsize=2)
    p = tmp_path / "g2.npz"
    save_dataset(p, arrays, {})
    d = load_dataset(p)
    np.testing.assert_array_equal(d.pattern_index, arrays["pattern_index"])
    assert d.pattern_index.shape == (d.n, 4)
    sub = d.select(np.arange(1, d.n, 2))
    np.testing.assert_array_equal(sub.pattern_ids(), d.pattern_ids()[1::2])
    # without the key (older files): gridsize 1 numbers the patches, and a subset keeps
    # its parent's numbers
    g1 = load_dataset(write(tmp_path, **valid_arrays(n=5)))
    assert g1.pattern_index is None
    np.testing.assert_array_equal(g1.pattern_ids(), np.arange(5)[:, None])
    np.testing.assert_array_equal(g1.select([3, 1]).pattern_ids(), [[3], [1]])
