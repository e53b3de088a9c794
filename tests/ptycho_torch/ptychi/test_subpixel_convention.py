"""Sub-pixel positions: Pty-chi's own forward model against ours at fractional positions.

Ours (``ptycho.forward.expected_intensity``, ``object_patches.subpixel_cuts``): the patch
starts at the integer corner ``floor(c - N//2)`` and the probe moves by the rest ``f`` in
[0, 1), ``P(r - f)``, an N-periodic Fourier shift. Pty-chi 2.2's LSQML forward model
(``PlanarPtychographyForwardModel`` with ``apply_subpixel_shifts_on_probe``) cuts the patch
at ``round(c)`` (``torch.round``: halves to even) and moves the probe by ``c - round(c)`` in
[-0.5, 0.5], also N-periodically. The shift's sign, the half-pixel centre (the adapter's
``position_origin_coords = margin - 0.5``) and the (x, y) order agree: both give the same
patterns wherever ``round(c) == floor(c)``, and wherever the probe is dark at the window's
edge. Elsewhere (a rest above 0.5, or exactly 0.5 with an odd floor) the two cuts differ by
one pixel and the periodic shift wraps the probe's edge column (row) around differently:
for ``make_probe(32)``, which fills its window, the patterns then differ by 10-40 % of their
peak (2 % for ``make_probe(64)``, 6e-5 for the probe contained in the window below).
"""
import numpy as np
import pytest
import torch

from ptycho.forward import expected_intensity
from ptycho.probes import make_probe, shift_modes
from ptycho.geometry.patches import subpixel_cuts
from ptycho_torch.core.physics import diffraction_intensity
from ptycho_torch.ptychi import engine as ptychi_engine
from ptycho_torch.ptychi.scan import PtychiScan

pytestmark = pytest.mark.iterative

N = 32
H = W = 80
S = 3.0  # photon scale: counts = S^2 |F_ortho(O P)|^2


def _object() -> np.ndarray:
    """A smooth complex object (|frequency| <= 4 cycles per image)."""
    rng = np.random.default_rng(3)
    u = np.fft.fftfreq(H) * H
    band = (np.abs(u)[:, None] <= 4) & (np.abs(u)[None, :] <= 4)
    spec = np.where(band, rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W)), 0)
    f = np.fft.ifft2(spec)
    f /= np.abs(f).std()
    return ((1 + 0.3 * f.imag) * np.exp(0.8j * f.real)).astype(np.complex64)


def _contained_probe() -> np.ndarray:
    """A Gaussian probe (sigma 4 px, curved phase): |P| < 4e-4 at the window's edge."""
    y, x = np.mgrid[:N, :N] - N // 2
    r2 = x ** 2 + y ** 2
    return (np.exp(-r2 / 32.0) * np.exp(0.02j * r2 + 0.1j * x)).astype(np.complex64)


def _ptychi(obj, probe, positions) -> np.ndarray:
    """Pty-chi's forward model (through the adapter's units: probe P S / N, our centres
    with origin margin - 0.5): counts (n, N, N), DC centred."""
    scan = PtychiScan(patterns=np.zeros((len(positions), N, N), np.float32),
                      probe=(probe.astype(np.complex128) * S / N).astype(np.complex64)[None, None],
                      positions_xy=positions.astype(np.float32), object_shape=(H, W),
                      photon_scale=S, margin=2, amplitude_guess=1.0,
                      pattern_ids=np.arange(len(positions)))
    return ptychi_engine.ptychi_forward_intensity(obj, scan, device="cpu")


def _ours(obj, probe, positions) -> np.ndarray:
    return S * S * expected_intensity(obj, probe, positions, N)


def _ours_torch(obj, probe, positions) -> np.ndarray:
    """The data residual's route: ``subpixel_cuts`` and the torch far field."""
    cut, shifts = subpixel_cuts(obj, positions, N)
    moved = np.stack([shift_modes(probe[None], fx, fy)[0] for fx, fy in shifts])
    with torch.no_grad():
        i = diffraction_intensity(torch.from_numpy(cut.astype(np.complex128)), torch.from_numpy(moved))
    return S * S * i.numpy()


def _rounded_split(obj, probe, positions) -> np.ndarray:
    """Pty-chi's stated split, in numpy: cut at round(c) (halves to even), probe moved by
    c - round(c)."""
    out = []
    for c in positions:
        r = np.round(c)                                     # numpy rounds halves to even too
        x0, y0 = (r - N // 2).astype(int)
        fx, fy = c - r
        psi = obj[y0:y0 + N, x0:x0 + N].astype(np.complex128) * shift_modes(probe[None], fx, fy)[0]
        out.append(np.fft.fftshift(np.abs(np.fft.fft2(psi, norm="ortho")) ** 2))
    return S * S * np.stack(out)


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _float32(positions) -> np.ndarray:
    """Positions as Pty-chi receives them (float32), back in float64."""
    return np.asarray(positions, np.float32).astype(np.float64)


def test_ptychi_and_our_subpixel_model_agree_for_a_contained_probe(require_ptychi):
    obj, probe = _object(), _contained_probe()
    pos = _float32([[20.3, 17.7], [30.5, 25.25], [40.9, 33.1], [25.0, 40.0], [33.6, 44.45],
                    [47.75, 21.5], [19.5, 37.5]])
    theirs = _ptychi(obj, probe, pos)
    assert _rel(_ours(obj, probe, pos), theirs) < 1e-3
    assert _rel(_ours_torch(obj, probe, pos), theirs) < 1e-3
    # each other convention is far outside that tolerance
    frac = pos - np.floor(pos)
    for name, other in (("shift sign flipped", pos - 2 * frac), ("half-pixel centre", pos + 0.5),
                        ("x and y swapped", pos[:, ::-1]), ("rounded, no shift", np.round(pos))):
        assert _rel(_ours(obj, probe, other), theirs) > 5e-2, name


def test_where_the_probe_fills_the_window_ptychi_cuts_at_the_rounded_centre(require_ptychi):
    obj, probe = _object(), make_probe(N)
    same = _float32([[20.3, 17.2], [30.45, 25.0], [40.5, 33.1], [26.0, 40.5]])  # round == floor
    theirs = _ptychi(obj, probe, same)
    assert _rel(_ours(obj, probe, same), theirs) < 1e-5
    split = _float32([[20.7, 17.2], [30.45, 25.9], [19.5, 33.1], [41.6, 37.5]])  # round != floor
    theirs = _ptychi(obj, probe, split)
    assert _rel(_rounded_split(obj, probe, split), theirs) < 1e-5
    # our floor split differs there: the probe's edge wraps around one pixel differently
    assert _rel(_ours(obj, probe, split), theirs) > 1e-2
