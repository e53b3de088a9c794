"""Candidate starts: train several seeds briefly, go on with the one whose predictions of a
held-out object agree best with themselves.

At the quick study's budget a run's phase ends in one of two states, weak or strong, and
the seed decides which. After 3 epochs the neighbour disagreement of patterns the network
was not trained on (:mod:`ptycho.neighbour_agreement`: the RMS phase difference of
overlapping patches, each pair's constant phase removed; no ground truth) was low in runs
that ended strong, but not low in every one, and choosing among starts by it lifted no
weak seed at that budget (``docs/results/2026-12-speed.md#candidate-starts``): a tool to
choose with, not a default.

With ``TrainingConfig.candidates = K > 1`` a study

1. trains K starts for ``candidate_epochs`` epochs each (exactly: no ``min_steps``), start
   k with the seed :func:`candidate_seed` (start 0 with the study's own seed), each in its
   own folder ``.work/<model_id>/candidate_<k>/``;
2. predicts the test scan's object :data:`SELECTION_OBJECT` with each (an object no score
   uses: the study scores object 0) and takes its neighbour disagreement
   (:func:`ptycho.neighbour_agreement.study_disagreement`, the study's stitching crop);
3. goes on with the lowest (ties: the lower k) from its last checkpoint, copied to the
   study's own ``.work/<model_id>/checkpoints/last.ckpt``, to the study's budget
   (``epochs``, ``max_steps``, ``min_steps``), with its seed, split, optimizer and schedule.

Every step is deterministic, so a rerun makes the same choice. ``--resume`` of a study
stopped while the chosen start went on finds the finished starts, scores them again (the
same numbers) and continues; one stopped among the starts has no study checkpoint yet and
starts again. The training time and the patterns trained that ``metrics.json`` reports
count every start.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ptycho.artifacts import copy_atomic
from ptycho.config.config import CANDIDATE_EPOCHS, InferenceConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho.neighbour_agreement import study_disagreement
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.engine.outputs import last_checkpoint_in
from ptycho_torch.engine.training import FitResult

log = logging.getLogger(__name__)

SELECTION_OBJECT = 1  # the test scan's object the starts are compared on (0 is scored)


def candidate_seed(seed: int, k: int) -> int:
    """The seed of start ``k``: the study's ``seed`` for k = 0, else the first 32-bit word
    of numpy's ``SeedSequence([seed, k])`` (not ``seed + k``: the starts of seeds 1 and 2
    would share seeds)."""
    if k == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])


def check_candidates(cfg: StudyConfig, test: PtychoDataset) -> None:
    """Refuse (one line, :class:`StudyError`) ``candidates > 1`` on a test scan without an
    object :data:`SELECTION_OBJECT` to choose on."""
    k = cfg.training.candidates
    if k == 1:
        return
    objects = sorted({int(i) for i in np.unique(test.object_index)})
    if SELECTION_OBJECT not in objects:
        raise StudyError(f"--candidates {k}: the starts are chosen on test object "
                         f"{SELECTION_OBJECT}, which no score uses, and the test scan has "
                         f"objects {objects} (simulate two or more: --n-test-objects 2)")


def selection_score(model, test: PtychoDataset, inference: InferenceConfig) -> float | None:
    """The median neighbour disagreement (rad) of ``model``'s patches of test object
    :data:`SELECTION_OBJECT` (None when no two patches overlap enough)."""
    sub = test.select(test.object_selection(SELECTION_OBJECT))
    patches = np.asarray(predict_patches(model, sub, inference.infer_batch_size))
    return study_disagreement(patches, sub.centres, inference)["median"]


def fit_candidates(cfg: StudyConfig, test: PtychoDataset, start, callbacks: list,
                   work_dir: Path, device: torch.device) -> FitResult:
    """Steps 1 to 3 of the module docstring. ``start`` is the study's
    :func:`ptycho_torch.engine.training.fit_model` with all but ``training_config``,
    ``work_dir``, ``resume`` and ``extra_callbacks`` bound; only the chosen start's fit
    gets ``callbacks``. Returns that fit with its times and patterns summed over all starts
    and, in ``candidates``, one row per start: ``index``, ``seed``,
    ``neighbour_disagreement`` (rad), ``train_time_s``, ``steps`` and ``chosen``. An
    interrupted start's fit is returned as it is."""
    tc = cfg.training
    rows, time_s, patterns = [], 0.0, 0
    for k in range(tc.candidates):
        seed = candidate_seed(tc.seed, k)
        short = replace(tc, seed=seed, epochs=tc.candidate_epochs, max_steps=0, min_steps=0,
                        candidates=1, candidate_epochs=CANDIDATE_EPOCHS)
        fit = start(training_config=short, work_dir=work_dir / f"candidate_{k}",
                    resume=cfg.run.resume, extra_callbacks=None)
        if fit.interrupted or not fit.is_global_zero:
            return fit
        fit.model.to(device)
        score = selection_score(fit.model, test, cfg.inference)
        rows.append({"index": k, "seed": seed, "neighbour_disagreement": score,
                     "train_time_s": fit.train_time_s, "steps": fit.steps_completed})
        time_s, patterns = time_s + fit.train_time_s, patterns + fit.patterns_trained
        log.info("candidate %d (seed %d): neighbour disagreement of test object %d after %d "
                 "epoch(s): %s", k, seed, SELECTION_OBJECT, tc.candidate_epochs,
                 "none" if score is None else f"{score:.4f} rad")
    best = min(rows, key=lambda r: (math.inf if r["neighbour_disagreement"] is None
                                    else r["neighbour_disagreement"], r["index"]))
    chosen = last_checkpoint_in(work_dir)
    resumed = chosen.exists()  # an interrupted continuation, kept by --resume
    if not resumed:
        chosen.parent.mkdir(parents=True, exist_ok=True)
        copy_atomic(last_checkpoint_in(work_dir / f"candidate_{best['index']}"), chosen)
    log.info("going on with candidate %d (seed %d) to the study's budget", best["index"],
             best["seed"])
    with warnings.catch_warnings():
        # The copied checkpoint's best-epoch callback state names the start's folder; Lightning
        # says it reloads only its best path there. The weights, optimizer, schedule and
        # history go on exactly (tests/ptycho_torch/pipeline/test_candidates.py).
        warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
        fit = start(training_config=replace(tc, seed=best["seed"]), work_dir=work_dir,
                    resume=True, extra_callbacks=callbacks)
    rows = [{**r, "chosen": r is best} for r in rows]
    return replace(fit, train_time_s=time_s + fit.train_time_s,
                   patterns_trained=patterns + fit.patterns_trained,
                   resumed_from_epoch=fit.resumed_from_epoch if resumed else None,
                   candidates=rows)
