"""What the HDF5 formats (Ptychodus, CXI) share: the HDF5 file signature, and h5py,
imported only when an HDF5 file is read or written (it is an optional dependency)."""
from __future__ import annotations

__all__ = ["HDF5_MAGIC", "h5py_module", "is_hdf5"]

#: The first 8 bytes of every HDF5 file.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def h5py_module():
    """The h5py module, or an ImportError that says how to install it."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed with the project
        raise ImportError("reading HDF5 files needs h5py (pip install h5py)") from exc
    return h5py


def is_hdf5(path: str) -> bool:
    """Whether the file at ``path`` starts with the HDF5 signature."""
    with open(path, "rb") as fh:
        return fh.read(8) == HDF5_MAGIC
