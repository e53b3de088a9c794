"""Reference levels: simple objects scored on a region, and the labels' training loss."""
import numpy as np
import pytest

from ptycho_torch.studies.reference_levels import (
    main,
    reference_objects,
    reference_scores,
    truth_residuals,
)


def _object(seed=0, n=48):
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    amp = 1.0 + gaussian_filter(rng.random((n, n)), 2.0)
    phase = 0.8 * gaussian_filter(rng.standard_normal((n, n)), 2.0) / 0.1
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def test_reference_objects_and_their_scores():
    gt = _object()
    objs = reference_objects(gt, sigmas=(1, 3))
    assert list(objs) == ["flat", "true_amplitude_zero_phase", "blurred_sigma1", "blurred_sigma3"]
    assert np.allclose(objs["flat"], np.abs(gt).mean())
    np.testing.assert_allclose(objs["true_amplitude_zero_phase"], np.abs(gt), rtol=1e-6)
    s = reference_scores(gt, sigmas=(1, 3))
    zero = s["true_amplitude_zero_phase"]["metrics"]
    assert zero["ssim"][0] == pytest.approx(1.0, abs=1e-6)
    # both zero-phase objects score the same phase, up to the amplitude weighting of the
    # fitted phase ramp (|pred| |gt|: the flat amplitude weights it differently)
    assert zero["ssim"][1] == pytest.approx(s["flat"]["metrics"]["ssim"][1], abs=1e-3)
    assert zero["psnr"][1] == pytest.approx(s["flat"]["metrics"]["psnr"][1], abs=1e-2)
    # more blur, lower scores in both channels
    for key in ("ssim", "psnr"):
        for ch in (0, 1):
            assert s["blurred_sigma1"]["metrics"][key][ch] > s["blurred_sigma3"]["metrics"][key][ch]
    with pytest.raises(ValueError, match=r"^blur sigma=0 is out of range \(allowed: > 0 pixels\)$"):
        reference_objects(gt, sigmas=(0,))
    with pytest.raises(ValueError, match=r"expected a 2-D complex array"):
        reference_objects(np.abs(gt))


def test_truth_residuals_true_object_fits_and_zero_phase_does_not(tiny_data):
    _, test = tiny_data
    r = truth_residuals(test)
    assert r["n_patterns"] == test.n
    # the true object re-simulates its own patterns up to the photon noise of the simulation
    assert r["true_object"] < 0.02
    # removing the phase leaves a clear misfit
    assert r["true_amplitude_zero_phase"] > 5 * r["true_object"]
    # a one-pixel shift of every cut breaks the fit (the cuts are at the right centres)
    import dataclasses
    shifted = dataclasses.replace(test, coords_offsets=test.coords_offsets + 1.0)
    assert truth_residuals(shifted)["true_object"] > 5 * r["true_object"]
    with pytest.raises(ValueError, match=r"key 'YY_ground_truth' is missing"):
        truth_residuals(dataclasses.replace(test, ground_truth=None, ground_truth_all=None))


def test_cli_prints_levels_and_refuses_bad_files(tmp_path, capsys):
    gt = _object(1)
    good = tmp_path / "recon.npz"
    np.savez(good, reconstruction=gt * 0.9, ground_truth=gt)
    assert main([str(good), "--sigmas", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| object | amp SSIM | phase SSIM")
    assert [line.split(" | ")[0] for line in out[2:]] == [
        f"| {good}", "| flat", "| true_amplitude_zero_phase", "| blurred_sigma2"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, reconstruction=gt)
    for argv, message in [
        ([str(bad)], f"error: recon file '{bad}': key 'ground_truth' is missing (expected a "
                     "study's recon.npz of a scan with ground truth)"),
        ([str(tmp_path / "none.npz")], f"error: recon file '{tmp_path / 'none.npz'}' does not "
                                       "exist (expected a study's recons/<model_id>/recon.npz)"),
        ([str(good), "--sigmas", "1,x"], "error: --sigmas='1,x' is not a comma-separated list "
                                         "of numbers (allowed: e.g. 1,2,4)"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.strip() == message and err.count("\n") == 1


def test_cli_register_removes_a_shift_of_the_given_reconstruction(tmp_path, capsys):
    from scipy.ndimage import fourier_shift
    gt = _object(2, n=64)
    moved = np.fft.ifft2(fourier_shift(np.fft.fft2(gt), (0.0, 0.5))).astype(np.complex64)
    path = tmp_path / "recon.npz"
    np.savez(path, reconstruction=moved, ground_truth=gt)
    psnr = {}
    for flags in ([], ["--register"]):
        assert main([str(path), "--sigmas", "2", *flags]) == 0
        rows = capsys.readouterr().out.splitlines()
        cells = [c.strip() for c in rows[2].strip("|").split("|")]
        psnr[bool(flags)] = float(cells[3])                      # amp PSNR of the recon
        flat = [c.strip() for c in rows[3].strip("|").split("|")]
        assert flat[0] == "flat"                                 # never registered
    assert psnr[True] > psnr[False] + 5, psnr   # the wrapped edges of the test shift ring
