"""Batched prediction of object patches with CPU aggregation.

Only one batch of inputs and outputs is on the accelerator at a time: each slice of
``infer_batch_size`` patterns is copied to the model's device (from pinned memory,
non-blocking, on CUDA), predicted with ``forward_predict`` under ``inference_mode``, and
its output copied straight back to CPU. On an out-of-memory error the batch is halved
and retried from the failed batch; results are identical to an un-halved run.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

import numpy as np
import torch

from ptycho.config.config import InferenceConfig
from ptycho.config.study_config import StudyConfig
from ptycho.dataset import PtychoDataset
from ptycho.reconstruction import Reconstruction, stitch_test_object

log = logging.getLogger(__name__)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


_FIELDS = {"diffraction": "diffraction", "coords_nominal": "coords_nominal",
           "probeGuess": "probe"}


def _get(test_data, key: str):
    """``key`` of a mapping (the NPZ key names) or the matching field of a PtychoDataset."""
    if isinstance(test_data, PtychoDataset):
        return getattr(test_data, _FIELDS[key]) if key in _FIELDS else None
    return test_data.get(key)


def prediction_inputs(model, test_data: PtychoDataset | Mapping):
    """CPU tensors (x, positions, probe, input_scale (n,1,1,1)) built from the test data.

    ``test_data`` is a :class:`ptycho.dataset.PtychoDataset` or a mapping with the NPZ key
    names. Missing positions default to zeros; a missing probe to the model's probe (or
    ones); a missing ``input_scale_factor`` to ``model.data_config.input_scale`` (or 1).
    """
    x = torch.as_tensor(np.asarray(_get(test_data, "diffraction"), dtype=np.float32))
    if x.ndim != 4:
        raise ValueError(f"test_data['diffraction'] must be (n, C, N, N), got shape {tuple(x.shape)}")
    n, c, N, _ = x.shape
    pos = _get(test_data, "coords_nominal")
    positions = (torch.zeros(n, c, 1, 2) if pos is None
                 else torch.as_tensor(np.asarray(pos, dtype=np.float32)))
    if positions.shape != (n, c, 1, 2):
        raise ValueError(f"test_data['coords_nominal'] must be ({n}, {c}, 1, 2), "
                         f"got {tuple(positions.shape)}")
    probe = _get(test_data, "probeGuess")
    if probe is None:
        buf = getattr(model, "probe", None)
        probe = buf.detach().cpu() if isinstance(buf, torch.Tensor) else torch.ones(N, N)
    probe = torch.as_tensor(np.asarray(probe)).to(torch.complex64)
    scale = _get(test_data, "input_scale_factor")
    if scale is None:
        dc = getattr(model, "data_config", None)
        scale = getattr(dc, "input_scale", 1.0)
    scale = torch.as_tensor(np.asarray(scale, dtype=np.float32))
    scale = (scale.expand(n) if scale.ndim == 0 else scale.reshape(n)).reshape(n, 1, 1, 1).clone()
    return x, positions, probe, scale


def run_torch_inference(model, test_data: PtychoDataset | Mapping, cfg, *,
                        on_batch_size_change: Callable[[int], None] | None = None) -> np.ndarray:
    """Predict every test pattern; returns numpy complex64 (n, C, N, N) in input order.

    ``model`` has ``forward_predict(x, positions, probe, input_scale_factor)``;
    ``test_data`` a :class:`ptycho.dataset.PtychoDataset` (or a channel-first mapping);
    ``cfg`` a ``TorchRunnerConfig``, a ``StudyConfig`` or an ``InferenceConfig`` (its
    ``infer_batch_size`` is used).
    """
    return predict_patches(model, test_data, infer_batch_size_of(cfg),
                           on_batch_size_change=on_batch_size_change)


def infer_batch_size_of(cfg) -> int:
    """``infer_batch_size`` of a TorchRunnerConfig, a StudyConfig (its inference section)
    or an InferenceConfig (or any object with that attribute)."""
    section = cfg.inference if isinstance(cfg, StudyConfig) else cfg
    value = getattr(section, "infer_batch_size", None)
    if value is None:
        raise TypeError(f"run_torch_inference: cfg is a {type(cfg).__name__} without "
                        "infer_batch_size (allowed: TorchRunnerConfig, StudyConfig or "
                        "InferenceConfig)")
    return int(value)


def predict_patches(model, test_data: PtychoDataset | Mapping, batch_size: int, *,
                    on_batch_size_change: Callable[[int], None] | None = None) -> np.ndarray:
    """:func:`run_torch_inference` with the batch size given directly.

    The probe is handed to ``forward_predict`` as the CPU tensor it is (the argument is
    part of the seed's signature and unused by this project's model), never copied to
    the device. A model with ``set_scan_geometry`` gets the scan's offsets once, so its
    overlap constraint needs no per-batch host synchronisation (restored afterwards).
    """
    batch = int(batch_size)
    if batch < 1:
        raise ValueError(f"infer_batch_size={batch} must be >= 1")
    x, positions, probe, scale = prediction_inputs(model, test_data)
    device = _model_device(model)
    on_cuda = device.type == "cuda"
    if on_cuda:
        x, positions, scale = x.pin_memory(), positions.pin_memory(), scale.pin_memory()
    n = x.shape[0]
    out = torch.empty(x.shape, dtype=torch.complex64)
    was_training = model.training
    geometry = hasattr(model, "set_scan_geometry")
    if geometry:
        previous_geometry = model.overlap_region_size
        model.set_scan_geometry(positions)
    model.eval()
    start = 0
    try:
        with torch.inference_mode():
            while start < n:
                stop = min(start + batch, n)
                try:
                    pred = model.forward_predict(
                        x[start:stop].to(device, non_blocking=on_cuda),
                        positions[start:stop].to(device, non_blocking=on_cuda),
                        probe,
                        scale[start:stop].to(device, non_blocking=on_cuda))
                    out[start:stop] = pred.to("cpu").to(torch.complex64)
                    del pred
                except Exception as err:  # noqa: BLE001 - only OOM is handled
                    if not _is_oom(err) or batch == 1:
                        raise
                    if on_cuda:
                        torch.cuda.empty_cache()
                    failed, batch = batch, max(1, batch // 2)
                    log.warning("out of memory at infer_batch_size=%d; retrying from pattern %d "
                                "with infer_batch_size=%d", failed, start, batch)
                    if on_batch_size_change is not None:
                        on_batch_size_change(batch)
                    continue
                start = stop
    finally:
        model.train(was_training)
        if geometry:
            model.overlap_region_size = previous_geometry
    return out.numpy()


def forward_probe(model, test: PtychoDataset) -> np.ndarray:
    """The probe ``model``'s forward model uses now (learned or refined included), or the
    test scan's probe for a model that does not say."""
    current = getattr(model, "current_probe", None)
    if callable(current):
        return current().detach().cpu().numpy()
    return np.asarray(test.probe)


def reconstruct_test_object(model, test: PtychoDataset, inference: InferenceConfig,
                            object_index: int = 0) -> Reconstruction:
    """Predict object ``object_index``'s patterns in batches and stitch them
    (:func:`stitch_test_object`, weighted by the model's own probe with
    ``stitch_weighting="probe"``)."""
    sub = test.select(test.object_selection(object_index))
    sizes = [int(inference.infer_batch_size)]
    t0 = time.perf_counter()
    patches = predict_patches(model, sub, inference.infer_batch_size,
                              on_batch_size_change=sizes.append)
    probe = forward_probe(model, test) if inference.stitch_weighting == "probe" else None
    rec = stitch_test_object(patches, test, inference, object_index, probe=probe)
    rec.inference_time_s = time.perf_counter() - t0 - rec.stitch_time_s
    rec.infer_batch_size = sizes[-1]
    rec.precision = getattr(model, "precision", None)
    return rec
