"""Pty-chi adapter: unit conventions, forward-model consistency, reconstruction, missing extra.

The forward-model tests compare against *our own* noise-free simulation
(``ptycho.datagen.grid_lines``): our re-implementation of Pty-chi's stated convention
(unnormalized FFT, DC at index 0, centre-of-patch positions) and Pty-chi's real forward
model must both turn the true object into the simulated counts ``(s * A)^2``.
CI installs Pty-chi (.ci/run); without it the Pty-chi tests fail with the install hint.
"""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho.forward import diffraction_amplitude
from ptycho.datagen.grid_lines import extract_patches
from ptycho.geometry.raster import scan_top_left
from ptycho.stitching import grid_region
from ptycho_torch import ptychi
from ptycho_torch.ptychi import _torchvision as ptychi_tv
from ptycho_torch.ptychi import baseline as ptychi_baseline
from ptycho_torch.ptychi import engine as ptychi_engine
from ptycho_torch.ptychi import scan as ptychi_scan

REPO = Path(__file__).resolve().parents[3]



def _noise_free_counts(test) -> np.ndarray:
    """Our simulation code's expected counts (s*A)^2 of test object 0, float64 (n, N, N)."""
    meta = test.metadata
    amp = diffraction_amplitude(extract_patches(test.ground_truth, test.N, meta["stride"]),
                                test.probe).astype(np.float64)
    return (meta["scale"] * amp) ** 2


def test_scan_conversion_units_and_positions(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    N, s, stride = test.N, test.metadata["scale"], test.metadata["stride"]
    n = (64 - N) // stride + 1
    assert scan.patterns.shape == (n * n, N, N) and scan.patterns.dtype == np.float32
    assert scan.probe.shape == (1, 1, N, N) and scan.probe.dtype == np.complex64
    np.testing.assert_allclose(scan.probe[0, 0], test.probe * (s / N), rtol=1e-6)
    # centres (x, y) = (c0 + N//2, r0 + N//2) of the raster, row-major
    tl = scan_top_left(64, N, stride)
    np.testing.assert_array_equal(scan.positions_xy, np.stack([tl[:, 1], tl[:, 0]], 1) + N // 2)
    assert scan.object_shape == (64, 64) and scan.origin == scan.margin - 0.5
    # counts = (s * stored amplitude)^2, and they are Poisson samples of the noise-free counts
    np.testing.assert_allclose(scan.patterns, (s * test.diffraction[:, 0].astype(np.float64)) ** 2,
                               rtol=1e-5)
    ref = _noise_free_counts(test)
    z = (scan.patterns - ref) / np.sqrt(ref + 1.0)
    assert abs(float(z.mean())) < 0.05 and 0.8 < float(z.std()) < 1.2
    # the Parseval amplitude estimate is close to the true mean amplitude of the scanned area
    assert 0.5 < scan.amplitude_guess / float(np.abs(test.ground_truth).mean()) < 2.0


def test_own_reimplementation_of_the_ptychi_convention_reproduces_our_counts(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    ref = _noise_free_counts(test)
    ours = ptychi_scan.convention_intensity(test.ground_truth, scan)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() / ref.max() < 1e-5
    # the identity is not vacuous: a one-pixel position error or an ortho-FFT probe breaks it
    shifted = ptychi_scan.PtychiScan(**{**scan.__dict__, "positions_xy": scan.positions_xy + [1.0, 0.0]})
    assert np.abs(ptychi_scan.convention_intensity(test.ground_truth, shifted) - ref).max() / ref.max() > 1e-2
    ortho = ptychi_scan.PtychiScan(**{**scan.__dict__, "probe": scan.probe * test.N})
    scaled = ptychi_scan.convention_intensity(test.ground_truth, ortho)
    np.testing.assert_allclose(scaled, test.N ** 2 * ref, rtol=1e-4, atol=1e-5 * test.N ** 2 * ref.max())


@pytest.mark.iterative
def test_ptychi_forward_model_reproduces_our_simulated_counts(require_ptychi, tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    dtype, device = torch.get_default_dtype(), torch.get_default_device()
    y = ptychi_engine.ptychi_forward_intensity(test.ground_truth, scan, device="cpu")
    ref = _noise_free_counts(test)
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() / ref.max() < 1e-5
    assert np.abs(y - ptychi_scan.convention_intensity(test.ground_truth, scan)).max() / ref.max() < 1e-5
    # Pty-chi changes torch's defaults globally; the adapter restores them
    assert torch.get_default_dtype() == dtype and torch.get_default_device() == device


def test_gridsize2_scan_uses_every_position_once(tiny_data, tiny_data_g2):
    _, test1 = tiny_data
    _, test2 = tiny_data_g2
    s1, s2 = ptychi_scan.scan_for_ptychi(test1), ptychi_scan.scan_for_ptychi(test2)
    assert s2.patterns.shape == s1.patterns.shape
    assert sorted(map(tuple, s2.positions_xy)) == sorted(map(tuple, s1.positions_xy))
    ref = ptychi_scan.convention_intensity(test2.ground_truth, s2)
    z = (s2.patterns - ref) / np.sqrt(ref + 1.0)  # each pattern sits at its own position
    assert float(np.abs(z).mean()) < 1.2


@pytest.mark.iterative
def test_lsqml_with_known_probe_reconstructs_the_tiny_object(require_ptychi, tiny_data):
    from ptycho.reconstruction import score
    _, test = tiny_data
    rec, res = ptychi_baseline.reconstruct_iterative("lsqml", test, epochs=30, device="cpu", seed=0)
    assert rec.region == grid_region(32, 8, 5) == (12, 12, 40, 40)
    assert rec.recon.shape == rec.ground_truth.shape == (40, 40) and rec.recon.dtype == np.complex64
    assert res.epochs == 30 and res.n_patterns == 25 and res.time_s > 0
    result, _ = score(rec)
    amp_psnr, phase_psnr = result["metrics"]["psnr"]
    assert amp_psnr > 25 and phase_psnr > 22 and result["phase_correlation"] > 0.9
    flat = type(rec)(**{**rec.__dict__, "recon": np.full_like(rec.recon, rec.recon.mean())})
    flat_psnr = score(flat)[0]["metrics"]["psnr"][0]
    assert amp_psnr > flat_psnr + 8


def test_missing_extra_gives_a_one_line_error_naming_it(monkeypatch, tiny_data):
    monkeypatch.setitem(sys.modules, "ptychi", None)  # "import ptychi" now raises ImportError
    with pytest.raises(ptychi.IterativeUnavailableError) as info:
        ptychi.import_ptychi()
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert "optional extra 'iterative'" in msg and "pip install -e '.[iterative]'" in msg
    assert "bash scripts/install_iterative.sh" in msg and (REPO / "scripts/install_iterative.sh").is_file()
    assert not ptychi.ptychi_available()
    with pytest.raises(ptychi.IterativeUnavailableError, match=r"pip install -e '\.\[iterative\]'"):
        ptychi_baseline.reconstruct_iterative("lsqml", tiny_data[1], epochs=1, device="cpu")


def test_compare_cli_refuses_iterative_without_the_extra(monkeypatch, tmp_path, capsys):
    import grid_lines_compare as compare
    monkeypatch.setitem(sys.modules, "ptychi", None)
    out = tmp_path / "never"
    rc = compare.main(["--architectures", "fno", "--iterative", "lsqml", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: Pty-chi is not installed") and "'.[iterative]'" in err
    assert not out.exists()


def test_engine_names_are_validated():
    assert ptychi.check_engines(["LSQML", " epie", "lsqml"]) == ("lsqml", "epie")
    with pytest.raises(ValueError, match=r"iterative engine 'dm' is not supported "
                                         r"\(allowed: lsqml, lsqml-poisson, epie\)"):
        ptychi.check_engines(["dm"])


def test_torchvision_stand_in_blur_matches_a_gaussian_filter():
    from scipy.ndimage import gaussian_filter
    blur = ptychi_tv._gaussian_blur_stand_in()(kernel_size=(9, 9), sigma=(3, 3))
    img = torch.rand(1, 1, 40, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = blur(img)[0, 0].numpy()
    # torch's "reflect" padding is scipy's "mirror"; 9 taps = radius 4 = truncate 4/3 at sigma 3
    ref = gaussian_filter(img[0, 0].numpy(), sigma=3, mode="mirror", truncate=4 / 3)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_torchvision_stand_in_lives_only_for_the_import(monkeypatch):
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.delitem(sys.modules, "torchvision.transforms", raising=False)
    with ptychi_tv.torchvision_stand_in():
        mod = importlib.import_module("torchvision.transforms")
        assert hasattr(mod, "GaussianBlur")
    assert "torchvision" not in sys.modules and "torchvision.transforms" not in sys.modules
