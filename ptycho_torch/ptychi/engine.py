"""Pty-chi tasks and runs: one task per reconstruction, continued in chunks of epochs."""
from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ptycho_torch.engine.device import resolve_device
from ptycho_torch.ptychi import ENGINE_SPECS, check_engines, import_ptychi
from ptycho_torch.ptychi.scan import PtychiScan, pad_object, unpad_object

log = logging.getLogger(__name__)


@contextlib.contextmanager
def restore_torch_defaults():
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
    Call inside :func:`restore_torch_defaults` (it changes torch's defaults).

    ``optimize_probe=True`` (probe refinement, :mod:`ptycho_torch.ptychi.probe`):
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
    with restore_torch_defaults():
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
    object (:mod:`ptycho_torch.ptychi.start`).
    """
    import torch
    if not (isinstance(every, (int, np.integer)) and every >= 1):
        raise ValueError(f"iterative chunk every={every!r} is out of range (allowed: an "
                         "integer >= 1)")
    dev = resolve_device(device)
    states = []
    with restore_torch_defaults():
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
