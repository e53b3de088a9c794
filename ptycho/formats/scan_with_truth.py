""":class:`ScanWithTruth`: what the format writers need of a scan whose truth is known.

A simulated scan (such as :class:`ptycho.datagen.spiral_scan.SpiralScan`) satisfies it; the
formats layer only names the attributes, and never imports the simulators. Conventions are
those of :class:`ptycho.formats.raw_scan.RawScan`: positions are probe centres
``(x, y) = (column, row)`` in object pixels, the probe is in photon units.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["ScanWithTruth"]


class ScanWithTruth(Protocol):
    """A scan with its counts and the probe and object that made them."""

    @property
    def counts(self) -> np.ndarray:
        """(n, N, N) photon counts (bad pixels 0)."""

    @property
    def positions_px(self) -> np.ndarray:
        """(n, 2) float64 probe centres (x, y), object pixels."""

    @property
    def probe(self) -> np.ndarray:
        """(modes, N, N) complex probe, photon units."""

    @property
    def object(self) -> np.ndarray:
        """(H, W) complex object."""

    @property
    def scan_index(self) -> np.ndarray:
        """(n,) int64 scan / object of each pattern."""

    @property
    def bad_pixels(self) -> np.ndarray:
        """(N, N) bool, True = not measured."""

    @property
    def n(self) -> int:
        """Number of patterns."""

    @property
    def N(self) -> int:
        """Pattern size."""
