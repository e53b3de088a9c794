"""Late failures turned into refusals before any work, and output folders that a failure
leaves as they were (docs/reference/reliability.md, sections 1 and 2).

``ptycho-reconstruct``: ``--refine lsqml`` without Pty-chi is refused in one line; a
failure (or SIGTERM) while polishing leaves ``--output-dir`` absent or byte for byte as it
was. The study: a ground truth that does not cover a non-grid scan, a canvas too large for
memory, a probe file with NaN and a pattern size no study takes are refused before
training. The exit statuses of an interrupted study (130 SIGINT, 143 SIGTERM) are in
test_interrupts.py.
"""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import grid_lines_torch_runner as runner
import ptycho_torch.pipeline.reconstruct as reconstruct
from ptycho.datagen.spiral_scan import simulate_at_positions
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.probes import make_probe
from ptycho.stitching import regions
from ptycho.study_metrics import StudyMetrics, format_number
from ptycho_torch.cli import reconstruct_main
from ptycho_torch.ptychi import IterativeUnavailableError
from test_reliability import npz_variant  # the one NPZ-copy-with-an-edit helper of these tests

MODEL = ["--N", "32", "--test-stride", "8", "--fno-width", "8", "--fno-modes", "4",
         "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--architecture", "fno",
         "--no-progress-bar", "--num-threads", "1", "--batch-size", "8"]
MISSING = "Pty-chi is not installed (a stand-in message)"


def not_a_grid(d):
    """The scan's metadata without 'n_side' / 'stride': stitched by positions only."""
    m = json.loads(str(d["_metadata"]))
    m.pop("n_side")
    m.pop("stride")
    d["_metadata"] = np.array(json.dumps(m))


@pytest.fixture(scope="module")
def checkpoint(tiny_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    assert runner.main([*MODEL, "--epochs", "1", "--train-npz", str(tiny_paths.train),
                        "--test-npz", str(tiny_paths.test), "--output-dir", str(out)]) == 0
    return out / "runs" / "pinn_fno" / "model.ckpt"


def _reconstruct(checkpoint, data, out, *extra):
    return reconstruct_main(["--checkpoint", str(checkpoint), "--data", str(data),
                             "--output-dir", str(out), "--device", "cpu", *extra])


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------- ptycho-reconstruct
def test_refine_without_ptychi_is_refused_before_any_work(checkpoint, tiny_paths, tmp_path,
                                                           monkeypatch, capsys):
    def unavailable():
        raise IterativeUnavailableError(MISSING)
    monkeypatch.setattr(reconstruct, "import_ptychi", unavailable)
    out = tmp_path / "rec"
    assert _reconstruct(checkpoint, tiny_paths.test, out, "--refine", "lsqml") == 2
    assert _one_line(capsys) == (
        f"error: ReconstructConfig.refine='lsqml' needs Pty-chi, which cannot be imported here "
        f"({MISSING}) (allowed without it: 'none') [flag --refine]")
    assert not out.exists() and os.listdir(tmp_path) == []


def test_a_failed_polish_leaves_the_output_folder_as_it_was(tree_state, checkpoint, tiny_paths, tmp_path,
                                                            monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("LSQML diverged")
    monkeypatch.setattr(reconstruct, "import_ptychi", lambda: None)
    monkeypatch.setattr(reconstruct, "polish_with_lsqml", broken)
    out = tmp_path / "rec"
    with pytest.raises(RuntimeError, match="LSQML diverged"):   # a failure, not bad input
        _reconstruct(checkpoint, tiny_paths.test, out, "--refine", "lsqml")
    assert not out.exists() and os.listdir(tmp_path) == []
    # so the same command without --refine is not refused as a finished reconstruction
    assert _reconstruct(checkpoint, tiny_paths.test, out) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["figures"][0] == str(out / "reconstruction.png") and Path(m["figures"][0]).is_file()
    before = tree_state(out)
    with pytest.raises(RuntimeError, match="LSQML diverged"):
        _reconstruct(checkpoint, tiny_paths.test, out, "--refine", "lsqml", "--overwrite")
    assert tree_state(out) == before


def test_the_console_table_after_refine_has_the_refined_row(checkpoint, tiny_paths, tmp_path,
                                                           monkeypatch, capsys):
    """--refine: the table printed at the end holds the network's row and the refined one,
    each as its metrics.json says (a stand-in polish returns the true object, so the two rows
    differ)."""
    def polish(data, rec, inference, *, epochs, device):
        return data, replace(rec, recon=rec.ground_truth.astype(np.complex64)), {
            "amplitude_mae": 0.0123}
    monkeypatch.setattr(reconstruct, "import_ptychi", lambda: None)
    monkeypatch.setattr(reconstruct, "polish_with_lsqml", polish)
    out = tmp_path / "rec"
    assert _reconstruct(checkpoint, tiny_paths.test, out, "--refine", "lsqml") == 0
    captured = capsys.readouterr()
    printed, err = captured.out.splitlines(), captured.err.splitlines()
    assert f"output folder: {out.resolve()}" in err
    assert any(line.startswith(f"written: {(out / 'metrics.json').resolve()}; reconstruction "
                               f"{(out / 'recon.npz').resolve()}; refined (--refine lsqml) in "
                               f"{(out / 'refined').resolve()}; figures {out.resolve()}/")
               for line in err), err
    rows = {line.split(" | ")[0].strip("| "): line for line in printed if line.startswith("| ")}
    for name, path in (("reconstruction", out / "metrics.json"),
                       ("reconstruction+lsqml", out / "refined" / "metrics.json")):
        m = StudyMetrics.from_json(json.loads(path.read_text()))
        cells = rows[name].strip("| ").split(" | ")
        assert cells[1:5] == [m.cell("mae", 0), m.cell("mae", 1), m.cell("psnr", 0),
                              m.cell("psnr", 1)], name
        assert cells[11] == format_number(m.data_residual["amplitude_mae"], 4)
    assert rows["reconstruction+lsqml"] != rows["reconstruction"]
    assert "; reconstruction+lsqml: 0.0123; " in printed[-1]


def test_sigterm_while_reconstructing_exits_143_and_writes_nothing(checkpoint, tiny_paths,
                                                                   tmp_path, monkeypatch, capsys):
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)                   # the signal's handler raises long before this ends
        raise AssertionError("SIGTERM did not stop the run")

    def not_handled(signum, frame):      # without the command's own handler: fail, not die
        raise AssertionError("SIGTERM reached the test's handler")
    monkeypatch.setattr(reconstruct, "import_ptychi", lambda: None)
    monkeypatch.setattr(reconstruct, "polish_with_lsqml", killed)
    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        code = _reconstruct(checkpoint, tiny_paths.test, tmp_path / "rec", "--refine", "lsqml")
        assert signal.getsignal(signal.SIGTERM) is not_handled    # restored after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: interrupted (SIGTERM); --output-dir was left as it was; run the same command "
        "again")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ the study's preflight
def test_ground_truth_not_covering_a_non_grid_scan_is_refused(tiny_paths, tmp_path, capsys):
    """The test scan without its grid metadata and its truth cut to 50 x 50: the patches at
    x, y = 16..48 (N = 32, central crop 16) reach pixels 8..55. Refused before training,
    where it used to fail after it, when stitching onto the truth."""
    def cut(d):
        not_a_grid(d)
        d["YY_ground_truth"] = d["YY_ground_truth"][:50, :50]
        d["YY_ground_truth_all"] = d["YY_ground_truth_all"][:, :50, :50]
    test = npz_variant(tiny_paths.test, tmp_path / "test.npz", cut)
    out = tmp_path / "out"
    assert runner.main([*MODEL, "--train-npz", str(tiny_paths.train), "--test-npz", str(test),
                        "--output-dir", str(out)]) == 2
    assert _one_line(capsys) == (
        f"error: dataset '{test}': key 'YY_ground_truth' has shape (50, 50), which does not "
        "cover the positions of object 0 (x 16.0..48.0, y 16.0..48.0 px): their N = 32 "
        "patches, cropped to 16, reach columns 8..55 and rows 8..55 (expected a ground truth "
        "covering every stitched patch pixel) [flag --test-npz]")
    assert not out.exists()


def _far(d):
    """Pattern 0 moved from (16, 16) to (20016, 20016): the positions span 20000 px."""
    not_a_grid(d)
    d["coords_offsets"] = d["coords_offsets"].copy()
    d["coords_offsets"][0, 0, :, 0] += 20000.0


def test_a_canvas_larger_than_memory_is_refused(tiny_paths, checkpoint, tmp_path,
                                                monkeypatch, capsys):
    """20016 x 20016 canvas pixels at 64 bytes: 23.9 GiB, over half of 16 GiB. Refused
    before training (the study) and before inference (ptycho-reconstruct)."""
    monkeypatch.setattr(regions, "memory_bytes", lambda: 16 * 2 ** 30)
    test = npz_variant(tiny_paths.test, tmp_path / "test.npz", _far)
    why = ("positions span 20000 x 20000 px (x, y): the stitched canvas (20016 x 20016 px) would "
           "need 23.9 GiB (64 bytes per pixel while stitching) (allowed: up to 8 GiB, half of "
           "this machine's 16 GiB of memory; wrong position units?)")
    out = tmp_path / "out"
    assert runner.main([*MODEL, "--train-npz", str(tiny_paths.train), "--test-npz", str(test),
                        "--output-dir", str(out)]) == 2
    assert _one_line(capsys) == f"error: dataset '{test}': {why} [flag --test-npz]"
    assert _reconstruct(checkpoint, test, out) == 2     # after its log lines on the scan
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: dataset '{test}': {why} [flag --data]")
    assert not out.exists()


def test_memory_is_read_from_this_machine():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < regions.memory_bytes() <= physical


def test_a_nan_probe_file_is_refused_as_nan(tmp_path, capsys):
    probe = make_probe(32).astype(np.complex64)
    probe[3, 4] = np.nan
    np.savez(tmp_path / "probe.npz", probeGuess=probe)
    out = tmp_path / "out"
    assert runner.main([*MODEL, "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
                        "--n-train-objects", "1", "--n-test-objects", "1", "--probe-npz",
                        str(tmp_path / "probe.npz"), "--output-dir", str(out)]) == 2
    assert _one_line(capsys) == (
        f"error: dataset '{tmp_path / 'probe.npz'}': key 'probeGuess' contains non-finite "
        "values (1 NaN, 0 Inf) (expected finite values only) [flag --probe-npz]")
    assert not out.exists()


def test_an_unsupported_pattern_size_is_refused_without_advising_it(tmp_path, capsys):
    scan = simulate_at_positions(np.ones((160, 160), np.complex64), 100,
                                 np.array([[80.0, 80.0], [81.0, 79.0], [79.0, 81.0]]),
                                 make_probe(100), 1e6, np.random.default_rng(0))
    data = write_ptychopinn_npz(tmp_path / "n100.npz", scan)
    out = tmp_path / "out"
    assert runner.main([*MODEL, "--train-npz", str(data), "--output-dir", str(out)]) == 2
    assert _one_line(capsys) == (
        f"error: dataset '{data}': key 'diffraction' has pattern size N = 100 (expected N = 32, "
        "the study's --N; a study takes N in 16, 32, 64, 128, 256 only, so crop or bin the "
        "detector to one of them before reading (either changes the object pixel size)) "
        "[flag --train-npz]")
    assert not out.exists()


@pytest.mark.parametrize("script, argv, line", [
    ("grid_lines_torch_runner.py", ["--fno-width", "-3"],
     "error: ModelConfig.fno_width=-3 is out of range (allowed: 4..512) [flag --fno-width]"),
    ("reconstruct.py", ["--checkpoint", "m.ckpt"],
     "error: --data is required (allowed: a path; see --help)")])
def test_a_refused_flag_answers_before_torch_is_imported(script, argv, line, tmp_path):
    """The entry points check their flags before the work's modules (and torch) load."""
    import subprocess
    import sys
    probe = ("import runpy, sys; sys.argv = [sys.argv[1]] + sys.argv[2:]\n"
             "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    print('torch loaded' if 'torch' in sys.modules else 'no torch', e.code)\n")
    path = Path(runner.__file__).with_name(script)
    r = subprocess.run([sys.executable, "-c", probe, str(path), *argv], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.stderr.strip().splitlines() == [line]
    assert r.stdout.strip() == "no torch 2"


# every study's entry point: a console script of pyproject.toml, a script of scripts/studies
# (run as `python scripts/studies/X.py` runs it) or a module run with -m
STUDY_REFUSALS = [
    ("ptycho-compare", ["--iterative", "bogus"], "error: --iterative: iterative engine 'bogus' is "
     "not supported (allowed: lsqml, lsqml-poisson, epie)"),
    ("grid_lines_compare.py", ["--epochs", "-1"], "error: TrainingConfig.epochs=-1 is out of "
     "range (allowed: 1..100000) [flag --epochs]"),
    ("ptycho-dose-study", ["--nphotons-list", "1e3,x"], "error: --nphotons-list: 'x' is not a "
     "number (allowed: comma-separated positive numbers, e.g. 1e2,1e3,1e4)"),
    ("dose_study.py", ["--heldout-every", "0"], "error: --heldout-every=0 is out of range "
     "(allowed: >= 1)"),
    ("ptycho-seeds", ["--seeds", "1"], "error: --seeds '1' gives 1 seed(s) (allowed: two or "
     "more, e.g. 1,7,42)"),
    ("seed_sweep.py", ["--seeds", "1,x"], "error: --seeds: 'x' is not a seed (allowed: "
     "comma-separated integers >= 0, e.g. 1,7,42)"),
    ("learning_curve.py", ["--budget-steps", "2,1"], "error: --budget-steps='2,1' is not "
     "strictly increasing (allowed: positive integers in increasing order, e.g. 1,2,4,8)"),
    ("reference_levels.py", ["recon.npz", "--sigmas", "x"], "error: --sigmas='x' is not a "
     "comma-separated list of numbers (allowed: e.g. 1,2,4)"),
    ("position_correction.py", ["scan.npz", "--output", "o.json", "--epochs", "0"],
     "error: --epochs=0 is out of range (allowed: >= 1)"),
    ("-m ptycho_torch.studies.quality_gate", ["--epochs", "0"], "error: TrainingConfig.epochs=0 "
     "is out of range (allowed: 1..100000) [flag --epochs]"),
]


@pytest.mark.parametrize("entry, argv, line", STUDY_REFUSALS)
def test_a_study_refuses_a_bad_flag_before_torch_is_imported(entry, argv, line, tmp_path):
    """Every study's entry point checks its flags before the study's work (and torch) loads:
    one error line, exit code 2, no torch in the process."""
    import re
    import subprocess
    import sys
    repo = Path(runner.__file__).parents[2]
    if entry.startswith("ptycho-"):   # the console script's function, as pyproject.toml names it
        target = re.search(rf'^{entry} = "(.+)"$', (repo / "pyproject.toml").read_text(), re.M)[1]
        module, function = target.split(":")
        run = f"import importlib; sys.exit(getattr(importlib.import_module({module!r}), {function!r})())"
        args = [entry]
    elif entry.startswith("-m "):
        run = f"runpy.run_module({entry[3:]!r}, run_name='__main__', alter_sys=True)"
        args = [entry[3:]]
    else:                              # a script: its folder first on sys.path, as python X.py
        script = str(Path(runner.__file__).with_name(entry))
        run = ("sys.path.insert(0, os.path.dirname(sys.argv[0])); "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
        args = [script]
    probe = ("import os, runpy, sys; sys.argv = sys.argv[1:]\n"
             f"try:\n    {run}\n"
             "except SystemExit as e:\n"
             "    print('torch loaded' if 'torch' in sys.modules else 'no torch', e.code)\n")
    r = subprocess.run([sys.executable, "-c", probe, *args, *argv], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(
                           [str(repo), os.environ.get("PYTHONPATH", "")])})
    assert r.stderr.strip().splitlines() == [line]
    assert r.stdout.strip() == "no torch 2"


@pytest.mark.parametrize("entry, argv, heading", [
    ("grid_lines_torch_runner.py", ["--preset", "quick", "--help"], "training:"),
    ("reconstruct.py", ["--help"], "refinement after the network (Pty-chi):"),
    ("ptycho-study", ["--preset", "paper", "--help"], "model: the network:")])
def test_help_answers_before_torch_is_imported(entry, argv, heading, tmp_path):
    """--help of the entry points (ptycho-study, the runner, ptycho-reconstruct) comes out,
    in its groups and with a preset's values, without importing torch."""
    import subprocess
    import sys
    report = ("except SystemExit as e:\n"
              "    print('torch loaded' if 'torch' in sys.modules else 'no torch', e.code, "
              "file=sys.stderr)\n")
    if entry == "ptycho-study":   # the console script's function
        probe = ("import sys\nfrom ptycho_torch.cli import study_main\n"
                 "try:\n    study_main(sys.argv[1:])\n" + report)
        cmd = [sys.executable, "-c", probe, *argv]
    else:
        probe = ("import runpy, sys; sys.argv = [sys.argv[1]] + sys.argv[2:]\n"
                 "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n" + report)
        cmd = [sys.executable, "-c", probe, str(Path(runner.__file__).with_name(entry)), *argv]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(
                           [str(Path(runner.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])})
    assert r.stderr.strip() == "no torch 0"
    assert heading in r.stdout.splitlines()
    if "--preset" in argv:
        preset = argv[argv.index("--preset") + 1]
        assert f"; {preset}: " in r.stdout
