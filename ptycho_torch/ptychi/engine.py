"""The one façade over Pty-chi: :class:`PtychiOptions` says what a reconstruction does,
:class:`PtychiRun` builds the task and runs it, and :func:`reconstruct` is the timed run
every study row uses (in chunks of epochs, after one untimed warm-up epoch).

Everything the project asks of Pty-chi goes through :class:`PtychiRun`: the iterative
baseline (object only, probe and positions known), the probe refinement (object and probe,
:mod:`ptycho_torch.ptychi.probe`), the network-initialized rows (a start object,
:mod:`ptycho_torch.ptychi.start`) and the position correction (object, probe and positions).
"""
from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ptycho_torch.engine.device import resolve_device
from ptycho_torch.ptychi import ENGINE_SPECS, check_engines, import_ptychi
from ptycho_torch.ptychi.scan import PtychiScan, pad_object, unpad_object

log = logging.getLogger(__name__)


@contextlib.contextmanager
def restore_torch_defaults():
    """Pty-chi sets torch's default device and dtype globally; put them back afterwards.

    Also quiets Pty-chi's INFO logging (some of it on the root logger) and its warnings.
    """
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


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class PtychiOptions:
    """What one Pty-chi reconstruction does (validated on construction).

    ``engine``: ``lsqml``, ``lsqml-poisson`` or ``epie``. ``epochs``: the whole run.
    ``batch_size``: None = 100 patterns per batch for LSQML, 16 for ePIE (at most n).
    ``optimize_probe``: the probe, starting at ``scan.probe``, is optimized from epoch
    ``probe_start_epoch`` on (its scale is then not fixed by the data: the caller handles
    it). ``optimize_positions``: the positions are corrected from epoch
    ``position_start_epoch`` on (Pty-chi's gradient position correction, step
    ``position_step_size``, each update clipped to ``position_update_limit`` px and to 10x the
    updates' median absolute deviation). Pty-chi's defaults (0.3, 0.1 px) moved a 2.6 px RMS
    position error to 2.3 px in 60 epochs on the 200-position spiral of
    ``tests/ptycho_torch/ptychi/test_probe.py``; 2.0 and 1.0 px moved it to 0.73 px in 200,
    16 and 1.0 px to 0.53 px. On the 1087 nominal run-1084 positions at N = 64 (1.203 px RMS
    off, 50 epochs) step 16 from epoch 5 left 0.252 px, step 2 from epoch 12 0.350 px
    (docs/guide/own-scan.md, 'Probe and positions').
    Pty-chi's probe rescaling and object/probe ambiguity removal are always off.
    """

    engine: str = "lsqml"
    epochs: int = 100
    batch_size: int | None = None
    device: str = "auto"
    seed: int = 0
    optimize_probe: bool = False
    probe_start_epoch: int = 0
    optimize_positions: bool = False
    position_start_epoch: int = 0
    position_step_size: float = 16.0
    position_update_limit: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", check_engines([self.engine])[0])
        if not (isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1):
            raise ValueError(f"iterative epochs={self.epochs!r} is out of range (allowed: an "
                             "integer >= 1)")
        for flag, name in (("optimize_probe", "probe_start_epoch"),
                           ("optimize_positions", "position_start_epoch")):
            start = getattr(self, name)
            if getattr(self, flag) and not (_is_int(start) and 0 <= start < self.epochs):
                raise ValueError(f"{name}={start!r} is out of range (allowed: an integer "
                                 f"0..{int(self.epochs) - 1} for {int(self.epochs)} epochs)")


def _task_options(api, scan: PtychiScan, o: PtychiOptions, device: str):
    kind, noise = ENGINE_SPECS[o.engine]
    n = scan.patterns.shape[0]
    batch_size = o.batch_size
    if batch_size is None:
        batch_size = min(n, 100) if kind == "lsqml" else min(n, 16)
    opts = api.LSQMLOptions() if kind == "lsqml" else api.EPIEOptions()
    opts.data_options.fft_shift = True
    ro = opts.reconstructor_options
    ro.num_epochs = int(o.epochs)
    ro.batch_size = int(batch_size)
    ro.random_seed = int(o.seed)
    ro.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    ro.displayed_loss_function = None
    if kind == "lsqml":
        ro.rescale_probe_intensity_in_first_epoch = False
        ro.noise_model = api.NoiseModels.POISSON if noise == "poisson" else api.NoiseModels.GAUSSIAN
    oo = opts.object_options
    oo.optimizable = True
    oo.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    oo.position_origin_coords = [scan.origin, scan.origin]
    oo.remove_object_probe_ambiguity.enabled = False
    opts.probe_options.optimizable = bool(o.optimize_probe)
    if o.optimize_probe:
        opts.probe_options.optimization_plan.start = int(o.probe_start_epoch)
    po = opts.probe_position_options
    po.optimizable = bool(o.optimize_positions)
    if o.optimize_positions:
        po.optimization_plan.start = int(o.position_start_epoch)
        po.step_size = float(o.position_step_size)
        po.correction_options.update_magnitude_limit = float(o.position_update_limit)
    return opts


class PtychiRun:
    """One Pty-chi task, used as a context manager (Pty-chi changes torch's default device
    and dtype; they are restored on exit)::

        with PtychiRun(scan, PtychiOptions("lsqml", epochs=50)) as run:
            run.run(10)            # continue the same task by 10 epochs (default: the rest)
            obj = run.object()     # (H, W) complex64, the object frame

    The object starts at ``initial_object`` (H, W) or at a flat object of the Parseval
    amplitude. ``elapsed_s`` counts the task build and the epochs (device synchronised),
    not the reads.
    """

    def __init__(self, scan: PtychiScan, options: PtychiOptions, *,
                 initial_object: np.ndarray | None = None):
        self.scan, self.options = scan, options
        self.device = resolve_device(options.device)
        self._initial_object = initial_object
        self._stack = contextlib.ExitStack()
        self.task = None
        self.epochs_done = 0
        self.elapsed_s = 0.0

    def __enter__(self) -> PtychiRun:
        api, PtychographyTask = import_ptychi()
        self._stack.enter_context(restore_torch_defaults())
        scan = self.scan
        t0 = time.perf_counter()
        opts = _task_options(api, scan, self.options, self.device)
        if self._initial_object is None:
            obj = np.full(scan.buffer_shape, scan.amplitude_guess, dtype=np.complex64)
        else:
            obj = pad_object(self._initial_object, scan.margin)
        self.task = PtychographyTask(
            opts, diffraction_data=scan.patterns, object_data=obj[None],
            probe_data=scan.probe, probe_position_x_px=scan.positions_xy[:, 0].copy(),
            probe_position_y_px=scan.positions_xy[:, 1].copy())
        self.elapsed_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def run(self, epochs: int | None = None) -> PtychiRun:
        """Run ``epochs`` more epochs of the same task (default: all that are left)."""
        k = int(self.options.epochs) - self.epochs_done if epochs is None else int(epochs)
        t0 = time.perf_counter()
        self.task.run(n_epochs=k)
        self._sync()
        self.elapsed_s += time.perf_counter() - t0
        self.epochs_done += k
        return self

    def object(self) -> np.ndarray:
        """The object (H, W) complex64 in the object frame (the margin removed)."""
        buf = self.task.get_data_to_cpu("object", as_numpy=True)[0]
        return unpad_object(buf, self.scan).astype(np.complex64).copy()

    def probe(self) -> np.ndarray:
        """Pty-chi's probe (opr, modes, N, N) in its own units (``P * s / N``)."""
        return self.task.get_data_to_cpu("probe", as_numpy=True)

    def positions_xy(self) -> np.ndarray:
        """The positions (n, 2) (x, y) in object pixels, as corrected so far."""
        yx = self.task.get_data_to_cpu("probe_positions", as_numpy=True)
        return np.ascontiguousarray(yx[:, ::-1], dtype=np.float64)

    def batch_size(self) -> int:
        return int(self.task.reconstructor_options.batch_size)

    def loss_history(self) -> list:
        tracker = getattr(self.task.reconstructor, "loss_tracker", None)
        table = getattr(tracker, "table", None)
        try:
            return [float(v) for v in table["loss"].tolist()]
        except Exception:  # noqa: BLE001 - the history is informative only
            return []

    def forward_intensity(self) -> np.ndarray:
        """Pty-chi's forward model of the current object: counts (n, N, N), DC centred."""
        fm = self.task.reconstructor.forward_model
        with torch.no_grad():
            y = fm.forward(torch.arange(self.scan.patterns.shape[0])).detach().cpu().numpy()
        return np.fft.fftshift(y, axes=(-2, -1))


def ptychi_forward_intensity(obj: np.ndarray, scan: PtychiScan, device: str = "cpu") -> np.ndarray:
    """Pty-chi's own forward model applied to ``obj`` (H, W): counts (n, N, N), DC centred."""
    with PtychiRun(scan, PtychiOptions("lsqml", epochs=1, device=device),
                   initial_object=obj) as run:
        return run.forward_intensity()


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


def reconstruct(scan: PtychiScan, options: PtychiOptions, *, every: int | None = None,
                warmup: bool = True, initial_object: np.ndarray | None = None
                ) -> tuple[IterativeResult, list]:
    """Reconstruct ``scan`` for ``options.epochs``, taking the object out every ``every``
    epochs (default: only at the end).

    One task runs ``every`` epochs at a time (continuing the same task: object, step sizes
    and batch order), so the object after ``e`` epochs is exactly that of an uninterrupted
    ``e``-epoch run with the same seed. Returns the :class:`IterativeResult` of the whole
    run and ``[(epoch, obj (H, W) complex64, seconds so far), ...]`` at epochs ``every,
    2 every, ..., epochs`` (the last chunk may be shorter). ``warmup`` first runs one
    untimed epoch, so one-off costs (torch's lazy imports, CUDA context and kernels) are
    not counted, as for the network side. ``initial_object`` (H, W): the start instead of
    the flat object (:mod:`ptycho_torch.ptychi.start`).
    """
    epochs = int(options.epochs)
    every = epochs if every is None else every
    if not (isinstance(every, (int, np.integer)) and every >= 1):
        raise ValueError(f"iterative chunk every={every!r} is out of range (allowed: an "
                         "integer >= 1)")
    if warmup:
        with PtychiRun(scan, replace(options, epochs=1)) as run:
            run.run()
    states = []
    with PtychiRun(scan, options, initial_object=initial_object) as run:
        while run.epochs_done < epochs:
            run.run(min(int(every), epochs - run.epochs_done))
            states.append((run.epochs_done, run.object(), run.elapsed_s))
        res = IterativeResult(engine=options.engine, obj=states[-1][1], time_s=run.elapsed_s,
                              epochs=epochs, n_patterns=int(scan.patterns.shape[0]),
                              batch_size=run.batch_size(), device=run.device,
                              loss=run.loss_history())
    return res, states
