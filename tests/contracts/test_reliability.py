"""Reliability of the grid-lines runner (docs/reference/reliability.md).

Every row of the bad-input table is refused through the CLI entry point
``grid_lines_torch_runner.main(argv)``: exit code 2, exactly one ``error:`` line on
stderr that names the field / key and what is allowed, no traceback, and nothing written
(the output directory is not created, or is byte-for-byte unchanged when it existed).
Two rows also run as real subprocesses. Then: overwrite, determinism, early stopping,
snapshots and atomic artifacts on tiny in-process runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import grid_lines_torch_runner as runner

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "studies" / "grid_lines_torch_runner.py"
# tiny model flags matching the tiny N=32 datasets of conftest.py
MODEL = ["--N", "32", "--test-stride", "8", "--fno-width", "8", "--fno-modes", "4",
         "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--architecture", "fno",
         "--no-progress-bar", "--num-threads", "1"]
SIM = ["--object-size", "64", "--n-lines", "40", "--train-stride", "4",
       "--n-train-objects", "1", "--n-test-objects", "1"]


def npz_variant(src: Path, dst: Path, edit) -> Path:
    """Copy the NPZ ``src`` to ``dst`` with ``edit(dict_of_arrays)`` applied."""
    with np.load(src) as z:
        d = {k: z[k] for k in z.files}
    edit(d)
    with open(dst, "wb") as fh:
        np.savez(fh, **d)
    return dst


def _meta(d, **changes):
    m = json.loads(str(d["_metadata"]))
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    d["_metadata"] = np.array(json.dumps(m))


def _per_pattern(d, sel):
    n = d["diffraction"].shape[0]
    for k in list(d):
        if d[k].ndim and d[k].shape[0] == n and k != "YY_ground_truth_all":
            d[k] = d[k][sel]


# --------------------------------------------------------------------- the table
# id -> (setup, expected error line). ``setup(ctx)`` returns the argv (without
# --output-dir) and may write broken files; the expected line is formatted with
# {train} {test} {out} {tmp}.
def _npz(train_edit=None, test_edit=None, extra=()):
    def setup(ctx):
        train, test = ctx["train_src"], ctx["test_src"]
        if train_edit is not None:
            train = npz_variant(train, ctx["tmp"] / "train.npz", train_edit)
        if test_edit is not None:
            test = npz_variant(test, ctx["tmp"] / "test.npz", test_edit)
        ctx["train"], ctx["test"] = train, test
        return [*MODEL, "--train-npz", str(train), "--test-npz", str(test), *extra]
    return setup


def _cfg(*args):
    return lambda ctx: [*MODEL, *SIM, *args]


def _write_file(name, data: bytes, which="train"):
    def setup(ctx):
        p = ctx["tmp"] / name
        p.write_bytes(data)
        ctx[which] = p
        other = "test" if which == "train" else "train"
        ctx[other] = ctx[f"{other}_src"]
        return [*MODEL, "--train-npz", str(ctx["train"]), "--test-npz", str(ctx["test"])]
    return setup


def _truncated(ctx):
    data = Path(ctx["train_src"]).read_bytes()
    return _write_file("train.npz", data[: len(data) // 2])(ctx)


def _missing(ctx):
    ctx["train"], ctx["test"] = ctx["tmp"] / "nope.npz", ctx["test_src"]
    return [*MODEL, "--train-npz", str(ctx["train"]), "--test-npz", str(ctx["test"])]


def _set(key, fn):
    def edit(d):
        d[key] = fn(d[key])
    return edit


def _nan(a):
    a = a.copy()
    a[3, 5, 7, 0] = np.nan
    return a


def _inf(a):
    a = a.copy()
    a[0, 0, 0, 0] = np.inf
    return a


_HELP = "(run with --help to list the flags)"
_READABLE = ("(expected an NPZ (PtychoPINN or this project's) or an HDF5 file (Ptychodus "
             "diffraction.h5 or CXI)) [flag --train-npz]")
_NPZ_KINDS = ("(expected a PtychoPINN NPZ (xcoords, ycoords, diffraction or diff3d) or this "
              "project's dataset NPZ (diffraction, probeGuess)) [flag --train-npz]")

# An expected line is the exact text after "error: ", or a tuple (prefix, fact, ...): the
# line starts with the project's prefix and contains each fact (where a third party --
# argparse, zipfile, numpy, json -- words the middle).
ROWS = {
    # -- config values (the CLI flags; every numeric field is also covered below)
    "epochs_zero": (_cfg("--epochs", "0"),
                    "TrainingConfig.epochs=0 is out of range (allowed: 1..100000) [flag --epochs]"),
    "learning_rate_zero": (_cfg("--learning-rate", "0"),
                           "TrainingConfig.learning_rate=0.0 is out of range (allowed: > 0 and <= 1) "
                           "[flag --learning-rate]"),
    "nphotons_nan": (_cfg("--nphotons", "nan"),
                     "SimulationConfig.nphotons=nan must be a finite number [flag --nphotons]"),
    "nphotons_too_many": (_cfg("--nphotons", "1e16"),
                          "SimulationConfig.nphotons=1e+16 is out of range (allowed: > 0 and "
                          "<= 1e+15) [flag --nphotons]"),
    "fno_modes_above_half_N": (_cfg("--fno-modes", "40"),
                               "ModelConfig.fno_modes=40 exceeds N//2=16 for N=32 (allowed: 1..16) "
                               "[flag --fno-modes]"),
    # enumerations are refused by the parser: the project's prefix, the value and the choices
    "N_unsupported": (_cfg("--N", "48"),
                      ("argument --N:", "48", "16", "32", "64", "128", "256", _HELP)),
    "gridsize_unsupported": (_cfg("--gridsize", "3"), ("argument --gridsize:", "3", "1", "2", _HELP)),
    "val_fraction_zero": (_cfg("--val-fraction", "0"),
                          "TrainingConfig.val_fraction=0.0 is out of range (allowed: > 0 and <= 0.5) "
                          "[flag --val-fraction]"),
    "test_stride_above_N": (_cfg("--test-stride", "40"),
                            "SimulationConfig.test_stride=40 exceeds N=32 (allowed: 1..32; stitched "
                            "tiles are test_stride wide) [flag --test-stride]"),
    "too_few_training_patterns": (_cfg("--object-size", "32"),
                                  "SimulationConfig.train_stride=4 gives 1 training pattern(s) for "
                                  "object_size=32, N=32, n_train_objects=1 (allowed: settings giving "
                                  ">= 2 patterns, one for validation) [flag --train-stride]"),
    "int_flag_not_an_integer": (_cfg("--epochs", "2.5"), ("argument --epochs:", "2.5", _HELP)),
    "unknown_architecture": (_cfg("--architecture", "unet"),
                             ("argument --architecture:", "unet", "cnn", "fno", "hybrid", _HELP)),
    "unknown_flag": (_cfg("--fno-widht", "8"),
                     "unknown flag '--fno-widht'; did you mean --fno-width? (allowed: the flags "
                     "listed by --help)"),
    "abbreviated_flag": (_cfg("--learning", "0.1"),
                         "unknown flag '--learning'; did you mean --learning-rate? (allowed: the "
                         "flags listed by --help)"),
    "stray_argument": (_cfg("fno"),
                       "unexpected argument 'fno' (allowed: --flag VALUE pairs only; see --help)"),
    "num_nodes_without_ddp": (_cfg("--num-nodes", "2"),
                              "TrainingConfig.num_nodes=2 needs strategy='ddp' (allowed with "
                              "strategy='auto': 1) [flag --num-nodes]"),
    "test_npz_without_train_npz": (lambda ctx: [*MODEL, "--test-npz", str(ctx["test_src"])],
                                   "RunConfig.test_npz needs --train-npz too (allowed: both, "
                                   "--train-npz alone, or neither to simulate) [flag --test-npz]"),
    "stitch_tiles_at_gridsize_2": (_cfg("--gridsize", "2", "--stitch", "tiles"),
                                   "InferenceConfig.stitch='tiles' needs gridsize 1 (allowed at "
                                   "gridsize 2: 'positions') [flag --stitch]"),
    # -- devices
    "cuda_unavailable": (_cfg("--device", "cuda"),
                         "device='cuda' but no CUDA device is available (allowed here: auto, cpu) "
                         "[flag --device]"),
    # -- NPZ files
    "npz_missing": (_missing,
                    "dataset '{train}': cannot read: file does not exist " + _READABLE),
    "npz_not_a_zip": (_write_file("train.npz", b"this is not an archive"),
                      "dataset '{train}': cannot read: unknown content (starts with b'this is ') "
                      + _READABLE),
    "npz_empty_file": (_write_file("train.npz", b""),
                       "dataset '{train}': cannot read: file is empty " + _READABLE),
    # the reason comes from zipfile: the project's prefix, the file and the flag are checked
    "npz_truncated": (_truncated, ("dataset '{train}': cannot read", "[flag --train-npz]")),
    # without 'diffraction' / 'probeGuess' the file is neither this project's NPZ nor upstream's
    "npz_missing_diffraction": (_npz(train_edit=lambda d: d.pop("diffraction")),
                                "dataset '{train}': key 'xcoords' is missing (NPZ keys ['Y_I', "
                                "'Y_phi', '_metadata', 'coords_nominal', 'coords_offsets', "
                                "'norm_Y_I', 'object_index', 'pattern_index', 'probeGuess']) "
                                + _NPZ_KINDS),
    "npz_missing_probe": (_npz(train_edit=lambda d: d.pop("probeGuess")),
                          "dataset '{train}': key 'xcoords' is missing (NPZ keys ['Y_I', 'Y_phi', "
                          "'_metadata', 'coords_nominal', 'coords_offsets', 'diffraction', "
                          "'norm_Y_I', 'object_index', 'pattern_index']) " + _NPZ_KINDS),
    "npz_wrong_shape": (_npz(train_edit=_set("diffraction", lambda a: a[:, :, :30])),
                        "dataset '{train}': key 'diffraction' has non-square patterns of shape "
                        "(81, 32, 30, 1) (expected (n, N, N, C) with N >= 1) [flag --train-npz]"),
    "npz_wrong_ndim": (_npz(train_edit=_set("diffraction", lambda a: a[..., 0, 0])),
                       "dataset '{train}': key 'diffraction' has shape (81, 32) (ndim 2) (expected "
                       "(n, N, N, C) or (n, N, N)) [flag --train-npz]"),
    "npz_complex_diffraction": (_npz(train_edit=_set("diffraction", lambda a: a.astype(np.complex64))),
                                "dataset '{train}': key 'diffraction' has complex dtype complex64 "
                                "(expected a real float or integer dtype) [flag --train-npz]"),
    # the dtype is spelled by numpy: the project's prefix and what is expected are checked
    "npz_string_diffraction": (_npz(train_edit=_set("diffraction", lambda a: a.astype(str))),
                               ("dataset '{train}': key 'diffraction' has dtype ",
                                "(expected a real float or integer dtype) [flag --train-npz]")),
    "npz_nan_diffraction": (_npz(train_edit=_set("diffraction", _nan)),
                            "dataset '{train}': key 'diffraction' contains non-finite values (1 NaN, "
                            "0 Inf) (expected finite values only) [flag --train-npz]"),
    "npz_inf_diffraction": (_npz(test_edit=_set("diffraction", _inf)),
                            "dataset '{test}': key 'diffraction' contains non-finite values (0 NaN, "
                            "1 Inf) (expected finite values only) [flag --test-npz]"),
    "npz_negative_diffraction": (_npz(train_edit=_set("diffraction", lambda a: a - 1.0)),
                                 None),  # message checked by prefix: min value varies
    "npz_all_zero_diffraction": (_npz(train_edit=_set("diffraction", np.zeros_like)),
                                 "dataset '{train}': key 'diffraction' is all zeros (expected some "
                                 "positive amplitudes) [flag --train-npz]"),
    "npz_probe_not_N": (_npz(train_edit=_set("probeGuess", lambda p: p[8:24, 8:24])),
                        "dataset '{train}': key 'probeGuess' has shape (16, 16) (expected (32, 32), "
                        "or (modes, 32, 32), to match 'diffraction' N = 32) [flag --train-npz]"),
    "npz_zero_probe": (_npz(train_edit=_set("probeGuess", np.zeros_like)),
                       "dataset '{train}': key 'probeGuess' is all zeros (expected a probe with "
                       "nonzero intensity) [flag --train-npz]"),
    "npz_N_differs_from_flag": (_npz(extra=("--N", "64", "--fno-modes", "4")),
                                "dataset '{train}': key 'diffraction' has pattern size N = 32 "
                                "(expected N = 64, the study's --N; pass --N 32 to use these "
                                "patterns) [flag --train-npz]"),
    "npz_gridsize_differs_from_channels": (_npz(extra=("--gridsize", "2")),
                                           "dataset '{train}': key 'diffraction' has C = 1 channels "
                                           "(gridsize 1) (expected gridsize 2, C = 4) [flag --train-npz]"),
    "npz_channels_not_square": (_npz(train_edit=_set("diffraction", lambda a: np.repeat(a, 3, -1))),
                                "dataset '{train}': key 'diffraction' has C = 3 channels, not a "
                                "perfect square (expected C = gridsize**2, e.g. 1 or 4) "
                                "[flag --train-npz]"),
    "npz_coords_wrong_shape": (_npz(train_edit=_set("coords_nominal", lambda a: a[:, :, :1])),
                               "dataset '{train}': key 'coords_nominal' has shape (81, 1, 1, 1) "
                               "(expected (n, 1, 2, C) = (81, 1, 2, 1) or (n, 2) = (81, 2)) "
                               "[flag --train-npz]"),
    "npz_labels_wrong_count": (_npz(train_edit=_set("Y_I", lambda a: a[:80])),
                               "dataset '{train}': key 'Y_I' has 80 patterns (expected 81, as in "
                               "'diffraction') [flag --train-npz]"),
    # the JSON parser words the reason: the project's prefix and what is expected are checked
    "npz_metadata_not_json": (_npz(train_edit=lambda d: d.__setitem__("_metadata", np.array("{oops"))),
                              ("dataset '{train}': key '_metadata' is not valid JSON (",
                               "(expected a JSON object) [flag --train-npz]")),
    "npz_one_training_pattern": (_npz(train_edit=lambda d: _per_pattern(d, slice(0, 1))),
                                 "dataset '{train}': key 'diffraction' has 1 pattern(s) (expected at "
                                 "least 2: one is held out for validation) [flag --train-npz]"),
    "npz_bad_photon_scale": (_npz(train_edit=lambda d: _meta(d, scale=-1.0)),
                             "dataset '{train}': key '_metadata' has scale=-1.0 (expected a positive "
                             "number (the photon scale s), or no 'scale' entry) [flag --train-npz]"),
    # a scan that is not a regular grid stitches by positions (the default); tiles need a grid
    "npz_test_scan_not_a_grid_with_tiles": (
        _npz(test_edit=lambda d: (_meta(d, n_side=None), _per_pattern(d, slice(0, 24))),
             extra=("--stitch", "tiles")),
        "dataset '{test}': stitch='tiles' needs a regular grid scan ('n_side' and 'stride' in "
        "_metadata) (allowed here: --stitch positions) [flag --stitch]"),
    "npz_test_n_side_inconsistent": (_npz(test_edit=lambda d: _meta(d, n_side=6)),
                                     "dataset '{test}': key '_metadata' has n_side=6, which gives 36 "
                                     "patterns, but object 0 has 25 (expected n_side consistent "
                                     "with the scan) [flag --test-npz]"),
    "npz_ground_truth_too_small": (_npz(test_edit=_set("YY_ground_truth", lambda a: a[:40, :40])),
                                   "dataset '{test}': key 'YY_ground_truth' has shape (40, 40), too "
                                   "small for the stitched region (12, 12, 40, 40) (row0, col0, "
                                   "height, width) (expected an object covering the scan of test "
                                   "object 0) [flag --test-npz]"),
}

OUTPUT_ROWS = ("output_is_a_file", "output_under_a_file", "cache_dir_is_a_file",
               "finished_study", "interrupted_run", "resume_changed_setting",
               "resume_unreadable_checkpoint", "resume_untrusted_checkpoint")


@pytest.fixture
def ctx(tmp_path, tiny_paths):
    return {"tmp": tmp_path, "train_src": tiny_paths.train, "test_src": tiny_paths.test,
            "out": tmp_path / "out"}


def run_main(argv, capsys):
    capsys.readouterr()
    code = runner.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def assert_refused(code, err, expected=None):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    if expected is not None:
        assert lines[0] == "error: " + expected
    return lines[0]


@pytest.mark.parametrize("row", sorted(ROWS))
def test_bad_input_is_refused_and_nothing_is_written(row, ctx, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    setup, expected = ROWS[row]
    argv = setup(ctx)
    inputs = {p: Path(p).read_bytes() for p in (ctx.get("train"), ctx.get("test"))
              if p is not None and Path(p).is_file()}
    code, err = run_main([*argv, "--output-dir", ctx["out"]], capsys)
    fmt = {k: ctx.get(k) for k in ("train", "test", "out", "tmp")}
    exact = expected.format(**fmt) if isinstance(expected, str) else None
    line = assert_refused(code, err, exact)
    if isinstance(expected, tuple):
        prefix, *facts = (e.format(**fmt) for e in expected)
        assert line.startswith("error: " + prefix), line
        for fact in facts:
            assert fact in line, (fact, line)
    if expected is None:  # negative diffraction: the minimum depends on the data
        assert line.startswith(f"error: dataset '{ctx['train']}': key 'diffraction' has ")
        assert "negative values (min -" in line and line.endswith(
            "(expected amplitudes >= 0) [flag --train-npz]")
    assert not ctx["out"].exists(), "the output directory was created"
    for p, data in inputs.items():
        assert Path(p).read_bytes() == data


def test_every_numeric_field_out_of_range_is_refused(capsys):
    """One bad value per numeric StudyConfig field (enumerations such as N and gridsize are
    argparse choices, covered by the table): exit 2 and the field's flag named."""
    from ptycho.config.study_config import SECTIONS, leaf_fields
    bad = {"object_size": 8, "n_lines": 0, "n_train_objects": 0,
           "n_test_objects": 65, "train_stride": 0, "test_stride": 0, "nphotons": -1,
           "train_seed": -1, "test_seed": 2**32, "seed": -5, "epochs": 0, "max_steps": -1,
           "max_train_minutes": -1, "batch_size": 0, "learning_rate": 2.0, "weight_decay": -0.1,
           "plateau_factor": 1.0, "plateau_patience": -1, "min_lr": 1.5, "val_fraction": 0.0,
           "max_train_patterns": -1, "early_stopping_patience": -1, "snapshot_every": -1,
           "infer_batch_size": 0, "stitch_crop": -1, "fno_modes": 0, "fno_width": 2,
           "fno_blocks": 0, "fno_cnn_blocks": 17, "n_filters_scale": 0, "devices": 0,
           "num_nodes": 0, "num_threads": -1, "refine_probe_epochs": -1,
           "probe_pupil_radius": 0.6, "probe_defocus": float("nan"), "overlap_weight": 1.5,
           "min_steps": -1, "probe_learning_rate": 0.0, "probe_warmup_epochs": -1,
           "probe_smoothing_sigma": -1.0, "ema_decay": 0.0, "gradient_clip_val": -1.0,
           "k_nearest": 65, "groups_per_position": 0, "candidates": 0, "candidate_epochs": 0}
    numeric = {f.name for section, f in leaf_fields()
               if typing.get_type_hints(SECTIONS[section])[f.name] in (int, float)
               and "choices" not in f.metadata}
    assert set(bad) == numeric, "add a row for every numeric field"
    for name, value in bad.items():
        flag = "--" + name.replace("_", "-")
        code, err = run_main([flag, str(value), "--output-dir", "/nonexistent/never"], capsys)
        line = assert_refused(code, err)
        assert f".{name}={value!r}" in line or f".{name}={float(value)!r}" in line, line
        assert line.endswith(f"[flag {flag}]"), line
        assert "allowed" in line or "must be" in line, line


def _fake_finished(out: Path, model_id="pinn_fno"):
    run = out / "runs" / model_id
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"model_id": "%s"}\n' % model_id)
    (out / "visuals").mkdir()
    (out / "visuals" / f"{model_id}_reconstruction.png").write_bytes(b"png")


def _fake_interrupted(out: Path, ckpt: bytes | None, study_cfg=None):
    """An interrupted run as resume.start_work leaves it: a checkpoint and the saved study
    config (``.work/<model_id>/study_config.json``)."""
    work = out / ".work" / "pinn_fno"
    (work / "checkpoints").mkdir(parents=True)
    if ckpt is not None:
        (work / "checkpoints" / "last.ckpt").write_bytes(ckpt)
    if study_cfg is not None:
        (work / "study_config.json").write_text(json.dumps({"study": study_cfg.to_dict()}))


def _tiny_checkpoint(tmp: Path, extra: dict | None = None) -> bytes:
    import torch
    p = tmp / "c.ckpt"
    torch.save({"epoch": 2, "state_dict": {}, **(extra or {})}, p)
    return p.read_bytes()


@pytest.mark.parametrize("row", OUTPUT_ROWS)
def test_output_directory_rows(tree_state, row, ctx, capsys, code_on_load):
    out, tmp = ctx["out"], ctx["tmp"]
    argv = [*MODEL, *SIM, "--output-dir", out]
    if row == "output_is_a_file":
        out.write_text("x")
        expected = f"output_dir='{out}' is a file (allowed: a directory path) [flag --output-dir]"
    elif row == "output_under_a_file":
        (tmp / "f").write_text("x")
        out = tmp / "f" / "study"
        argv[-1] = out
        expected = (f"output_dir='{out}' lies under '{tmp / 'f'}', which is a file (allowed: a "
                    "directory path) [flag --output-dir]")
    elif row == "cache_dir_is_a_file":
        (tmp / "cache").write_text("x")
        argv += ["--cache-dir", tmp / "cache"]
        expected = f"cache_dir='{tmp / 'cache'}' is a file (allowed: a directory path) [flag --cache-dir]"
    elif row == "finished_study":
        _fake_finished(out)
        expected = (f"output_dir='{out}' already holds a finished study of pinn_fno "
                    f"({out / 'runs/pinn_fno/metrics.json'}); pass --overwrite to replace it or "
                    "choose another --output-dir")
    elif row == "interrupted_run":
        _fake_interrupted(out, _tiny_checkpoint(tmp))
        expected = (f"output_dir='{out}' holds an interrupted run of pinn_fno (checkpoint after "
                    f"epoch 3: {out / '.work/pinn_fno/checkpoints/last.ckpt'}); pass --resume to "
                    "continue it or --overwrite to start over")
    elif row == "resume_changed_setting":
        from ptycho.config.cli import config_from_argv
        old = config_from_argv([str(a) for a in argv]).replace(fno_width=16)
        _fake_interrupted(out, _tiny_checkpoint(tmp), old)
        argv.append("--resume")
        expected = ("cannot resume: fno_width=8 but the interrupted run used fno_width=16 (allowed: "
                    "the interrupted run's value; or drop --resume and pass --overwrite to start "
                    "over) [flag --fno-width]")
    elif row == "resume_untrusted_checkpoint":  # its pickle would make tmp/MARKER
        _fake_interrupted(out, _tiny_checkpoint(tmp, {"callbacks": {"x": code_on_load(tmp / "MARKER")}}))
        argv.append("--resume")
        expected = (f"cannot resume: checkpoint '{out / '.work/pinn_fno/checkpoints/last.ckpt'}' "
                    "holds Python objects beyond weights and plain values (os.makedirs), which can "
                    "run code when loaded (allowed: weights and plain values; pass "
                    "--trust-checkpoint to load it anyway, only if you trust the file's source) "
                    "[flag --resume]")
    else:  # resume_unreadable_checkpoint
        _fake_interrupted(out, _tiny_checkpoint(tmp)[:100])
        argv.append("--resume")
        expected = None
    before = tree_state(tmp)
    code, err = run_main(argv, capsys)
    assert not (tmp / "MARKER").exists()
    line = assert_refused(code, err, expected)
    if expected is None:
        assert line.startswith(f"error: cannot resume: checkpoint "
                               f"'{out / '.work/pinn_fno/checkpoints/last.ckpt'}' is unreadable (")
        assert line.endswith("(expected a complete Lightning checkpoint); drop --resume and pass "
                             "--overwrite to start over")
    assert tree_state(tmp) == before, "something under the output directory changed"


def test_unknown_config_key_is_refused_with_the_closest_names():
    from ptycho.config.study_config import StudyConfig
    with pytest.raises(ValueError, match=r"^unknown config key 'fno_widht'; did you mean "
                                         r"'fno_width', 'fno_modes', 'overlap_weight'\? "
                                         r"\(valid keys: N, "):
        StudyConfig().replace(fno_widht=8)


def _subprocess(args, timeout=120):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def test_cli_process_refuses_with_exit_code_2_and_one_line(ctx):
    """The real script, as a user runs it: one stderr line, exit status 2, nothing written."""
    bad = npz_variant(ctx["train_src"], ctx["tmp"] / "train.npz", _set("diffraction", _nan))
    r = _subprocess([*MODEL, "--train-npz", bad, "--test-npz", ctx["test_src"],
                     "--output-dir", ctx["out"]])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: dataset '{bad}': key 'diffraction' contains non-finite values (1 NaN, 0 Inf) "
        "(expected finite values only) [flag --train-npz]"]
    assert r.stdout == "" and not ctx["out"].exists()


# ------------------------------------------------------------------ tiny real runs
TIMING = ("train_time_s", "train_patterns_per_s", "inference_time_s", "inference_patterns_per_s",
          "stitch_time_s", "data_time_s", "total_time_s")


def _tiny_run(ctx, out, *extra, capsys):
    argv = [*MODEL, "--train-npz", ctx["train_src"], "--test-npz", ctx["test_src"],
            "--epochs", "2", "--output-dir", out, *extra]
    capsys.readouterr()
    code = runner.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured


def _comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING + ("figures", "snapshots")}


def _leftover_tmp(out: Path):
    return [p for p in out.rglob("*") if ".tmp" in p.name]


def test_same_seed_reproduces_metrics_snapshots_overwrite_and_interrupted_artifacts(tree_state,
        ctx, capsys, monkeypatch):
    """Runs A and B (same seed; A writes per-epoch snapshots) give identical metrics and
    history; C overwrites A with another seed and is interrupted while writing artifacts
    (no metrics.json appears); C is then finished with --resume without retraining."""
    out_a, out_b = ctx["tmp"] / "a", ctx["tmp"] / "b"
    code, cap = _tiny_run(ctx, out_a, "--snapshot-every", "1", capsys=capsys)
    assert code == 0, cap.err[-2000:]
    code, cap = _tiny_run(ctx, out_b, capsys=capsys)
    assert code == 0, cap.err[-2000:]
    run_a, run_b = out_a / "runs" / "pinn_fno", out_b / "runs" / "pinn_fno"
    ma = json.loads((run_a / "metrics.json").read_text())
    mb = json.loads((run_b / "metrics.json").read_text())
    assert _comparable(ma) == _comparable(mb)
    assert ma["stop_reason"] == "max_epochs" and ma["epochs_completed"] == 2
    ha = json.loads((run_a / "history.json").read_text())
    hb = json.loads((run_b / "history.json").read_text())
    assert ha.pop("time_s") != hb.pop("time_s") and ha == hb and ha["epoch"] == [0, 1]
    np.testing.assert_array_equal(np.load(out_a / "recons/pinn_fno/recon.npz")["reconstruction"],
                                  np.load(out_b / "recons/pinn_fno/recon.npz")["reconstruction"])

    # snapshots: one small PNG per epoch, written atomically
    import matplotlib.image as mpimg
    snaps = sorted((out_a / "visuals" / "snapshots").glob("*.png"))
    assert [p.name for p in snaps] == ["pinn_fno_epoch001.png", "pinn_fno_epoch002.png"]
    assert ma["snapshots"] == [str(p) for p in snaps]
    img = mpimg.imread(snaps[-1])
    assert img.ndim == 3 and 100 < img.shape[0] < 1000 and 100 < img.shape[1] < 1000
    assert _leftover_tmp(out_a) == [] and _leftover_tmp(out_b) == []

    # a second run into the finished study is refused and changes nothing
    before = tree_state(out_a)
    code, cap = _tiny_run(ctx, out_a, capsys=capsys)
    assert_refused(code, cap.err)
    assert tree_state(out_a) == before

    # --overwrite with another seed, interrupted while the artifacts are written
    import ptycho_torch.pipeline.study as study

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "save_reconstruction", interrupted)
    code, cap = _tiny_run(ctx, out_a, "--overwrite", "--seed", "7", capsys=capsys)
    assert code == 130 and "resume with --resume" in cap.err
    assert not (run_a / "metrics.json").exists(), "an interrupted run left a metrics.json"
    assert not (out_a / "visuals" / "snapshots" / "pinn_fno_epoch001.png").exists()
    assert _leftover_tmp(out_a) == []
    monkeypatch.undo()

    # rerunning without --resume would discard the trained checkpoint: refused
    code, cap = _tiny_run(ctx, out_a, "--seed", "7", capsys=capsys)
    assert "holds an interrupted run of pinn_fno (checkpoint after epoch 2" in assert_refused(code, cap.err)
    # --resume with a changed seed is refused; with the same seed it finishes the study
    code, cap = _tiny_run(ctx, out_a, "--seed", "8", "--resume", capsys=capsys)
    assert "cannot resume: seed=8 but the interrupted run used seed=7" in assert_refused(code, cap.err)
    code, cap = _tiny_run(ctx, out_a, "--seed", "7", "--resume", capsys=capsys)
    assert code == 0, cap.err[-2000:]
    mc = json.loads((run_a / "metrics.json").read_text())
    assert mc["resumed_from_epoch"] == 1 and mc["epochs_completed"] == 2
    assert mc["final_train_loss"] != ma["final_train_loss"]  # the seed matters
    cfg = json.loads((run_a / "config.json").read_text())
    assert cfg["study"]["training"]["seed"] == 7


def test_early_stopping_stops_a_long_run(ctx, capsys):
    """Patience 1 with a learning rate too small to move any weight: the validation loss
    cannot improve, so training stops after 2 of 40 epochs and the study still finishes."""
    out = ctx["tmp"] / "early"
    code, cap = _tiny_run(ctx, out, "--epochs", "40", "--early-stopping-patience", "1",
                          "--learning-rate", "1e-30", "--scheduler", "none", capsys=capsys)
    assert code == 0, cap.err[-2000:]
    m = json.loads((out / "runs/pinn_fno/metrics.json").read_text())
    assert m["stop_reason"] == "early_stopping"
    assert 2 <= m["epochs_completed"] <= 4
    h = json.loads((out / "runs/pinn_fno/history.json").read_text())
    assert h["epoch"] == list(range(m["epochs_completed"]))


def test_atomic_writers_leave_old_file_or_new_file(tmp_path, monkeypatch):
    from ptycho import artifacts
    target = tmp_path / "runs" / "m" / "metrics.json"
    artifacts.write_json_atomic(target, {"a": 1})

    def broken_savez(path, **arrays):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(artifacts.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        artifacts.save_npz_atomic(tmp_path / "recon.npz", x=np.zeros(3))
    assert not (tmp_path / "recon.npz").exists()
    with pytest.raises(TypeError):
        artifacts.write_json_atomic(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name] == []
