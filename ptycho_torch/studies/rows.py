"""Reuse a finished row or compute it: the one rule every study follows.

A row is finished when its record file (written last: ``runs/<id>/metrics.json``, a learning
curve's ``learning_curve.json``) exists. It is reused when the key it was computed with
equals the key wanted now (everything its numbers depend on); a finished row with other
settings is refused in one line (the plans check every row before anything runs) unless
``--overwrite``, or, for a row derived from another one (refined, best-validation,
transfer, reused model: ``refuse=False``), simply recomputed. A record that cannot be read
back is recomputed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ptycho.artifacts import StudyLayout
from ptycho.config.validation import StudyError
from ptycho.study_metrics import StudyMetrics

log = logging.getLogger(__name__)


def read_metrics(path: Path) -> tuple[StudyMetrics, Any]:
    """A ``metrics.json`` and the ``compare_key`` it was computed with."""
    m = StudyMetrics.from_json(json.loads(Path(path).read_text()))
    return m, m.compare_key


@dataclass(frozen=True)
class Wanted:
    """A row a study wants: its name, its record file, the key its numbers depend on, how
    a finished record is read back (``read(path) -> (record, its key)``) and the refusal
    when the finished key differs (``refusal(finished key) -> one line``)."""

    name: str
    path: Path
    key: Any
    read: Callable[[Path], tuple[Any, Any]]
    refusal: Callable[[Any], str]


def metrics_row(layout: StudyLayout, key: dict) -> Wanted:
    """The row ``runs/<id>/metrics.json`` of ``layout``, keyed by its ``compare_key``."""
    def refusal(_old) -> str:
        return (f"output_dir={str(layout.output_dir)!r} already holds a finished "
                f"{layout.model_id} row with other settings ({layout.metrics_path}); pass "
                "--overwrite to replace it or choose another --output-dir")
    return Wanted(layout.model_id, layout.metrics_path, key, read_metrics, refusal)


def _same(a, b) -> bool:
    """Equal as JSON (tuples and lists, int and float keys alike as written)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def finished_row(wanted: Wanted, overwrite: bool, refuse: bool = True):
    """The finished record of ``wanted`` when its key matches; None when there is none,
    with ``overwrite``, or when it cannot be read; other settings: StudyError (None when
    not ``refuse``)."""
    if overwrite or not wanted.path.is_file():
        return None
    try:
        record, key = wanted.read(wanted.path)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # a broken record is simply recomputed
    if _same(key, wanted.key):
        return record
    if not refuse:
        return None
    raise StudyError(wanted.refusal(key))


def reuse_or_compute(wanted, compute: Callable, *, overwrite: bool, refuse: bool = True,
                     what: str = "row"):
    """The finished record of ``wanted`` (one :class:`Wanted`) or ``compute()``; for a list
    of rows computed together (one run gives them all), their finished records when every
    one is reusable, else ``compute()`` (a list of records, in order)."""
    if isinstance(wanted, Wanted):
        return reuse_or_compute([wanted], lambda: [compute()], overwrite=overwrite,
                                refuse=refuse, what=what)[0]
    olds = [finished_row(w, overwrite, refuse) for w in wanted]
    if all(old is not None for old in olds):
        for w in wanted:
            log.info("%s: reusing the finished %s in %s", w.name, what, w.path.parent)
        return olds
    return compute()
