"""Iterative baseline: reconstruct the test scan with Pty-chi (LSQML, ePIE), known probe and positions.

Pty-chi (``ptychi`` on PyPI, the optional extra ``iterative``) is imported lazily inside
the functions here, so the rest of the project never needs it. Without it every entry
point raises :class:`IterativeUnavailableError` (a ``ValueError`` with one line that
names the extra).

Conventions and the exact conversion (checked by ``tests/torch/test_iterative.py``):

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

torchvision: Pty-chi imports ``torchvision.transforms.GaussianBlur`` at module level
(used only to smooth *random* initial guesses, which this adapter never asks for).
PyPI's torchvision wheels are CUDA builds that fail to import next to a CPU torch, and a
broken torchvision also breaks ``import lightning`` (torchmetrics imports it). Where
torchvision is not installed at all, :func:`import_ptychi` imports Pty-chi with a
stand-in ``GaussianBlur`` (same kernel and reflect padding as torchvision's) placed in
``sys.modules`` only for the duration of that import. See docs/studies.md for the
install routes.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
import sys
import time
import types
import warnings
from dataclasses import dataclass, field

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.dataset import PtychoDataset
from ptycho.stitching import clip_to_region
from ptycho_torch.device import resolve_device
from ptycho_torch.object_patches import object_patches
from ptycho_torch.reconstruction import Reconstruction, scored_region

# engine name -> (Pty-chi reconstructor, LSQML noise model). lsqml: Pty-chi's default
# Gaussian (amplitude) noise model; lsqml-poisson: its Poisson likelihood (low dose).
ENGINE_SPECS = {"lsqml": ("lsqml", "gaussian"), "lsqml-poisson": ("lsqml", "poisson"),
                "epie": ("epie", None)}
ENGINES = tuple(ENGINE_SPECS)
EXTRA_HINT = "pip install -e '.[iterative]'"
_MISSING = ("Pty-chi is not installed: the iterative baseline needs the optional extra "
            f"'iterative' ({EXTRA_HINT}; CPU-only torch: see docs/studies.md)")

log = logging.getLogger(__name__)


class IterativeUnavailableError(ValueError):
    """Pty-chi (the optional extra ``iterative``) cannot be imported; one-line message."""


# ----------------------------------------------------------------------------- import
def _gaussian_blur_stand_in():
    """A class with torchvision's ``GaussianBlur(kernel_size, sigma)(img)`` behaviour.

    Separable Gaussian kernel ``exp(-x^2 / (2 sigma^2))`` normalised to sum 1 on
    ``x = -(k-1)/2 .. (k-1)/2``, reflect padding, applied to the last two axes of a
    real (..., H, W) tensor. Only what Pty-chi calls is supported (fixed sigma).
    """
    import torch

    class GaussianBlur(torch.nn.Module):
        def __init__(self, kernel_size, sigma=(0.1, 2.0)):
            super().__init__()
            ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            sg = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else tuple(sigma)
            if len(sg) == 2 and sg[0] != sg[1] and not isinstance(sigma, (int, float)):
                sg = (sg[0], sg[0])  # torchvision samples in [min, max]; Pty-chi passes min == max
            self.kernel_size, self.sigma = ks, sg

        def forward(self, img):
            shape = img.shape
            x = img.reshape(-1, 1, shape[-2], shape[-1])
            for axis, (k, s) in enumerate(zip(self.kernel_size, self.sigma)):
                t = torch.arange(k, dtype=x.dtype, device=x.device) - (k - 1) / 2
                w = torch.exp(-0.5 * (t / s) ** 2)
                w = w / w.sum()
                if axis == 0:  # rows (y)
                    x = torch.nn.functional.pad(x, (0, 0, k // 2, (k - 1) // 2), mode="reflect")
                    x = torch.nn.functional.conv2d(x, w.reshape(1, 1, k, 1))
                else:  # columns (x)
                    x = torch.nn.functional.pad(x, (k // 2, (k - 1) // 2, 0, 0), mode="reflect")
                    x = torch.nn.functional.conv2d(x, w.reshape(1, 1, 1, k))
            return x.reshape(shape)

    return GaussianBlur


@contextlib.contextmanager
def _torchvision_stand_in():
    """Put a minimal ``torchvision.transforms`` into ``sys.modules`` for one import, then remove it."""
    if "torchvision" in sys.modules:
        yield
        return
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.GaussianBlur = _gaussian_blur_stand_in()
    tv.transforms = tr
    tv.__version__ = "0+ptychopinn-stand-in"
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
    try:
        yield
    finally:
        for name, mod in (("torchvision", tv), ("torchvision.transforms", tr)):
            if sys.modules.get(name) is mod:
                del sys.modules[name]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def import_ptychi():
    """Import Pty-chi lazily; returns ``(api, PtychographyTask)``.

    Raises :class:`IterativeUnavailableError` (one line naming the extra) when Pty-chi is
    missing or cannot be imported.
    """
    try:
        import ptychi  # noqa: F401  (the top-level package imports no torchvision)
    except ImportError:
        raise IterativeUnavailableError(_MISSING) from None
    if "ptychi.api.task" not in sys.modules:
        tv_state = "ok"
        if "torchvision" not in sys.modules:
            if importlib.util.find_spec("torchvision") is None:
                tv_state = "absent"
            else:
                try:
                    importlib.import_module("torchvision.transforms")
                except Exception as err:  # noqa: BLE001 - any failure: explain, one line
                    raise IterativeUnavailableError(
                        f"torchvision is installed but does not import next to this torch "
                        f"({_first_line(err)}); install the torchvision build that matches "
                        "torch (CPU torch: the CPU wheel), or uninstall torchvision to use the "
                        "built-in stand-in; see docs/studies.md") from None
        ctx = _torchvision_stand_in() if tv_state == "absent" else contextlib.nullcontext()
        try:
            with ctx:
                for name in ("ptychi.utils", "ptychi.api", "ptychi.api.task"):
                    importlib.import_module(name)
        except ImportError as err:
            raise IterativeUnavailableError(
                f"Pty-chi is installed but cannot be imported ({_first_line(err)}); "
                f"reinstall the optional extra 'iterative' ({EXTRA_HINT})") from None
    api = sys.modules["ptychi.api"]
    return api, sys.modules["ptychi.api.task"].PtychographyTask


def ptychi_available() -> bool:
    """True when :func:`import_ptychi` succeeds."""
    try:
        import_ptychi()
    except IterativeUnavailableError:
        return False
    return True


def check_engines(engines) -> tuple[str, ...]:
    """Validate engine names (``lsqml``, ``epie``); returns them as a tuple, order kept."""
    out = []
    for e in engines:
        e = str(e).strip().lower()
        if e not in ENGINES:
            raise ValueError(f"iterative engine {e!r} is not supported (allowed: {', '.join(ENGINES)})")
        if e not in out:
            out.append(e)
    return tuple(out)


# ------------------------------------------------------------------------ conversion
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
    from ptycho_torch.data import object_amplitude_estimate
    amp_guess = object_amplitude_estimate(patterns_amp, probe)
    counts = np.square(s * patterns_amp.astype(np.float64)).astype(np.float32)
    return PtychiScan(
        patterns=counts, probe=(probe.astype(np.complex128) * (s / N)).astype(np.complex64)[None],
        positions_xy=pos, object_shape=shape, photon_scale=s, margin=int(margin),
        amplitude_guess=amp_guess, pattern_ids=ids[first].astype(np.int64))


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


# --------------------------------------------------------------------------- Pty-chi
@contextlib.contextmanager
def _restore_torch_defaults():
    """Pty-chi sets torch's default device and dtype globally; put them back afterwards.

    Also quiets Pty-chi's INFO logging (some of it on the root logger) and its warnings.
    """
    import torch
    dtype = torch.get_default_dtype()
    device = torch.get_default_device()
    quiet = [logging.getLogger("ptychi"), logging.getLogger()]  # Pty-chi also logs on the root logger
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pty-chi's internal torch UserWarnings
            yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_default_device(device)
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)


def build_task(engine: str, scan: PtychiScan, *, epochs: int = 100, batch_size: int | None = None,
               device: str = "auto", seed: int = 0, initial_object: np.ndarray | None = None,
               optimize_probe: bool = False, probe_start_epoch: int = 0):
    """A Pty-chi ``PtychographyTask`` for ``engine`` with the known probe and positions.

    The probe and positions are fixed (not optimized); the object starts at
    ``initial_object`` (H, W) or at a flat object of the Parseval amplitude. Pty-chi's
    probe rescaling and object/probe ambiguity removal are off (the probe is known).
    Call inside :func:`_restore_torch_defaults` (it changes torch's defaults).

    ``optimize_probe=True`` (probe refinement, :mod:`ptycho_torch.probe_refinement`):
    the probe starts at ``scan.probe`` and is optimized together with the object from
    epoch ``probe_start_epoch`` on (positions stay fixed); its scale is then not
    determined by the data (object/probe ambiguity), which the caller handles.
    """
    engine = check_engines([engine])[0]
    api, PtychographyTask = import_ptychi()
    if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
        raise ValueError(f"iterative epochs={epochs!r} is out of range (allowed: an integer >= 1)")
    n = scan.patterns.shape[0]
    kind, noise = ENGINE_SPECS[engine]
    if batch_size is None:
        batch_size = min(n, 100) if kind == "lsqml" else min(n, 16)
    opts = api.LSQMLOptions() if kind == "lsqml" else api.EPIEOptions()
    opts.data_options.fft_shift = True
    ro = opts.reconstructor_options
    ro.num_epochs = int(epochs)
    ro.batch_size = int(batch_size)
    ro.random_seed = int(seed)
    ro.default_device = api.Devices.GPU if resolve_device(device) == "cuda" else api.Devices.CPU
    ro.displayed_loss_function = None
    if kind == "lsqml":
        ro.rescale_probe_intensity_in_first_epoch = False
        ro.noise_model = api.NoiseModels.POISSON if noise == "poisson" else api.NoiseModels.GAUSSIAN
    oo = opts.object_options
    oo.optimizable = True
    oo.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    oo.position_origin_coords = [scan.origin, scan.origin]
    oo.remove_object_probe_ambiguity.enabled = False
    opts.probe_options.optimizable = bool(optimize_probe)
    if optimize_probe:
        if not (isinstance(probe_start_epoch, (int, np.integer)) and 0 <= probe_start_epoch < epochs):
            raise ValueError(f"probe_start_epoch={probe_start_epoch!r} is out of range "
                             f"(allowed: an integer 0..{int(epochs) - 1} for {int(epochs)} epochs)")
        opts.probe_options.optimization_plan.start = int(probe_start_epoch)
    opts.probe_position_options.optimizable = False
    if initial_object is None:
        obj = np.full(scan.buffer_shape, scan.amplitude_guess, dtype=np.complex64)
    else:
        obj = pad_object(initial_object, scan.margin)
    return PtychographyTask(
        opts, diffraction_data=scan.patterns, object_data=obj[None],
        probe_data=scan.probe, probe_position_x_px=scan.positions_xy[:, 0].copy(),
        probe_position_y_px=scan.positions_xy[:, 1].copy())


def ptychi_forward_intensity(obj: np.ndarray, scan: PtychiScan, device: str = "cpu") -> np.ndarray:
    """Pty-chi's own forward model applied to ``obj`` (H, W): counts (n, N, N), DC centred."""
    import torch
    with _restore_torch_defaults():
        task = build_task("lsqml", scan, epochs=1, device=device, initial_object=obj)
        fm = task.reconstructor.forward_model
        with torch.no_grad():
            y = fm.forward(torch.arange(scan.patterns.shape[0])).detach().cpu().numpy()
    return np.fft.fftshift(y, axes=(-2, -1))


@dataclass
class IterativeResult:
    engine: str
    obj: np.ndarray            # (H, W) complex64, object frame
    time_s: float              # task build + all epochs (the reconstruction time)
    epochs: int
    n_patterns: int
    batch_size: int
    device: str
    loss: list = field(default_factory=list)


def run_ptychi(engine: str, scan: PtychiScan, *, epochs: int = 100, batch_size: int | None = None,
               device: str = "auto", seed: int = 0, warmup: bool = True) -> IterativeResult:
    """Reconstruct ``scan`` with ``engine`` for ``epochs``; timed (device synchronised).

    ``warmup`` first runs one untimed epoch, so one-off costs (torch's lazy imports on the
    first optimizer, CUDA context and kernels) are not counted, as for the network side.
    """
    return run_ptychi_chunks(engine, scan, epochs=epochs, every=max(int(epochs), 1),
                             batch_size=batch_size, device=device, seed=seed, warmup=warmup)[0]


def _loss_history(task) -> list:
    tracker = getattr(task.reconstructor, "loss_tracker", None)
    table = getattr(tracker, "table", None)
    try:
        return [float(v) for v in table["loss"].tolist()]
    except Exception:  # noqa: BLE001 - the history is informative only
        return []


def run_ptychi_chunks(engine: str, scan: PtychiScan, *, epochs: int = 100, every: int = 10,
                      batch_size: int | None = None, device: str = "auto", seed: int = 0,
                      warmup: bool = True, initial_object: np.ndarray | None = None
                      ) -> tuple[IterativeResult, list]:
    """Reconstruct ``scan`` for ``epochs``, taking the object out every ``every`` epochs.

    One Pty-chi task runs ``every`` epochs at a time (``task.run(n_epochs=...)`` continues
    the same task: object, step sizes and batch order), so the object after ``e`` epochs is
    exactly that of an uninterrupted ``e``-epoch run with the same seed. Returns the
    :class:`IterativeResult` of the whole run and ``[(epoch, obj (H, W) complex64,
    seconds so far), ...]`` at epochs ``every, 2 every, ..., epochs`` (the last chunk may
    be shorter); the seconds count task build and epochs only (one untimed warm-up epoch
    first, as :func:`run_ptychi`). ``initial_object`` (H, W): the start instead of the flat
    object (:mod:`ptycho_torch.refinement`).
    """
    import torch
    if not (isinstance(every, (int, np.integer)) and every >= 1):
        raise ValueError(f"iterative chunk every={every!r} is out of range (allowed: an "
                         "integer >= 1)")
    dev = resolve_device(device)
    states = []
    with _restore_torch_defaults():
        if warmup:
            build_task(engine, scan, epochs=1, batch_size=batch_size, device=dev, seed=seed).run()
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        task = build_task(engine, scan, epochs=epochs, batch_size=batch_size, device=dev, seed=seed,
                          initial_object=initial_object)
        elapsed = time.perf_counter() - t0
        done = 0
        while done < epochs:
            k = min(int(every), int(epochs) - done)
            t0 = time.perf_counter()
            task.run(n_epochs=k)
            if dev == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - t0
            done += k
            buf = task.get_data_to_cpu("object", as_numpy=True)[0]
            states.append((done, unpad_object(buf, scan).astype(np.complex64).copy(), elapsed))
        loss = _loss_history(task)
        bs = int(task.reconstructor_options.batch_size)
    res = IterativeResult(engine=engine, obj=states[-1][1], time_s=elapsed, epochs=int(epochs),
                          n_patterns=int(scan.patterns.shape[0]), batch_size=bs, device=dev,
                          loss=loss)
    return res, states


def subset_scan(scan: PtychiScan, idx) -> PtychiScan:
    """``scan`` restricted to the patterns ``idx`` (same object frame, probe and start)."""
    idx = np.asarray(idx)
    return PtychiScan(patterns=scan.patterns[idx], probe=scan.probe,
                      positions_xy=scan.positions_xy[idx], object_shape=scan.object_shape,
                      photon_scale=scan.photon_scale, margin=scan.margin,
                      amplitude_guess=scan.amplitude_guess, pattern_ids=scan.pattern_ids[idx])


def iterative_reconstruction(test: PtychoDataset, obj: np.ndarray, *, time_s: float,
                             n_patterns: int, batch_size: int, inference=None):
    """An iterative object (H, W) of test object 0 as the network path's Reconstruction:
    clipped to the region the network rows are scored on
    (:func:`ptycho_torch.reconstruction.scored_region` with ``inference``, default
    ``InferenceConfig()``), with the ground truth clipped alike, and the object's patches
    at the scan positions."""
    N = test.N
    sub = test.select(test.object_selection(0))
    region = scored_region(test, InferenceConfig() if inference is None else inference)
    gt = None if test.ground_truth is None else np.ascontiguousarray(
        clip_to_region(test.ground_truth, region), dtype=np.complex64)
    recon = clip_to_region(obj, region)
    return Reconstruction(recon=np.ascontiguousarray(recon, dtype=np.complex64),
                          ground_truth=gt, region=tuple(int(v) for v in region),
                          patches=object_patches(obj, sub.centres, N).astype(np.complex64),
                          inference_time_s=time_s, stitch_time_s=0.0, n_patterns=n_patterns,
                          infer_batch_size=batch_size,
                          stitch={"mode": "none", "note": "Pty-chi reconstructs the whole object"},
                          canvas=np.ascontiguousarray(obj, dtype=np.complex64),
                          canvas_covered=np.ones(obj.shape[:2], bool), canvas_origin=(0, 0))


def reconstruct_iterative(engine: str, test: PtychoDataset, *, epochs: int = 100,
                          batch_size: int | None = None, device: str = "auto", seed: int = 0,
                          inference=None):
    """Pty-chi reconstruction of test object 0, clipped to the network's scoring region.

    Returns ``(Reconstruction, IterativeResult)``: the first is the same dataclass the
    network path gives (``ptycho_torch.study``), clipped to the same scored region
    (:func:`ptycho_torch.reconstruction.scored_region` with ``inference``), so
    ``ptycho_torch.reconstruction.score`` applies as is. Its ``patches`` are the object's patches at
    the scan positions (for the data residual), its ``inference_time_s`` the whole
    iterative reconstruction time and its ``infer_batch_size`` Pty-chi's batch size.
    """
    scan = scan_for_ptychi(test, 0)
    res = run_ptychi(engine, scan, epochs=epochs, batch_size=batch_size, device=device, seed=seed)
    rec = iterative_reconstruction(test, res.obj, time_s=res.time_s, n_patterns=res.n_patterns,
                                   batch_size=res.batch_size, inference=inference)
    return rec, res
