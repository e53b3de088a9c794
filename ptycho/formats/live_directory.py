"""A scan measured into a folder, one file per chunk of frames, followed with ``watchdog``.

Folder (written by ``ptycho-live-sim --directory``; every file appears whole: written under a
hidden name, then renamed):

- ``scan.npz``: ``probeGuess`` (modes, N, N), ``bad_pixels`` (N, N), ``unit``, ``scan_id``;
- ``frames_<first index>.npz``: ``diffraction`` (k, N, N), ``xcoords`` / ``ycoords`` (k,)
  px (NaN: the position comes later), ``frame_index`` (k,), ``frame_time_s`` (k,);
- ``positions_<index>.npz``: a late position (``frame_index``, ``xcoords``, ``ycoords``);
- ``complete``: the scan is finished.

:class:`LiveDirectoryReader` has the interface of :class:`ptycho.formats.live_hdf5.
LiveScanReader`. New files are learnt from watchdog's events (inotify where the kernel has
it; ``polling=True``: its PollingObserver, which also sees files written from another
machine on a network file system). A frame waiting for its position is held in memory
until the position comes; the frame -> file map lets the end of the scan read frames back.
"""
from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import numpy as np

from ptycho.formats.checks import fail
from ptycho.formats.live_hdf5 import LiveLayout, SourceReplacedError

__all__ = ["LiveDirectoryReader", "LiveDirectoryWriter", "write_chunk_file"]

LAYOUT = LiveLayout("diffraction", "xcoords", "ycoords", "probeGuess", False)


def write_chunk_file(folder: Path, name: str, **arrays) -> Path:
    """``folder/name`` written whole: under a hidden name first, then renamed."""
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(folder / name)
    return folder / name


class LiveDirectoryWriter:
    """The folder a detector writes (module docstring); the methods of
    :class:`ptycho.formats.live_hdf5.LiveScanWriter`."""

    def __init__(self, path, probe: np.ndarray, bad_pixels, unit: str):
        self.folder = Path(path)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in list(self.folder.glob("*.npz")) + [self.folder / "complete"]:
            old.unlink(missing_ok=True)          # a new scan
        N = np.shape(probe)[-1]
        write_chunk_file(self.folder, "scan.npz", probeGuess=np.asarray(probe, np.complex64),
                         bad_pixels=np.zeros((N, N), bool) if bad_pixels is None else bad_pixels,
                         unit=np.array(unit), scan_id=np.array(uuid.uuid4().hex))
        self.n = 0

    def append(self, patterns: np.ndarray, positions_px: np.ndarray) -> None:
        k, xy = len(patterns), np.asarray(positions_px, np.float64).reshape(-1, 2)
        write_chunk_file(self.folder, f"frames_{self.n:08d}.npz",
                         diffraction=np.asarray(patterns, np.float32), xcoords=xy[:, 0],
                         ycoords=xy[:, 1], frame_index=np.arange(self.n, self.n + k),
                         frame_time_s=np.full(k, time.time()))
        self.n += k

    def set_position(self, index: int, xy) -> None:
        xy = np.asarray(xy, np.float64).reshape(2)
        write_chunk_file(self.folder, f"positions_{int(index):08d}.npz",
                         frame_index=np.array([int(index)]), xcoords=xy[:1], ycoords=xy[1:])

    def close(self) -> None:
        (self.folder / "complete").touch()


def _observer(polling: bool):
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver
    except ImportError as err:
        raise ValueError(f"a folder source needs watchdog, which cannot be imported here "
                         f"({err}) (install the 'live' extra)") from None

    class Handler(FileSystemEventHandler):
        def __init__(self):
            self.paths = queue.Queue()

        def on_any_event(self, event):
            if event.event_type in ("created", "moved") and not event.is_directory:
                self.paths.put(getattr(event, "dest_path", "") or event.src_path)
    return (PollingObserver(timeout=0.1) if polling else Observer()), Handler()


class LiveDirectoryReader:
    """Follows a folder of chunk files (module docstring)."""

    def __init__(self, path, *, polling: bool = False):
        self.path, self.folder = str(path), Path(path)
        head = self.folder / "scan.npz"
        if not head.is_file():
            raise fail(self.path, "scan.npz", "is missing", "a folder a detector writes: "
                       "scan.npz (probe, bad pixels, unit), then frames_*.npz")
        self.layout, self.layout_name, self.pixel_m = LAYOUT, "directory", None
        with np.load(head) as z:
            self.probe = np.asarray(z["probeGuess"], np.complex64).reshape(
                -1, *z["probeGuess"].shape[-2:])
            self.bad_pixels = np.asarray(z["bad_pixels"], bool) if "bad_pixels" in z else None
            self.unit = str(z["unit"]) if "unit" in z else None
            self.scan_id = str(z["scan_id"]) if "scan_id" in z else ""
        self.N = int(self.probe.shape[-1])
        self._head = head.stat().st_ino
        self.observer, self.handler = _observer(polling)
        self.observer.schedule(self.handler, self.path, recursive=False)
        self.observer.start()
        self.seen: set[str] = set()
        for p in sorted(self.folder.glob("*.npz")) + [self.folder / "complete"]:
            self.handler.paths.put(str(p))
        self.cursor = 0
        self.pending: list[int] = []      # frames whose position has not come yet
        self.where: dict[int, tuple[Path, int]] = {}  # frame -> (its file, its row there)
        self._waiting: dict[int, tuple[np.ndarray, float]] = {}
        self._complete = False

    def check_same_file(self) -> None:
        head = self.folder / "scan.npz"
        try:
            ino = head.stat().st_ino
        except FileNotFoundError:
            raise SourceReplacedError(f"source '{self.path}' lost its scan.npz") from None
        if ino != self._head:
            raise SourceReplacedError(f"source '{self.path}' holds a new scan (scan.npz "
                                      f"rewritten; scan_id {self.scan_id} no longer there)")

    def is_complete(self) -> bool:
        return self._complete

    def caught_up(self) -> bool:
        return self.handler.paths.empty()

    def poll(self, limit: int = 4096):
        """As :meth:`ptycho.formats.live_hdf5.LiveScanReader.poll`."""
        self.check_same_file()
        out: list[tuple] = []
        while len(out) < limit:
            try:
                p = Path(self.handler.paths.get_nowait())
            except queue.Empty:
                break
            if p.name in self.seen or p.name.startswith(".") or not p.exists():
                continue
            self.seen.add(p.name)
            if p.name == "complete":
                self._complete = True
            elif p.name.startswith("frames_"):
                out += self._frames(p)
            elif p.name.startswith("positions_"):
                out += self._late(p)
        N = self.N
        if not out:
            return np.zeros(0, np.int64), np.zeros((0, N, N), np.float32), np.zeros((0, 2)), np.zeros(0)
        idx, pats, xy, t = zip(*out)
        return np.array(idx), np.stack(pats), np.array(xy), np.array(t)

    def _frames(self, p: Path) -> list:
        with np.load(p) as z:
            pats, idx = z["diffraction"], z["frame_index"]
            xy = np.stack([z["xcoords"], z["ycoords"]], axis=1)
            t = z["frame_time_s"] if "frame_time_s" in z else np.full(len(idx), np.nan)
        out = []
        for r, i in enumerate(idx):
            self.where[int(i)] = (p, r)
            self.cursor = max(self.cursor, int(i) + 1)
            if np.isfinite(xy[r]).all():
                out.append((int(i), pats[r], tuple(xy[r]), t[r]))
            else:
                self.pending.append(int(i))
                self._waiting[int(i)] = (pats[r], t[r])
        return out

    def _late(self, p: Path) -> list:
        with np.load(p) as z:
            items = list(zip(z["frame_index"], z["xcoords"], z["ycoords"]))
        out = []
        for i, x, y in items:
            if int(i) in self._waiting:
                pat, t = self._waiting.pop(int(i))
                self.pending.remove(int(i))
                out.append((int(i), pat, (float(x), float(y)), t))
        return out

    def read_frames(self, ids) -> np.ndarray:
        """The stored patterns of frames ``ids`` (in that order), each file read once."""
        rows, cache = [], {}
        for i in ids:
            p, r = self.where[int(i)]
            if p not in cache:
                with np.load(p) as z:
                    cache = {p: z["diffraction"]}
            rows.append(cache[p][r])
        return np.stack(rows)

    def close(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
