"""Imported first by a thin script here: puts the repository root on ``sys.path``, so the
script runs from a clone without installing (its own folder is on the path already)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
