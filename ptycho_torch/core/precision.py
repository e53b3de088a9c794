"""Arithmetic precision of the network: ``'32'`` or ``'bf16-mixed'`` (Lightning's names).

Under ``'bf16-mixed'`` training runs inside Lightning's ``MixedPrecision`` plugin, which
wraps every training and validation step in ``torch.autocast(device, torch.bfloat16)``;
prediction (:meth:`PtychoPINN_Lightning.forward_predict`) opens the same autocast region
itself. Inside it, torch runs convolutions and linear layers in bfloat16 and leaves
element-wise work in the dtype it receives. Four parts of the training step are kept in
float32 / complex64 by design, each opening a :func:`float32_island` and casting its input
at the boundary:

* the spectral convolution (neuraloperator's ``SpectralConv``: its FFTs have no bfloat16
  kernel on the CPU, and its complex weights no bfloat16 form);
* the complex output head (``torch.complex`` / ``torch.polar`` take float32);
* the forward model (the probe product and the FFT of the exit wave, complex64);
* the loss (sums over whole patterns).

The data residual and the stitching run after prediction, outside any autocast region.

The weights and the optimizer state stay float32 (autocast casts a copy for each
operation), so a ``bf16-mixed`` model file holds the same float32 tensors as a ``'32'``
one and loads under either precision. Reruns at a given precision are bit-exact on the
CPU (autocast is deterministic); the two precisions give different numbers.
"""
from __future__ import annotations

import torch

BF16 = "bf16-mixed"


def bf16_supported(device_type: str) -> bool:
    """Whether ``device_type`` ('cpu' or 'cuda') has native bfloat16 arithmetic: on the CPU,
    oneDNN's bfloat16 kernels (AVX512-BF16, AMX or AVX512 with emulation, as oneDNN
    itself decides); on CUDA, ``torch.cuda.is_bf16_supported()``."""
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_precision(precision: str, device_type: str) -> None:
    """Refuse (one-line ValueError) a precision this device cannot run natively (the
    configs have already checked that it is one of ``PRECISIONS``)."""
    if precision == BF16 and not bf16_supported(device_type):
        raise ValueError(f"precision='{BF16}' needs bfloat16 arithmetic, which this "
                         f"{device_type.upper()} lacks (allowed here: '32')")


def autocast(precision: str, device_type: str) -> torch.autocast:
    """The autocast region of ``precision`` on ``device_type``: bfloat16 for
    ``'bf16-mixed'``, disabled (float32) for ``'32'``."""
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16,
                          enabled=precision == BF16)


def float32_island(device_type: str) -> torch.autocast:
    """A region inside :func:`autocast` where nothing is cast down: the caller casts its
    input to float32 (``.float()``) at the boundary."""
    return torch.autocast(device_type=device_type, enabled=False)
