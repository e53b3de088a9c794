"""What every benchmark script shares: common flags, device choice and JSON output."""
from __future__ import annotations

import json
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho.config.choices import DEVICES  # noqa: E402  (numpy only)


def add_common_args(p, *, device_default: str | None = "auto") -> None:
    """The flags every benchmark has: --device (unless ``device_default`` is None),
    --threads and --json."""
    if device_default is not None:
        p.add_argument("--device", choices=DEVICES, default=device_default,
                       help=f"where to run (default: {device_default}; auto: cuda when available)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def add_generator_args(p) -> None:
    """The generator's size flags: --width (fno_width), --modes (fno_modes), --blocks
    (fno_blocks), with the study's paper-preset defaults."""
    p.add_argument("--width", type=int, default=32, help="fno_width")
    p.add_argument("--modes", type=int, default=12, help="fno_modes")
    p.add_argument("--blocks", type=int, default=4, help="fno_blocks")


def select_device(name: str):
    """The torch device for ``--device`` (auto, cpu or cuda), resolved by the project's one
    rule (``ptycho_torch.engine.device.resolve_device``: 'auto' -> cuda when available else cpu).
    A refusal ('cuda' without a CUDA device) prints the one-line error and returns None
    (the caller exits with 2)."""
    import torch  # here, so numpy-only benchmarks start fast

    from ptycho_torch.engine.device import resolve_device
    try:
        return torch.device(resolve_device(name))
    except ValueError as err:
        print(f"error: {str(err).splitlines()[0]} [flag --device]", file=sys.stderr)
        return None


def cpu_only(device: str) -> bool:
    """Whether ``--device`` is the CPU; otherwise prints the one-line refusal (the caller
    exits with 2)."""
    if device == "cpu":
        return True
    print("error: --device: this benchmark measures the CPU (allowed: cpu)", file=sys.stderr)
    return False


def quiet_lightning(*loggers: str) -> None:
    """Lightning's info lines and warnings off (these benchmarks run many short fits), and
    the named ``loggers`` too."""
    import logging
    import warnings

    import lightning  # noqa: F401  (configures its loggers on import; quiet them afterwards)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", *loggers):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def sync(device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    import torch
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)
