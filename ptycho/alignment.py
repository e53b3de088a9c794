"""What a ptychographic reconstruction cannot determine, removed before it is scored.

Far-field data leave a reconstruction free by a global phase, a linear phase ramp (a
real-space ramp is a shift of the diffraction patterns) and, when the scan positions were
themselves estimated, a translation of the whole object. :func:`align_complex` removes
them in the complex domain, against the reference, in this order:

1. Trim ``trim`` pixels from every side of both images (the trimmed region is what is
   scored).
2. With ``register``: the sub-pixel translation of the trimmed reconstruction against the
   trimmed reference (after a first removal of the phase offset and ramp, so that a ramp
   does not bias it), from ``skimage.registration.phase_cross_correlation`` (plain circular
   cross correlation, no window, upsampled :data:`UPSAMPLE` times: 0.01 px) of the
   mean-removed images' periodic components (:func:`periodic_component`: no jump where the
   circle closes, and a circular shift keeps the energy, so a brighter side does not pull
   the peak), estimated again on the moved image until the step is below 0.005 px; the
   whole (untrimmed) reconstruction is moved back by a Fourier shift
   (``scipy.ndimage.fourier_shift``) of its mirror-symmetric extension, then trimmed again,
   so the pixels that come in across an edge are the edge mirrored. Measured on crops of
   the run-1084 object (shifts up to 3.2 px, with a phase ramp): a translated copy is found
   to 0.01 px, and to 0.07 px with complex Gaussian noise of 0.3x the mean amplitude; a
   Gaussian blur of the reconstruction biases it by the structure at the crop's edges:
   0.00 px on a 180 px crop, 0.1 px (blur 2 px) and 0.45 px (blur 4 px) on 110 px ones.
3. The phase ramp: the linear phase of ``pred * conj(ref)``, first to the nearest peak of
   its 4x zero-padded FFT (so a ramp that wraps is found), then refined by a least-squares
   plane fitted to the remaining phase, weighted by ``|pred| |ref|`` (a pixel counts as
   much as the product of the amplitudes: the phase of a dark pixel means little).
4. The global phase: the angle of the amplitude-weighted inner product
   ``sum(pred * conj(ref))`` after the ramp is removed, i.e. the offset at the image centre.

The amplitude is not scaled here (``ptycho.evaluation`` scales it by the means). The
complex conjugate (twin image) is NOT flipped: it is left for the metrics to show.
Coordinates: ``x`` is the column and ``y`` the row, both centred on the image
(``x = col - (W - 1) / 2``), the same for the trimmed and the whole image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import fourier_shift
from skimage.registration import phase_cross_correlation

__all__ = ["Alignment", "MIN_SIDE", "UPSAMPLE", "align_complex", "check_pair", "check_trim",
           "centred_xy", "fit_plane", "periodic_component", "phase_offset_and_ramp",
           "registration_shift", "translate"]

#: sub-pixel registration: 1 / UPSAMPLE pixels
UPSAMPLE = 100
#: skimage structural_similarity's default window (7 x 7) needs images at least this big
MIN_SIDE = 7
_FFT_PAD = 4   # zero padding of the coarse ramp search
_REGISTER_ROUNDS = 8   # registration refined on the moved image, at most this many times


@dataclass(frozen=True, eq=False)
class Alignment:
    """The trimmed reference ``gt`` and the trimmed reconstruction ``pred`` with the removed
    quantities taken out (both (H - 2 trim, W - 2 trim) complex128; amplitude unscaled):
    ``phase_offset`` (rad, in (-pi, pi]), ``phase_ramp`` (rad/px, ``(x, y)``),
    ``registration_shift_px`` (``(x, y)``, how far the reconstruction sat from the
    reference, moved back; None when not registered)."""

    pred: np.ndarray
    gt: np.ndarray
    phase_offset: float
    phase_ramp: tuple[float, float]
    registration_shift_px: tuple[float, float] | None

    def removed(self) -> dict:
        """The removed quantities as JSON values."""
        shift = self.registration_shift_px
        return {"phase_offset": float(self.phase_offset),
                "phase_ramp": [float(v) for v in self.phase_ramp],
                "registration_shift_px": None if shift is None else [float(v) for v in shift]}


def check_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Validate two complex (or real) 2-D images of equal shape; return complex128."""
    arrs = []
    for name, a in (("pred", pred), ("gt", gt)):
        arr = np.asarray(a)
        if arr.ndim != 2:
            raise ValueError(
                f"{name}: expected a 2-D complex image (H, W), got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.bool_)):
            raise ValueError(f"{name}: expected a numeric (complex) image, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf; allowed finite values only")
        arrs.append(arr.astype(np.complex128))
    p, g = arrs
    if p.shape != g.shape:
        raise ValueError(f"pred: shape {p.shape} does not match gt shape {g.shape}")
    return p, g


def check_trim(trim, shape) -> int:
    if isinstance(trim, (bool, np.bool_)) or not isinstance(trim, (int, np.integer)) or trim < 0:
        raise ValueError(f"trim: got {trim!r}, allowed an integer >= 0")
    trim = int(trim)
    h, w = shape
    if h - 2 * trim < MIN_SIDE or w - 2 * trim < MIN_SIDE:
        raise ValueError(
            f"gt: shape {shape} is too small for trim={trim}; need H, W >= "
            f"2*trim + {MIN_SIDE} = {2 * trim + MIN_SIDE}"
        )
    return trim


def centred_xy(shape) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` float64 pixel coordinates centred on an image of ``shape`` (H, W)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x - (w - 1) / 2.0, y - (h - 1) / 2.0


def _trimmed(a: np.ndarray, trim: int) -> np.ndarray:
    return a[trim:-trim, trim:-trim] if trim else a


def fit_plane(phase: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """``(a_x, a_y, c)``: the plane ``a_x x + a_y y + c`` (centred coordinates) fitted to
    ``phase`` by least squares weighted by ``weight`` (>= 0, not all zero)."""
    x, y = centred_xy(phase.shape)
    sw = np.sqrt(weight / weight.max()).ravel()
    design = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1) * sw[:, None]
    coef, *_ = np.linalg.lstsq(design, phase.ravel() * sw, rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def phase_offset_and_ramp(pred: np.ndarray, gt: np.ndarray) -> tuple[float, tuple[float, float]]:
    """``(offset, (ramp_x, ramp_y))`` with ``pred ~ gt * exp(i (offset + ramp_x x +
    ramp_y y))`` (steps 3 and 4 of the module docstring); ``(0, (0, 0))`` when
    ``pred * conj(gt)`` is zero everywhere."""
    z = pred * np.conj(gt)
    w = np.abs(z)
    if not np.any(w > 0):
        return 0.0, (0.0, 0.0)
    h, wd = z.shape
    x, y = centred_xy(z.shape)
    spec = np.abs(np.fft.fft2(z, s=(_FFT_PAD * h, _FFT_PAD * wd)))
    ky, kx = np.unravel_index(int(np.argmax(spec)), spec.shape)
    ax = 2 * np.pi * np.fft.fftfreq(_FFT_PAD * wd)[kx]
    ay = 2 * np.pi * np.fft.fftfreq(_FFT_PAD * h)[ky]
    z1 = z * np.exp(-1j * (ax * x + ay * y))
    rest = np.angle(z1 * np.exp(-1j * np.angle(z1.sum())))   # small: no wrapping
    fine = fit_plane(rest, w)
    ax, ay = float(ax + fine[0]), float(ay + fine[1])
    offset = float(np.angle(np.sum(z * np.exp(-1j * (ax * x + ay * y)))))
    return offset, (ax, ay)


def _remove_phase(pred: np.ndarray, offset: float, ramp) -> np.ndarray:
    x, y = centred_xy(pred.shape)
    return pred * np.exp(-1j * (offset + ramp[0] * x + ramp[1] * y))


def periodic_component(img: np.ndarray) -> np.ndarray:
    """The periodic part of ``img`` (Moisan, J. Math. Imaging Vis. 39, 161 (2011)): ``img``
    minus the smooth image whose Laplacian is the jump across the borders, so that its
    periodic continuation has no edge; a circular correlation then sees no border cross."""
    h, w = img.shape
    jump = np.zeros(img.shape, dtype=np.result_type(img.dtype, np.complex128))
    jump[0, :] += img[-1, :] - img[0, :]
    jump[-1, :] += img[0, :] - img[-1, :]
    jump[:, 0] += img[:, -1] - img[:, 0]
    jump[:, -1] += img[:, 0] - img[:, -1]
    denom = (2 * np.cos(2 * np.pi * np.arange(h) / h)[:, None]
             + 2 * np.cos(2 * np.pi * np.arange(w) / w)[None, :] - 4)
    denom[0, 0] = 1.0
    smooth = np.fft.fft2(jump) / denom
    smooth[0, 0] = 0.0
    return img - np.fft.ifft2(smooth)


def registration_shift(pred: np.ndarray, gt: np.ndarray, upsample: int = UPSAMPLE
                       ) -> tuple[float, float]:
    """``(x, y)``: how far (pixels) the content of ``pred`` sits from that of ``gt``, to
    ``1 / upsample`` px: the peak of the circular cross correlation of the periodic
    components of the mean-removed images, with no window (a Hann window biased it by up
    to 0.7 px for a blurred reconstruction); zero when either image is constant."""
    g = gt - gt.mean()
    p = pred - pred.mean()
    if not (np.any(np.abs(g) > 0) and np.any(np.abs(p) > 0)):
        return 0.0, 0.0
    shift, _, _ = phase_cross_correlation(periodic_component(g), periodic_component(p),
                                          upsample_factor=int(upsample), normalization=None)
    return float(-shift[1]), float(-shift[0])   # skimage: the shift that registers p


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``img`` moved by ``(dx, dy)`` pixels: a Fourier shift of its mirror-symmetric
    extension (``img`` and its mirror image side by side, whose periodic continuation has no
    jump), so nothing wraps around from the opposite edge; pixels that come in across an
    edge are the edge mirrored."""
    h, w = img.shape
    big = np.pad(img, ((0, h), (0, w)), mode="symmetric")
    moved = np.fft.ifftn(fourier_shift(np.fft.fftn(big), (dy, dx)))
    return moved[:h, :w]


def align_complex(pred, gt, *, trim: int = 2, register: bool = False,
                  upsample: int = UPSAMPLE) -> Alignment:
    """The module docstring's recipe on two (H, W) complex images of the same shape."""
    p, g = check_pair(pred, gt)
    trim = check_trim(trim, g.shape)
    gt_t = _trimmed(g, trim)
    shift = None
    if register:
        flat = _remove_phase(p, *phase_offset_and_ramp(_trimmed(p, trim), gt_t))
        shift = (0.0, 0.0)
        for _ in range(_REGISTER_ROUNDS):   # estimated again on the moved image
            step = registration_shift(_trimmed(translate(flat, -shift[0], -shift[1]), trim),
                                      gt_t, upsample)
            shift = (shift[0] + step[0], shift[1] + step[1])
            if max(abs(step[0]), abs(step[1])) < 0.5 / upsample:
                break
        p = translate(p, -shift[0], -shift[1])
    p = _trimmed(p, trim)
    offset, ramp = phase_offset_and_ramp(p, gt_t)
    return Alignment(pred=_remove_phase(p, offset, ramp), gt=gt_t, phase_offset=offset,
                     phase_ramp=ramp, registration_shift_px=shift)
