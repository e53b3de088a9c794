"""A study's inputs, simulated or read, in one place.

:func:`study_paths` decides where a study's train and test scans are: the user's files
(``--train-npz`` / ``--test-npz``; nothing is written) or the grid-lines simulation, written
once into the cache (``<output_dir>/datasets`` by default, keyed by every setting that
shapes the data) and reused after. :func:`load_study_data` reads both scans (the study and
the learning curve); :func:`load_test_data` only the scored one (the comparison and the dose
study, whose training runs read their own). Every refusal is a :class:`StudyError` naming
the file, the key and the flag.

A separate ``--test-npz`` file is read in the training scan's units
(:func:`ptycho.formats.model_units.read_in_model_units`, with the training scan's probe as
the model's: the test scan's probe is brought to the training probe's total intensity), so
the same scan in another layout, counts or amplitudes, reaches the network as the training
scan's amplitudes would; the scale is recorded as ``data.test_scan_scale`` (and logged by
the study once every check passed).

``--probe-npz FILE`` gives the probe: on simulated data the probe that simulates them; with
the user's files it replaces each scan's own probe (train and test), made N x N by the
simulation's rule (:func:`read_probe_file`, ``--probe-scale-mode``) and brought to each
scan's units by :func:`ptycho.probes.scale_to_patterns` (:func:`with_file_probe`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.datagen.grid_lines import spec_for
from ptycho.datagen.grid_lines_files import simulate_grid_lines
from ptycho.dataset import PtychoDataset
from ptycho.formats.model_units import read_in_model_units, total_intensity
from ptycho.formats.readers import read_dataset, read_probe
from ptycho.probe_scaling import scale_probe
from ptycho.probes import scale_to_patterns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's scans are; ``info`` describes them (``config.json``'s ``data``);
    ``cached`` and ``seconds``: whether the simulation was reused, and its time."""

    train: Path
    test: Path
    info: dict
    cached: bool = False
    seconds: float = 0.0


def read_probe_file(path: str, N: int, mode: str = "pad", sigma: float = 0.5) -> np.ndarray:
    """The probe of any supported file, made N x N by ``mode`` (``ptycho.probe_scaling``)."""
    try:
        return scale_probe(read_probe(path), N, mode, sigma)
    except ValueError as err:
        raise StudyError(f"{str(err).splitlines()[0]} [flag --probe-npz]") from None


def with_file_probe(cfg: StudyConfig, ds: PtychoDataset, probe: np.ndarray
                    ) -> tuple[PtychoDataset, float]:
    """``(ds with the --probe-npz probe, k)``: ``probe`` (N x N, from :func:`read_probe_file`)
    in the units of ``ds``. A scan file's probe is in the file's normalised units (counts are
    read as ``A = sqrt(I) / s`` and the file's probe divided by ``s``), a probe from another
    file in that file's: the probe is scaled by the one real ``k`` for which it predicts the
    scan's mean total intensity through a unit-amplitude object
    (:func:`ptycho.probes.scale_to_patterns`, over the distinct measured patterns). Its modes
    replace the scan's whatever their number (modes add in intensity). The metadata's
    ``normalisation`` (``metrics.json``'s) and ``probe_source`` say where the probe came from."""
    ids = ds.pattern_ids().ravel()
    _, first = np.unique(ids, return_index=True)
    try:
        scaled, k = scale_to_patterns(probe, ds.diffraction.reshape(-1, ds.N, ds.N)[first])
    except ValueError as err:
        raise StudyError(f"probe file '{cfg.run.probe_npz}': {err} [flag --probe-npz]") from None
    note = (f"probe from --probe-npz {cfg.run.probe_npz} ({cfg.run.probe_scale_mode} to "
            f"{ds.N} x {ds.N}), not the scan's, scaled x {k:.4g} to the scan's mean total "
            "intensity through a unit object")
    before = ds.metadata.get("normalisation")
    meta = {**ds.metadata, "probe_source": note,
            "normalisation": f"{before}; {note}" if before else note}
    return replace(ds, probe=scaled, metadata=meta), k


def _replace_probes(cfg: StudyConfig, scans: dict, info: dict) -> dict:
    """``scans`` ({"train": ds, "test": ds}) with the --probe-npz probe when the user's files
    are read with one (logged in one line, recorded in ``info``); else as they are."""
    if cfg.simulated or not cfg.run.probe_npz:
        return scans
    probe = read_probe_file(cfg.run.probe_npz, cfg.model.N, cfg.run.probe_scale_mode,
                            cfg.run.probe_smoothing_sigma)
    out, factors = {}, {}
    for name, ds in scans.items():
        out[name], factors[name] = with_file_probe(cfg, ds, probe)
    modes = probe.reshape(-1, cfg.model.N, cfg.model.N).shape[0]
    log.info("probe: --probe-npz %s replaces the scan file's probe (%s to %d x %d, %d mode%s), "
             "scaled to the scan's mean total intensity through a unit object: %s",
             cfg.run.probe_npz, cfg.run.probe_scale_mode, cfg.model.N, cfg.model.N, modes,
             "" if modes == 1 else "s", ", ".join(f"x {k:.4g} ({n})" for n, k in factors.items()))
    info.update(probe_npz=cfg.run.probe_npz, probe_scale_mode=cfg.run.probe_scale_mode,
                probe_smoothing_sigma=cfg.run.probe_smoothing_sigma,
                probe_source="--probe-npz (replaces the scan file's probe)",
                probe_scale_factor=factors)
    return out


def study_paths(cfg: StudyConfig) -> StudyPaths:
    """The user's files, or the simulated grid-lines files (simulated into the cache when
    they are not there yet)."""
    if cfg.run.train_npz is not None:  # the user's files (cfg.simulated is False)
        train = Path(cfg.run.train_npz)
        test = Path(cfg.run.test_npz) if cfg.run.test_npz else train
        return StudyPaths(train, test, {"train_npz": str(train), "test_npz": str(test),
                                        "simulated": False})
    probe = None if not cfg.run.probe_npz else read_probe_file(
        cfg.run.probe_npz, cfg.model.N, cfg.run.probe_scale_mode, cfg.run.probe_smoothing_sigma)
    t0 = time.perf_counter()
    paths = simulate_grid_lines(spec_for(cfg), Path(cfg.run.datasets_dir()), probe=probe)
    info = {"train_npz": str(paths.train), "test_npz": str(paths.test), "simulated": True,
            "cache_key": spec_for(cfg).cache_key()}
    if probe is not None:
        info.update(probe_npz=cfg.run.probe_npz, probe_scale_mode=cfg.run.probe_scale_mode,
                    probe_smoothing_sigma=cfg.run.probe_smoothing_sigma)
    return StudyPaths(paths.train, paths.test, info, paths.cached, time.perf_counter() - t0)


def log_dataset_cache(paths: StudyPaths) -> None:
    """One line: the simulated dataset's cache folder (absolute), whether it was written now
    or reused, and its size on disk (the train and test files, in MB = 1e6 bytes)."""
    size = sum(p.stat().st_size for p in {paths.train, paths.test})
    log.info("dataset cache %s in %.1f s: %s (%.1f MB on disk; --cache-dir moves it)",
             "reused" if paths.cached else "written", paths.seconds,
             paths.train.parent.resolve(), size / 1e6)


def _read(cfg: StudyConfig, path: Path, flag: str, *, train: bool = False) -> PtychoDataset:
    """``path`` as a dataset; ``train``: grouped with the training draw (``k_nearest``,
    ``groups_per_position``), else one group per position."""
    draw = (dict(k_nearest=cfg.training.k_nearest,
                 groups_per_position=cfg.training.groups_per_position) if train else {})
    try:
        return read_dataset(path, N=cfg.model.N, gridsize=cfg.model.gridsize,
                            unit=cfg.run.data_unit,
                            cxi_translation_sign=cfg.run.cxi_translation_sign, **draw)
    except ValueError as err:
        hint = f" [flag {flag}]" if flag and not cfg.simulated else ""
        raise StudyError(f"{str(err).splitlines()[0]}{hint}") from None


def _read_test(cfg: StudyConfig, paths: StudyPaths, train: PtychoDataset | None, info: dict
               ) -> PtychoDataset:
    """The scored scan; a separate user file in the training scan's units (module docstring;
    ``train`` None: read here for its probe only)."""
    test = _read(cfg, paths.test, "--test-npz")
    if cfg.simulated or paths.test == paths.train:
        return test
    probe = (train if train is not None else _read(cfg, paths.train, "--train-npz")).probe
    if not total_intensity(probe) > 0:
        return test        # the training scan's own check refuses its probe, naming its file
    try:
        test, scale = read_in_model_units(str(paths.test), probe, gridsize=cfg.model.gridsize,
                                          unit=cfg.run.data_unit,
                                          cxi_translation_sign=cfg.run.cxi_translation_sign)
    except ValueError as err:
        raise StudyError(f"{str(err).splitlines()[0]} [flag --test-npz]") from None
    info["test_scan_scale"] = scale.to_dict()   # the study logs it once its checks passed
    return test


def load_study_data(cfg: StudyConfig) -> tuple[PtychoDataset, PtychoDataset, dict]:
    """``(train, test, info)``: both scans of :func:`study_paths`, read and validated."""
    paths = study_paths(cfg)
    if cfg.simulated:
        log_dataset_cache(paths)
    info = dict(paths.info)
    train = _read(cfg, paths.train, "--train-npz", train=True)
    scans = _replace_probes(cfg, {"train": train, "test": _read_test(cfg, paths, train, info)},
                            info)
    return scans["train"], scans["test"], info


def load_test_data(cfg: StudyConfig) -> tuple[PtychoDataset, dict]:
    """``(test, info)``: only the scored scan (a separate user file is brought to the
    training scan's units, whose probe is read for that)."""
    paths = study_paths(cfg)
    if cfg.simulated:
        log_dataset_cache(paths)
    info = dict(paths.info)
    return _replace_probes(cfg, {"test": _read_test(cfg, paths, None, info)}, info)["test"], info
