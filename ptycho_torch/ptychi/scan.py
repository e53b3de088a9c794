"""One object's scan in Pty-chi's conventions, and the exact conversion.

Conventions (checked by ``tests/ptycho_torch/ptychi/test_baseline.py``):

* Our stored network input is ``x = sqrt(counts) / s`` with ``s`` the simulation scale
  (``_metadata['scale']``) and, noise-free, ``x = A = fftshift(|fft2(O*P, norm="ortho")|)``.
* Pty-chi's far-field model is ``y = |fft2(O_patch * P_c)|^2`` with the *unnormalized*
  FFT (``= N * ortho``) and DC at index 0; with ``fft_shift=True`` it shifts the given
  (DC-centred) intensities itself. So Pty-chi gets the measured **counts**
  ``(s * x)^2`` (DC-centred, as stored) and the probe ``P_c = P * s / N``: then
  ``y = N^2 (s/N)^2 |fft2_ortho(O P)|^2 = (s A)^2``, the expected counts, for the true
  object. Without ``scale`` in the metadata, ``s = 1`` (intensities ``x^2``).
* Pty-chi's positions are patch centres in pixels, (y, x) in its arrays, and a patch
  centred at ``p`` starts at pixel ``p + origin - (N - 1)/2``. Ours start at
  ``c - N//2``. We give Pty-chi our centres ``(x, y)`` (as ``position_x_px`` /
  ``position_y_px``) with ``position_origin_coords = margin - 0.5`` on an object buffer
  padded by ``margin`` pixels per side, so buffer pixel ``(r + margin, c + margin)`` is
  object pixel ``(r, c)`` and every patch is read at an integer offset (no interpolation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptycho.dataset import PtychoDataset
from ptycho_torch.engine.data import object_amplitude_estimate


@dataclass(frozen=True)
class PtychiScan:
    """One object's scan in Pty-chi's conventions (see the module docstring).

    patterns: (n, N, N) float32 measured counts ``(s*x)^2``, DC centred as stored.
    probe: (1, 1, N, N) complex64, ``P * s / N`` (unnormalized FFT).
    positions_xy: (n, 2) float32 patch centres (x, y) in object pixels (our convention).
    object_shape: (H, W) of the object frame; the buffer is padded by ``margin`` per side.
    photon_scale: s. amplitude_guess: Parseval estimate of the mean object amplitude.
    pattern_ids: (n,) int64, each pattern's id in the dataset
    (:meth:`ptycho.dataset.PtychoDataset.pattern_ids`), so subsets and network patches
    are matched by pattern, never by position.
    """

    patterns: np.ndarray
    probe: np.ndarray
    positions_xy: np.ndarray
    object_shape: tuple
    photon_scale: float
    margin: int
    amplitude_guess: float
    pattern_ids: np.ndarray

    @property
    def N(self) -> int:
        return int(self.probe.shape[-1])

    @property
    def buffer_shape(self) -> tuple:
        return (self.object_shape[0] + 2 * self.margin, self.object_shape[1] + 2 * self.margin)

    @property
    def origin(self) -> float:
        """``position_origin_coords`` (both axes) that makes our centres Pty-chi positions."""
        return self.margin - 0.5


def scan_for_ptychi(test: PtychoDataset, object_index: int = 0, margin: int = 2) -> PtychiScan:
    """Convert one test object's patterns (a :class:`ptycho.dataset.PtychoDataset`) for Pty-chi.

    gridsize > 1: one measured pattern sits in several groups; each is used once,
    identified by its pattern id (:meth:`ptycho.dataset.PtychoDataset.pattern_ids`), so
    two distinct patterns are kept however close their positions are.
    """
    idx = test.object_selection(object_index)
    diff = test.diffraction[idx]                                      # (n, C, N, N)
    n, C, N, _ = diff.shape
    centres = test.centres[idx]
    flat_c = centres.reshape(n * C, 2).astype(np.float64)
    ids = test.pattern_ids()[idx].reshape(n * C)
    _, first = np.unique(ids, return_index=True)                      # one per pattern
    first = np.sort(first)
    patterns_amp = diff.reshape(n * C, N, N)[first]
    pos = flat_c[first].astype(np.float32)  # sub-pixel positions are kept (Pty-chi shifts the probe)
    s = float(test.photon_scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"dataset '{test.path}': _metadata scale={s!r} (allowed: a positive number)")
    if test.ground_truth_all is not None and object_index < len(test.ground_truth_all):
        shape = tuple(int(v) for v in test.ground_truth_all[object_index].shape)
    elif test.ground_truth is not None and object_index == 0:
        shape = tuple(int(v) for v in test.ground_truth.shape[:2])
    else:  # smallest frame that holds every patch
        shape = (math.ceil(pos[:, 1].max()) - N // 2 + N, math.ceil(pos[:, 0].max()) - N // 2 + N)
    if (pos.min() < N // 2 or pos[:, 1].max() - N // 2 + N > shape[0]
            or pos[:, 0].max() - N // 2 + N > shape[1]):
        raise ValueError(f"dataset '{test.path}': scan positions fall outside the object "
                         f"frame {shape} (allowed: patches inside the object)")
    probe = np.asarray(test.probe_modes, dtype=np.complex64)             # (modes, N, N)
    amp_guess = object_amplitude_estimate(patterns_amp, probe)
    counts = np.square(s * patterns_amp.astype(np.float64)).astype(np.float32)
    return PtychiScan(
        patterns=counts, probe=(probe.astype(np.complex128) * (s / N)).astype(np.complex64)[None],
        positions_xy=pos, object_shape=shape, photon_scale=s, margin=int(margin),
        amplitude_guess=amp_guess, pattern_ids=ids[first].astype(np.int64))


def subset_scan(scan: PtychiScan, idx) -> PtychiScan:
    """``scan`` restricted to the patterns ``idx`` (same object frame, probe and start)."""
    idx = np.asarray(idx)
    return PtychiScan(patterns=scan.patterns[idx], probe=scan.probe,
                      positions_xy=scan.positions_xy[idx], object_shape=scan.object_shape,
                      photon_scale=scan.photon_scale, margin=scan.margin,
                      amplitude_guess=scan.amplitude_guess, pattern_ids=scan.pattern_ids[idx])


def pad_object(obj: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) object -> (H + 2m, W + 2m) buffer, edge values replicated."""
    return np.pad(np.asarray(obj, dtype=np.complex64), margin, mode="edge")


def unpad_object(buf: np.ndarray, scan: PtychiScan) -> np.ndarray:
    m = scan.margin
    H, W = scan.object_shape
    return np.asarray(buf)[m:m + H, m:m + W]


def convention_intensity(obj: np.ndarray, scan: PtychiScan) -> np.ndarray:
    """Our own reimplementation of Pty-chi's stated far-field convention (numpy).

    ``obj`` (H, W) complex object frame. For each position p = (y, x): the patch starts at
    buffer pixel ``round(p + origin - (N-1)/2)`` of the margin-padded buffer, the exit
    wave ``patch * scan.probe`` goes through the *unnormalized* FFT (DC at index 0), and
    the intensity is returned DC-centred (fftshift), i.e. comparable with
    ``scan.patterns``. Returns float64 (n, N, N).
    """
    N = scan.N
    buf = pad_object(obj, scan.margin).astype(np.complex128)
    p_yx = scan.positions_xy[:, ::-1].astype(np.float64) + scan.origin
    top = np.round(p_yx - (N - 1) / 2.0).astype(np.int64)          # (n, 2) (row, col)
    ar = np.arange(N)
    rows = top[:, 0, None, None] + ar[None, :, None]
    cols = top[:, 1, None, None] + ar[None, None, :]
    patches = buf[rows, cols]                                       # (n, N, N)
    far = np.fft.fft2(patches * scan.probe[0, 0].astype(np.complex128))  # norm="backward"
    return np.fft.fftshift(np.abs(far) ** 2, axes=(-2, -1))
