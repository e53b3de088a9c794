"""What the diagnostic scripts here share (``patch_twins.py``, ``self_consistency.py``,
``stitch_variants.py``): their flags for a trained model and one object of a scan, and the
checks of those flags, each refusal one line naming the flag, before the model is read."""
from __future__ import annotations

import sys
from pathlib import Path

import _repo_path  # noqa: F401  (the repository root on sys.path)


def add_threads_arg(p) -> None:
    """--num-threads, as a study's."""
    p.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: the "
                   "usable CPUs less those busy with other work, as a study chooses)")


def apply_threads(a) -> bool:
    """Set torch's CPU threads from ``a.num_threads``; False after a one-line refusal."""
    if a.num_threads < 0:
        _refuse(f"--num-threads {a.num_threads}: allowed 0 (choose) or more")
        return False
    from ptycho_torch.engine.threads import apply_num_threads
    apply_num_threads(a.num_threads)
    return True


def add_model_object_args(p, data_help: str) -> None:
    """--checkpoint, --data, --object-index, --infer-batch-size and --num-threads."""
    p.add_argument("--checkpoint", required=True, help="a study's runs/<model>/model.ckpt")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--object-index", type=int, default=0, help="which object (default 0)")
    p.add_argument("--infer-batch-size", type=int, default=64)
    add_threads_arg(p)


def _refuse(line: str) -> None:
    print(f"error: {line}", file=sys.stderr)


def read_object(a, needs_phase: bool = False):
    """``(data, sub)``: the scan of ``a.data`` and its object ``a.object_index``; None
    after a one-line refusal (``needs_phase``: the scan must hold its true phase, Y_phi)."""
    from ptycho.formats.readers import read_dataset

    if a.infer_batch_size < 1:
        return _refuse(f"--infer-batch-size {a.infer_batch_size}: allowed 1 or more")
    if not apply_threads(a):
        return None
    for flag, path in (("--checkpoint", a.checkpoint), ("--data", a.data)):
        if not Path(path).is_file():
            return _refuse(f"{flag} {path}: no such file")
    data = read_dataset(a.data)
    if needs_phase and data.Y_phi is None:
        return _refuse(f"--data {a.data}: no Y_phi labels (the true object phase of each "
                       "patch): a simulated test scan is needed")
    objects = sorted({int(k) for k in data.object_index})
    if a.object_index not in objects:
        return _refuse(f"--object-index {a.object_index}: allowed {objects}")
    return data, data.select(data.object_selection(a.object_index))
