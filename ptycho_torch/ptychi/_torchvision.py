"""A stand-in for the one torchvision function Pty-chi imports (see the package docstring)."""
from __future__ import annotations

import contextlib
import sys
import types


def _gaussian_blur_stand_in():
    """A class with torchvision's ``GaussianBlur(kernel_size, sigma)(img)`` behaviour.

    Separable Gaussian kernel ``exp(-x^2 / (2 sigma^2))`` normalised to sum 1 on
    ``x = -(k-1)/2 .. (k-1)/2``, reflect padding, applied to the last two axes of a
    real (..., H, W) tensor. Only what Pty-chi calls is supported (fixed sigma). torch is
    imported here, when Pty-chi is, so that importing :mod:`ptycho_torch.ptychi` (its engine
    names, :func:`~ptycho_torch.ptychi.check_engines`) loads no torch.
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
def torchvision_stand_in():
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
