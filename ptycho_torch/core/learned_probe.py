"""A probe learned with the network: the forward model's probe as a trainable estimate.

The file's probe is an estimate (a zone-plate model, an earlier reconstruction); a wrong
probe makes the network fit the wrong object. With ``probe_update="learn"`` the forward
model uses

    ``P = gauge(P0 + max|P0| * support * D)``

where ``P0`` is the starting probe (the operator's buffer, saved with the weights) and
``D`` a trainable complex correction in units of ``P0``'s peak amplitude (so one learning
rate fits any probe scale), initialised at zero (so the first step is the fixed-probe model
exactly). The constraints and gauges, all differentiable:

* **support**: the correction is zero farther than ``support_radius`` from the window
  centre (default: 1.25 x the radius of the disk holding 99 % of ``P0``'s energy, at most
  the window's half width), so the probe cannot grow into the window's corners;
* **scale** (object/probe ambiguity ``(O / a, a P)``): the total intensity ``sum |P|^2``
  is held at ``P0``'s; the object absorbs the global scale;
* **phase ramp** (``(O e^{-ik.r}, P e^{ik.r})`` fit the data alike): the intensity
  centroid of the probe's far field is held at ``P0``'s by the opposite ramp on ``P``; the
  object absorbs the ramp;
* **constant phase**: ``<P0, P>`` is kept real and positive.

The correction has its own learning rate (``probe_learning_rate``) and is frozen for the
first ``probe_warmup_epochs`` epochs (the object first: a probe learned against a random
object only learns the object's errors). Pure torch: it needs no Pty-chi.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def energy_radius(probe: Tensor, fraction: float = 0.99) -> float:
    """Radius (pixels, from the window centre ``(N//2, N//2)``) of the smallest centred disk
    that holds ``fraction`` of the probe's energy (summed over modes)."""
    p = probe.detach()
    intensity = (p.real.square() + p.imag.square()).reshape(-1, *p.shape[-2:]).sum(0)
    N = intensity.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(N, dtype=torch.float64) - N // 2,
                            torch.arange(N, dtype=torch.float64) - N // 2, indexing="ij")
    r = torch.sqrt(yy ** 2 + xx ** 2).reshape(-1)
    order = torch.argsort(r)
    cum = torch.cumsum(intensity.reshape(-1).to(torch.float64)[order], 0)
    total = float(cum[-1])
    if not total > 0:
        raise ValueError("probe has zero intensity: no support can be derived from it")
    k = int(torch.searchsorted(cum, torch.tensor(fraction * total, dtype=torch.float64)))
    return float(r[order][min(k, r.numel() - 1)])


def _centred_grid(N: int, dtype, device) -> tuple[Tensor, Tensor]:
    ax = torch.arange(N, dtype=dtype, device=device) - N // 2
    return torch.meshgrid(ax, ax, indexing="ij")          # (row, col) = (y, x)


class LearnedProbe(nn.Module):
    """``P = gauge(P0 + max|P0| * support * D)`` (module docstring); ``forward()`` returns ``P``
    with ``P0``'s shape ((N, N) or (modes, N, N)), complex64."""

    def __init__(self, initial: Tensor, support_radius: float | None = None):
        super().__init__()
        initial = initial.detach().to(torch.complex64)
        N = initial.shape[-1]
        self._support_radius = support_radius
        self.register_buffer("support", torch.ones(N, N))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("target_intensity", torch.ones(()))
        self.register_buffer("target_centroid", torch.zeros(2))
        self.correction = nn.Parameter(torch.zeros(*initial.shape, 2, dtype=torch.float32))
        self.reset(initial)

    def reset(self, initial: Tensor) -> None:
        """Start again from ``initial``: the correction is zeroed and the support, the peak
        amplitude (the correction's unit) and the gauge targets are taken from it."""
        initial = initial.detach().to(torch.complex64)
        N = initial.shape[-1]
        radius = (min(1.25 * energy_radius(initial), N / 2.0) if self._support_radius is None
                  else float(self._support_radius))
        yy, xx = _centred_grid(N, torch.float32, initial.device)
        with torch.no_grad():
            self.support.copy_((torch.sqrt(yy ** 2 + xx ** 2) <= radius).to(torch.float32))
            self.scale.copy_(initial.abs().max().clamp_min(1e-30))
            self.target_intensity.copy_((initial.real.square() + initial.imag.square()).sum())
            self.target_centroid.copy_(self._far_field_centroid(initial))
            self.correction.zero_()

    @staticmethod
    def _far_field_centroid(p: Tensor) -> Tensor:
        """Intensity centroid (ky, kx) of ``fftshift(fft2(p))`` in frequency pixels, as a
        circular mean (a ramp of k pixels moves it by exactly k)."""
        N = p.shape[-1]
        f = torch.fft.fftshift(torch.fft.fft2(p, norm="ortho"), dim=(-2, -1))
        w = (f.real.square() + f.imag.square()).reshape(-1, N, N).sum(0)
        angle = torch.arange(N, dtype=w.dtype, device=w.device) * (2 * math.pi / N)
        cos, sin = torch.cos(angle), torch.sin(angle)
        ky = torch.atan2((w.sum(1) * sin).sum(), (w.sum(1) * cos).sum())
        kx = torch.atan2((w.sum(0) * sin).sum(), (w.sum(0) * cos).sum())
        return torch.stack([ky, kx]) * (N / (2 * math.pi))

    def forward(self, initial: Tensor) -> Tensor:
        """The constrained probe from the starting probe ``initial`` (the operator's buffer)."""
        p = initial + torch.view_as_complex(self.correction) * (self.scale * self.support)
        N = p.shape[-1]
        shift = self._far_field_centroid(p) - self.target_centroid          # (ky, kx)
        yy, xx = _centred_grid(N, torch.float32, p.device)
        ramp = torch.exp(-2j * math.pi * (shift[0] * yy + shift[1] * xx).to(torch.complex64) / N)
        p = p * ramp
        power = (p.real.square() + p.imag.square()).sum()
        p = p * torch.sqrt(self.target_intensity / power.clamp_min(1e-30))
        overlap = torch.sum(torch.conj(initial) * p)
        return p * torch.exp(-1j * torch.angle(overlap))
