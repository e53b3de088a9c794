"""The physical geometry of a scan: :class:`ScanGeometry`, the photon wavelength, the
conventional geometry of data without one, and Ptychodus's metre <-> pixel mapping.

Conventions: pixel sizes are (y, x) = (height, width) in metres, centres and positions
(x, y) = (column, row), energies in eV. Metres to object pixels, exactly as Ptychodus maps
probe positions onto its object (of ``H`` x ``W`` pixels)::

    x_px = (x_m - center_x_m) / pixel_width_m + (W - 1) / 2
    y_px = (y_m - center_y_m) / pixel_height_m + (H - 1) / 2
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "CONVENTIONAL_GEOMETRY",
    "ELECTRON_VOLT_J",
    "ScanGeometry",
    "WritableGeometry",
    "conventional_geometry",
    "far_field_object_pixel_m",
    "geometry_to_write",
    "metres_to_pixels",
    "pixels_to_metres",
    "wavelength_m",
]

# CODATA exact values (SI 2019).
PLANCK_J_S = 6.62607015e-34
LIGHT_SPEED_M_S = 299792458.0
ELECTRON_VOLT_J = 1.602176634e-19

#: Geometry written for studies without a physical one (simulated, in pixel units). These
#: are conventional values, not measurements: 10 nm object pixels, 1 m, 10 keV.
CONVENTIONAL_GEOMETRY = {
    "object_pixel_m": 1e-8,
    "detector_distance_m": 1.0,
    "photon_energy_eV": 10000.0,
}


@dataclass(frozen=True)
class ScanGeometry:
    """Physical geometry of a scan; every field is optional (None = not in the file).

    ``detector_pixel_m`` and ``object_pixel_m`` are (y, x) = (height, width) in metres;
    ``object_center_m`` is (x, y) in metres (Ptychodus's object centre).
    """

    detector_distance_m: float | None = None
    detector_pixel_m: tuple[float, float] | None = None
    photon_energy_eV: float | None = None
    object_pixel_m: tuple[float, float] | None = None
    object_center_m: tuple[float, float] | None = None

    @property
    def wavelength_m(self) -> float | None:
        """``h c / E`` in metres, or None without a photon energy."""
        if not self.photon_energy_eV:
            return None
        return wavelength_m(self.photon_energy_eV)

    def to_dict(self) -> dict[str, Any]:
        def conv(v):
            return None if v is None else (list(v) if isinstance(v, tuple) else float(v))
        return {
            "detector_distance_m": conv(self.detector_distance_m),
            "detector_pixel_m_yx": conv(self.detector_pixel_m),
            "photon_energy_eV": conv(self.photon_energy_eV),
            "object_pixel_m_yx": conv(self.object_pixel_m),
            "object_center_m_xy": conv(self.object_center_m),
        }


def wavelength_m(photon_energy_eV: float) -> float:
    """``lambda = h c / E`` for a photon energy in eV."""
    return PLANCK_J_S * LIGHT_SPEED_M_S / (float(photon_energy_eV) * ELECTRON_VOLT_J)


def far_field_object_pixel_m(photon_energy_eV: float, distance_m: float,
                             n_px: int, detector_pixel_m: float) -> float:
    """``lambda z / (n * detector pixel)``: the object pixel of a far-field geometry (and,
    the relation being symmetric, the detector pixel of an object pixel)."""
    return wavelength_m(photon_energy_eV) * distance_m / (n_px * detector_pixel_m)


def conventional_geometry(N: int) -> ScanGeometry:
    """The conventional geometry of simulated data, made self-consistent for size N.

    Object pixel 10 nm, detector distance 1 m, photon energy 10 keV (conventional values,
    not measured); detector pixel ``lambda z / (N * object pixel)`` so that the far-field
    relation holds; object centre (0, 0) m.
    """
    px = CONVENTIONAL_GEOMETRY["object_pixel_m"]
    z = CONVENTIONAL_GEOMETRY["detector_distance_m"]
    e = CONVENTIONAL_GEOMETRY["photon_energy_eV"]
    dp = far_field_object_pixel_m(e, z, N, px)
    return ScanGeometry(detector_distance_m=z, detector_pixel_m=(dp, dp), photon_energy_eV=e,
                        object_pixel_m=(px, px), object_center_m=(0.0, 0.0))


@dataclass(frozen=True)
class WritableGeometry:
    """A :class:`ScanGeometry` with every field given: what the file writers record."""

    detector_distance_m: float
    detector_pixel_m: tuple[float, float]
    photon_energy_eV: float
    object_pixel_m: tuple[float, float]
    object_center_m: tuple[float, float]


def geometry_to_write(geometry: ScanGeometry | None, N: int) -> WritableGeometry:
    """The geometry a writer records: :func:`conventional_geometry` (``N``) when None, else
    ``geometry``, refused (ValueError, naming the field) when a field is None."""
    g = conventional_geometry(N) if geometry is None else geometry
    values = {f.name: getattr(g, f.name) for f in fields(g)}
    missing = [name for name, v in values.items() if v is None]
    if missing:
        raise ValueError(f"geometry: {missing[0]} is None (a file writer records every field "
                         "of ScanGeometry: give them all, or geometry=None for the conventional "
                         "geometry)")
    return WritableGeometry(**values)


def metres_to_pixels(x_m, y_m, center_m, pixel_m, object_shape):
    """Ptychodus's mapping: positions (m) -> object pixels (x, y), float64 (n, 2).

    ``center_m`` (x, y), ``pixel_m`` (y, x) = (height, width), ``object_shape`` (H, W).
    """
    H, W = object_shape
    x = (np.asarray(x_m, np.float64) - center_m[0]) / pixel_m[1] + (W - 1) / 2.0
    y = (np.asarray(y_m, np.float64) - center_m[1]) / pixel_m[0] + (H - 1) / 2.0
    return np.stack([x, y], axis=1)


def pixels_to_metres(positions_px, center_m, pixel_m, object_shape):
    """Inverse of :func:`metres_to_pixels`: returns (x_m, y_m) float64 arrays."""
    H, W = object_shape
    p = np.asarray(positions_px, np.float64)
    x_m = (p[:, 0] - (W - 1) / 2.0) * pixel_m[1] + center_m[0]
    y_m = (p[:, 1] - (H - 1) / 2.0) * pixel_m[0] + center_m[1]
    return x_m, y_m
