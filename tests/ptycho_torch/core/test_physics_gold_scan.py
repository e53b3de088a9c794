"""Gold data: a small stored scan, and the project's physics and data residual against an
independent numpy computation of the conventions in docs/design.md ("Physics conventions").

``data/gold_scan.npz`` holds inputs only: a 40 x 40 complex object, a perturbed copy, a
two-mode 16 x 16 probe (band-limited: no content at the Nyquist frequency), 20 sub-pixel
positions (x, y), the photon scale, Poisson counts with three bad pixels (their counts set
huge, so a residual that used them would show it), and the four residuals the reference
below gave when the file was written (``gold_*``). The test recomputes every number with
the reference and compares the project's code with it; the stored numbers must also come
out again (a change of the data or of the reference shows).

The reference (``ref_*``) uses numpy only (``np.fft``, float64), written from the stated
conventions, not from the project's code:

* far field ``A = fftshift(|fft2(O P, norm="ortho")|)``, probe modes add in intensity;
* a probe centred at ``c`` (x, y) lights the patch whose top-left pixel is
  ``floor(c - N//2)``, moved by the rest ``f`` in [0, 1): ``P(r - f)``, a band-limited
  (trigonometric) translation, anchored by an integer shift being ``np.roll``;
* photon scale ``s = sqrt(nphotons / mean over patterns of sum |O P|^2)``;
* residuals over the measured pixels: amplitude MAE ``sum|A - sqrt(counts)/s| / sum
  sqrt(counts)/s`` and the Poisson NLL ``mean(I - k log(I + 1e-8 m)) / m`` of predicted
  counts ``I = s^2 A^2`` against the counts ``k`` (``m`` their mean).

Regenerate the file (only when the scan itself must change) with
``python tests/ptycho_torch/core/test_physics_gold_scan.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from ptycho import forward
from ptycho_torch.core.residual import data_residual, object_residual
from ptycho.geometry.patches import subpixel_cuts
from ptycho_torch.core.physics import FarFieldPtychography

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold_scan.npz"
N = 16
EPS = 1e-8  # the Poisson NLL's floor inside the log, relative to the mean count


# ------------------------------------------------------------------ the reference (numpy)
def ref_shifted(probe: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """``P(r - f)`` of each mode of ``probe`` (K, N, N): multiply the spectrum by the
    ramp of a translation by (fx, fy). The probe has no Nyquist content (asserted), so the
    result does not depend on how that frequency is assigned."""
    n = probe.shape[-1]
    spec = np.fft.fft2(probe.astype(np.complex128))
    assert np.abs(spec[..., n // 2, :]).max() < 1e-5 * np.abs(spec).max()
    assert np.abs(spec[..., :, n // 2]).max() < 1e-5 * np.abs(spec).max()
    k = np.fft.fftfreq(n)
    ramp = np.exp(-2j * np.pi * (k[:, None] * fy + k[None, :] * fx))
    return np.fft.ifft2(spec * ramp)


def ref_intensity(exit_waves: np.ndarray) -> np.ndarray:
    """``sum_k |fftshift(fft2(psi_k, ortho))|^2`` of exit waves (n, K, N, N) -> (n, N, N)."""
    far = np.fft.fftshift(np.fft.fft2(exit_waves, norm="ortho"), axes=(-2, -1))
    return (np.abs(far) ** 2).sum(axis=1)


def ref_cuts(obj: np.ndarray, positions: np.ndarray):
    """Patches (n, N, N) at the integer corners floor(c - N//2) and the rests (n, 2) (fx, fy)."""
    patches, rests = [], []
    for x, y in positions:
        cx, cy = x - N // 2, y - N // 2
        c0, r0 = int(np.floor(cx)), int(np.floor(cy))
        patches.append(obj[r0:r0 + N, c0:c0 + N].astype(np.complex128))
        rests.append((cx - c0, cy - r0))
    return np.stack(patches), np.array(rests)


def ref_subpixel_intensity(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Expected intensity (n, N, N) of ``obj`` under the probe moved to each position."""
    patches, rests = ref_cuts(obj, positions)
    waves = np.stack([p[None] * ref_shifted(probe, fx, fy) for p, (fx, fy) in zip(patches, rests)])
    return ref_intensity(waves)


def ref_scale(patches: np.ndarray, probe: np.ndarray, nphotons: float) -> float:
    waves = patches[:, None].astype(np.complex128) * probe[None]
    return float(np.sqrt(nphotons / (np.abs(waves) ** 2).sum(axis=(1, 2, 3)).mean()))


def ref_residual(intensity: np.ndarray, counts: np.ndarray, s: float, bad: np.ndarray) -> dict:
    """Amplitude MAE and Poisson NLL of predicted intensities against counts, measured pixels."""
    pred = np.sqrt(intensity[:, ~bad])
    k = counts[:, ~bad].astype(np.float64)
    meas = np.sqrt(k) / s
    mae = np.abs(pred - meas).sum() / meas.sum()
    i_pred = s * s * pred ** 2
    m = k.mean()
    nll = np.mean(i_pred - k * np.log(i_pred + EPS * m)) / m
    return {"amplitude_mae": float(mae), "poisson_nll": float(nll)}


def ref_poisson_floor(intensity: np.ndarray, counts: np.ndarray, s: float, bad: np.ndarray) -> float:
    """The expected amplitude MAE of the truth itself: ``E|sqrt(K) - sqrt(lam)|`` for
    ``K ~ Poisson(lam)``, ``lam = s^2 I`` (exact sums over the Poisson pmf), per measured
    pixel, over the measured amplitudes."""
    lam = (s * s * intensity[:, ~bad]).ravel()
    dev = np.empty_like(lam)
    for i, mu in enumerate(lam):  # the pmf beyond 12 standard deviations is negligible
        k = np.arange(max(0, int(mu - 12 * np.sqrt(mu) - 12)), int(mu + 12 * np.sqrt(mu) + 13))
        dev[i] = np.sum(stats.poisson.pmf(k, mu) * np.abs(np.sqrt(k) - np.sqrt(mu)))
    return float(dev.sum() / s / (np.sqrt(counts[:, ~bad].astype(np.float64)) / s).sum())


# ------------------------------------------------------------------ the generator
def _smooth(rng, shape, fmax):
    """A real random field with |frequency| <= fmax cycles per image, scaled to [-1, 1]."""
    u = np.fft.fftfreq(shape[0]) * shape[0]
    v = np.fft.fftfreq(shape[1]) * shape[1]
    band = (np.abs(u)[:, None] <= fmax) & (np.abs(v)[None, :] <= fmax)
    spec = np.where(band, rng.standard_normal(shape) + 1j * rng.standard_normal(shape), 0)
    f = np.fft.ifft2(spec).real
    return f / np.abs(f).max()


def make_gold_scan(path: Path = GOLD, seed: int = 20240611) -> None:
    """Write the gold scan (numpy and the reference above only)."""
    rng = np.random.default_rng(seed)
    H = W = 40
    amp = 0.9 + 0.25 * _smooth(rng, (H, W), 4)
    amp[14:20, 22:30] *= 0.5                                         # a sharp-edged feature
    obj = (amp * np.exp(0.8j * _smooth(rng, (H, W), 3))).astype(np.complex64)
    perturbed = (obj * (1 + 0.1 * _smooth(rng, (H, W), 3))
                 * np.exp(0.25j * _smooth(rng, (H, W), 3))).astype(np.complex64)
    k = np.arange(N) - N // 2
    kx, ky = np.meshgrid(k, k)
    R = 4.0
    pupil = np.where(kx ** 2 + ky ** 2 <= R * R, np.exp(3j * (kx ** 2 + ky ** 2) / R ** 2), 0)
    modes = [np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(p)))
             for p in (pupil, pupil * (kx + 1j * ky) / R)]
    probe = np.stack([modes[0], modes[1] * 0.45 * np.abs(modes[0]).max() / np.abs(modes[1]).max()])
    probe = (probe / np.abs(probe[0]).max()).astype(np.complex64)
    gx, gy = np.meshgrid(10.0 + 4.6 * np.arange(5), 10.0 + 6.0 * np.arange(4))
    positions = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.uniform(-0.7, 0.7, (20, 2))
    positions[0], positions[1] = (12.0, 11.0), (16.5, 11.5)          # an integer one, halves
    nphotons = 1e6
    s = ref_scale(ref_cuts(obj, positions)[0], probe, nphotons)
    truth = ref_subpixel_intensity(obj, probe, positions)
    counts = rng.poisson(s * s * truth).astype(np.int32)
    bad = np.zeros((N, N), bool)
    bad[0, 0] = bad[5, 11] = bad[N // 2, N // 2 + 1] = True
    counts[:, bad] = 10 ** 6
    gold = {f"gold_{name}_{key}": value
            for name, o in (("true", obj), ("perturbed", perturbed))
            for key, value in ref_residual(ref_subpixel_intensity(o, probe, positions),
                                           counts, s, bad).items()}
    np.savez_compressed(path, object=obj, object_perturbed=perturbed, probe=probe,
                        positions=positions, nphotons=nphotons, photon_scale=s, counts=counts,
                        bad_pixels=bad, **gold)


# ------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def gold():
    with np.load(GOLD) as z:
        return {k: z[k] for k in z.files}


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def test_the_reference_translation_is_np_roll():
    rng = np.random.default_rng(1)
    spec = np.zeros((2, N, N), complex)
    spec[:, :5, :5] = rng.standard_normal((2, 5, 5)) + 1j * rng.standard_normal((2, 5, 5))
    p = np.fft.ifft2(spec)                                           # no Nyquist content
    np.testing.assert_allclose(ref_shifted(p, 1.0, 0.0), np.roll(p, 1, axis=-1), atol=1e-12)
    np.testing.assert_allclose(ref_shifted(p, 0.0, 2.0), np.roll(p, 2, axis=-2), atol=1e-12)
    half = ref_shifted(ref_shifted(p, 0.5, 0.0), 0.5, 0.0)
    np.testing.assert_allclose(half, np.roll(p, 1, axis=-1), atol=1e-12)


def test_the_stored_numbers_are_the_reference_numbers(gold):
    obj, probe, pos, s = gold["object"], gold["probe"], gold["positions"], float(gold["photon_scale"])
    assert obj.shape == (40, 40) and probe.shape == (2, N, N) and pos.shape == (20, 2)
    assert gold["counts"].shape == (20, N, N) and int(gold["bad_pixels"].sum()) == 3
    assert s == pytest.approx(ref_scale(ref_cuts(obj, pos)[0], probe, float(gold["nphotons"])),
                              rel=1e-12)
    for name, o in (("true", obj), ("perturbed", gold["object_perturbed"])):
        r = ref_residual(ref_subpixel_intensity(o, probe, pos), gold["counts"], s,
                         gold["bad_pixels"])
        for key, value in r.items():
            assert value == pytest.approx(float(gold[f"gold_{name}_{key}"]), rel=1e-10), (name, key)


@pytest.mark.parametrize("modes", [1, 2])
def test_far_field_matches_numpy(gold, modes):
    """FarFieldPtychography and ptycho.forward.diffraction_amplitude at the integer cuts."""
    patches, _ = ref_cuts(gold["object"], gold["positions"])
    probe = gold["probe"][:modes]
    ref = ref_intensity(patches[:, None] * probe[None].astype(np.complex128))
    op = FarFieldPtychography(probe[0] if modes == 1 else probe)
    x = torch.from_numpy(patches.astype(np.complex64))
    with torch.no_grad():
        assert _rel(op(x).numpy(), np.sqrt(ref)) < 1e-5
        assert _rel(op.intensity(x).numpy(), ref) < 1e-5
    assert _rel(forward.diffraction_amplitude(patches.astype(np.complex64), probe), np.sqrt(ref)) < 1e-5
    # not vacuous: a flipped pattern differs, and DC sits at (N//2, N//2) with |sum| / N
    assert _rel(ref[:, ::-1, ::-1], ref) > 1e-2
    flat = FarFieldPtychography(np.ones((N, N), np.complex64))
    with torch.no_grad():
        dc = flat(torch.ones(N, N, dtype=torch.complex64)).numpy()
    expected = np.zeros((N, N))
    expected[N // 2, N // 2] = N
    np.testing.assert_allclose(dc, expected, atol=1e-5)


def test_subpixel_model_matches_numpy(gold):
    obj, probe, pos = gold["object"], gold["probe"], gold["positions"]
    ref = ref_subpixel_intensity(obj, probe, pos)
    assert _rel(forward.expected_intensity(obj, probe, pos, N), ref) < 1e-5
    patches, rests = ref_cuts(obj, pos)
    cut, shifts = subpixel_cuts(obj, pos, N)
    np.testing.assert_array_equal(cut, patches.astype(np.complex64))
    np.testing.assert_allclose(shifts, rests, atol=1e-12)
    # the sub-pixel rest matters at this tolerance: the rounded cut gives other patterns
    assert _rel(ref_intensity(patches[:, None] * probe[None]), ref) > 1e-2


def test_simulation_scale_matches_numpy(gold):
    patches, _ = ref_cuts(gold["object"], gold["positions"])
    s = forward.simulation_scale(patches.astype(np.complex64), gold["probe"], float(gold["nphotons"]))
    assert s == pytest.approx(float(gold["photon_scale"]), rel=1e-6)


@pytest.mark.parametrize("name", ["object", "object_perturbed"])
def test_data_residual_matches_numpy(gold, name):
    probe, pos, s, bad = gold["probe"], gold["positions"], float(gold["photon_scale"]), gold["bad_pixels"]
    counts = gold["counts"]
    meas = (np.sqrt(counts.astype(np.float64)) / s).astype(np.float32)[:, None]   # as stored
    ref = ref_residual(ref_subpixel_intensity(gold[name], probe, pos), counts, s, bad)
    got = object_residual(gold[name], pos[:, None], meas, probe, photon_scale=s, bad_pixels=bad)
    assert got["n_patterns"] == 20
    assert got["amplitude_mae"] == pytest.approx(ref["amplitude_mae"], rel=1e-5)
    assert got["poisson_nll"] == pytest.approx(ref["poisson_nll"], rel=1e-5)
    # the patches as given (no probe shift): the plain cut under the unmoved probe
    patches, _ = ref_cuts(gold[name], pos)
    ref0 = ref_residual(ref_intensity(patches[:, None] * probe[None]), counts, s, bad)
    got0 = data_residual(patches.astype(np.complex64)[:, None], meas, probe, photon_scale=s,
                         bad_pixels=bad)
    assert got0["amplitude_mae"] == pytest.approx(ref0["amplitude_mae"], rel=1e-5)
    assert got0["poisson_nll"] == pytest.approx(ref0["poisson_nll"], rel=1e-5)


def test_the_true_object_scores_the_poisson_floor(gold):
    """The truth's residual is the noise (exact expectation from the Poisson pmf), the
    perturbed object's several times more, and the truth has the lower NLL."""
    probe, pos, s, bad = gold["probe"], gold["positions"], float(gold["photon_scale"]), gold["bad_pixels"]
    truth = ref_subpixel_intensity(gold["object"], probe, pos)
    floor = ref_poisson_floor(truth, gold["counts"], s, bad)
    true_mae, perturbed_mae = (float(gold[f"gold_{n}_amplitude_mae"]) for n in ("true", "perturbed"))
    assert true_mae == pytest.approx(floor, rel=0.1), (true_mae, floor)
    assert perturbed_mae > 3 * floor, (perturbed_mae, floor)
    assert float(gold["gold_true_poisson_nll"]) < float(gold["gold_perturbed_poisson_nll"])


if __name__ == "__main__":
    make_gold_scan()
    print(f"wrote {GOLD} ({GOLD.stat().st_size} bytes)")
