"""Every benchmark's --smoke mode runs and writes its --json, so none can rot.

The torch benchmarks run their ``main(argv)`` in this process (plain imports: tests/conftest.py
puts scripts/benchmarks on the path), which saves a torch import per script; the numpy-only
stitching benchmark runs as a real script, as CI does.
"""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.nn.functional as F

import against_revision
import channels_last_ops
import generators  # the benchmark scripts (tests/conftest.py puts scripts/benchmarks on the path)
import inference
import live
import precision
import reconstruct_vs_ptychi
import roofline
import training

from ptycho_torch.generators import layers

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "benchmarks"
_SCRIPTS = {m.__name__: m for m in (channels_last_ops, generators, inference, live, precision,
                                     reconstruct_vs_ptychi, training)}


def _load(script: str):
    return _SCRIPTS[script]


def _run(script: str, tmp_path: Path, capsys, *extra: str):
    out = tmp_path / f"{script}.json"
    capsys.readouterr()
    code = _load(script).main(["--smoke", "--device", "cpu", "--json", str(out), *extra])
    captured = capsys.readouterr()
    assert code == 0, (captured.out[-2000:], captured.err[-3000:])
    return SimpleNamespace(stdout=captured.out, stderr=captured.err), json.loads(out.read_text())


def test_inference_smoke(tmp_path, capsys):
    r, res = _run("inference", tmp_path, capsys)
    thr = res["throughput"]
    assert thr["max_abs_diff_vs_raw"] == 0.0  # the wrapper computes exactly what the raw loop does
    assert thr["throughput_ratio"] > 0 and thr["wrapper_patterns_per_s"] > 0
    assert res["memory"] == {"skipped": "CUDA not available"}
    assert "throughput ratio (wrapper / raw)" in r.stdout and "CUDA not available: skipped" in r.stdout


def test_malloc_smoke(tmp_path):  # each measurement is its own process
    out = tmp_path / "malloc.json"
    r = subprocess.run([sys.executable, str(BENCH / "malloc.py"), "--smoke", "--rounds", "1",
                        "--iters", "2", "--batch", "4", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res["patterns_per_s"]) == {"off", "mallopt", "env"}
    assert all(v > 0 for v in res["patterns_per_s"].values()) and res["ratio_to_off"]["off"] == 1.0


def test_roofline_smoke(tmp_path, capsys):
    out = tmp_path / "roofline.json"
    assert roofline.main(["--smoke", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [(r["variant"], r["width"]) for r in res["steps"]] == [("32", 4), ("bf16-mixed+cl", 4)]
    peak = res["matmul_peak_gflop_per_s"]
    for r in res["steps"]:
        # a conv / matmul per layer at least: forward and backward of a 4-channel Hybrid
        assert r["gflop_per_step"] > 0.1 and r["patterns_per_s"] == 16 / (r["ms_per_step"] / 1e3)
        own = peak["fp32" if r["variant"] == "32" else "bf16"]
        assert r["share_of_peak"] == r["gflop_per_s"] / own
    # channels-last runs the spectral layers as DFT products, which the counter counts
    assert res["steps"][1]["gflop_per_step"] > res["steps"][0]["gflop_per_step"]
    assert "of the bf16 matmul peak" in text and "of the fp32 matmul peak" in text
    with pytest.raises(SystemExit) as exc:
        roofline.main(["--smoke", "--variants", "32,fp16"])
    assert exc.value.code == 2
    assert "--variants ['fp16']: allowed 32, bf16-mixed+cl" in capsys.readouterr().err


def test_threads_smoke(tmp_path):  # each cell is its own process, one beside a busy one
    out = tmp_path / "threads.json"
    r = subprocess.run([sys.executable, str(BENCH / "threads.py"), "--smoke", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    cells = json.loads(out.read_text())["cells"]
    assert [(c["load"], c["policy"]) for c in cells] == [
        (load, policy) for load in ("idle", "loaded") for policy in ("default", "chosen", "passive")]
    assert all(c["ms_per_step"] > 0 and c["threads"] >= 1 for c in cells)
    # beside a process spinning on a CPU, the chosen count leaves that CPU to it
    cpus = len(__import__("os").sched_getaffinity(0))
    loaded_chosen = cells[4]["threads"]
    assert loaded_chosen <= max(cpus - 1, 1), (cpus, loaded_chosen)
    assert "loaded / idle torch default, chosen:" in r.stdout
    assert "passive / torch default, idle:" in r.stdout


def test_against_revision_smoke(tmp_path, capsys):  # the cells are processes, trees alternate
    out = tmp_path / "against.json"
    assert against_revision.main(["--smoke", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert res["base"] == head
    assert [(r["cell"], r["N"]) for r in res["rows"]] == [("fit", 32), ("infer", 32)]
    names = [f"base {head[:7]}", "this tree"]
    for row in res["rows"]:
        assert all(row[n]["patterns_per_s"] > 0 for n in names)
        assert row[names[0]]["x_base"] == 1.0


def test_against_revision_refusals(tmp_path, capsys):
    out = tmp_path / "against.json"
    assert against_revision.main(["--base", "no-such-rev", "--json", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: --base: git finds no commit 'no-such-rev' in {REPO} "
        "(allowed: a commit id, branch or tag of this checkout)\n")
    assert not out.exists()
    # a cell whose tree has no package imports the installed project: refused, not timed
    with pytest.raises(against_revision.RevisionError, match="a cell meant for .* imported "):
        against_revision.run_cell(tmp_path, "infer", 32, 1, 1, {})


def test_stitching_smoke(tmp_path):  # numpy only: no --device flag
    out = tmp_path / "stitching.json"
    r = subprocess.run([sys.executable, str(BENCH / "stitching.py"), "--smoke", "--json", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["max_abs_diff_vs_loop"] < 1e-5  # vectorized == per-patch loop
    assert len(res["rows"]) == 4 and all(row["seconds"] > 0 for row in res["rows"])
    assert "budget" in r.stdout


def test_training_smoke(tmp_path, capsys):
    r, res = _run("training", tmp_path, capsys, "--arch", "fno", "--arch", "cnn")
    assert [row["architecture"] for row in res["results"]] == ["fno", "cnn"]
    for row in res["results"]:
        assert row["lightning_patterns_per_s"] > 0 and row["bare_patterns_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["lightning_patterns_per_s"] / row["bare_patterns_per_s"])
    assert "| fno |" in r.stdout


def test_reconstruct_vs_ptychi_smoke(tmp_path, capsys):
    r, res = _run("reconstruct_vs_ptychi", tmp_path, capsys)
    rows = res["rows"]
    assert rows[0]["method"].startswith("pinn_fno") and rows[0]["seconds"] > 0
    assert res["meta"]["n_patterns"] == 25
    if "ptychi" in res:  # the extra is missing: network side only, said so
        assert "Pty-chi not available" in r.stdout and len(rows) == 1
    else:
        assert len(rows) == 2 and rows[1]["method"] == "Pty-chi LSQML 3 epochs"
        assert res["time_ratio_ptychi_over_network"] > 0


def test_generators_smoke(tmp_path, capsys):
    r, res = _run("generators", tmp_path, capsys, "--arch", "fno")
    assert [row["architecture"] for row in res["results"]] == ["fno"]


def test_precision_smoke(tmp_path, capsys):
    r, res = _run("precision", tmp_path, capsys)
    names = ["32", "32+cl", "bf16-mixed", "bf16-mixed+cl"]
    for table in ("training_width_8", "lightning_fit_width_8", "inference_N_32"):
        assert list(res[table]) == names
        assert res[table]["32"]["ratio_to_32"] == 1.0
        assert all(row["patterns_per_s"] > 0 for row in res[table].values())
    assert "Lightning fit" in r.stdout


def test_benchmarks_resolve_devices_through_the_project_rule(monkeypatch, capsys):
    """bench_common.select_device is ptycho_torch.engine.device.resolve_device plus a one-line refusal."""
    import torch

    import bench_common
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench_common.select_device("auto") == torch.device("cpu")
    assert bench_common.select_device("cpu") == torch.device("cpu")
    capsys.readouterr()
    assert bench_common.select_device("cuda") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: device='cuda' but no CUDA device is available (allowed here: auto, "
                   "cpu) [flag --device]"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench_common.select_device("auto") == torch.device("cuda")
    assert bench_common.select_device("cpu") == torch.device("cpu")


def test_gpu_check_uses_existing_flags():
    """Every flag gpu_check.sh passes to a benchmark or the study runner exists there."""
    import re

    from ptycho.config.cli import build_parser
    text = (BENCH / "gpu_check.sh").read_text()

    def command(name: str) -> str:  # from the script's name to the end of its continued line
        lines = text[text.index(name):].splitlines()
        end = next(i for i, ln in enumerate(lines) if not ln.rstrip().endswith("\\"))
        return "\n".join(lines[:end + 1])
    study_flags = {o for a in build_parser("x", "y")._actions for o in a.option_strings}
    study_cmd = command("scripts/studies/grid_lines_torch_runner.py")
    assert "--preset" in study_cmd
    for flag in re.findall(r"--[a-z][a-z0-9-]*", study_cmd):
        assert flag in study_flags, flag
    for script in ("inference", "training", "generators", "stitching", "reconstruct_vs_ptychi"):
        cmd = command(f"scripts/benchmarks/{script}.py")
        source = (BENCH / f"{script}.py").read_text() + (BENCH / "bench_common.py").read_text()
        for flag in set(re.findall(r"--[a-z][a-z0-9-]*", cmd)):
            assert f'"{flag}"' in source, (script, flag)


def test_live_smoke(tmp_path, capsys):
    r, res = _run("live", tmp_path, capsys)
    (thr,) = res["throughput"]
    assert thr["N"] == 32 and thr["frames"] == 200 and thr["frames_per_s"] > 0
    lat = res["latency"]
    assert lat["frames"] == 100 and 0 < lat["median"] <= lat["p95"]
    mem = res["memory"]
    assert mem["long"]["frames"] == 400 and mem["rss_ratio_long_over_short"] > 0
    assert "frames/s sustained" in r.stdout and "peak RSS" in r.stdout


def test_live_parts_and_train_args(tmp_path, capsys):
    r, res = _run("live", tmp_path, capsys, "--parts", "throughput", "--train-args",
                  "--fno-width 4")
    (thr,) = res["throughput"]
    assert thr["frames"] == 200 and "latency" not in res and "memory" not in res
    assert res["train_args"] == "--fno-width 4" and "latency at" not in r.stdout
    with pytest.raises(SystemExit) as exc:
        _load("live").main(["--smoke", "--parts", "speed"])
    assert exc.value.code == 2
    assert "--parts ['speed']: allowed throughput, latency, memory" in capsys.readouterr().err


def test_channels_last_ops_smoke(tmp_path, capsys):
    r, res = _run("channels_last_ops", tmp_path, capsys)
    assert len(res["cases"]) == 8
    assert all(c["plain_ms"] > 0 and c["form_ms"] > 0 for c in res["cases"].values())
    assert "lift bf16-mixed, forward, no grad, batch 64" in r.stdout
    assert "whole" not in res


def test_channels_last_ops_whole_model_smoke(tmp_path, capsys):
    r, res = _run("channels_last_ops", tmp_path, capsys, "--whole", "--fit")
    assert len(res["whole"]) == 8
    for rates in res["whole"].values():
        assert rates["plain"] > 0 and rates["ratio"] == rates["channels-last form"] / rates["plain"]
    assert "Lightning fit 2 steps, 32 + channels-last, width 8" in r.stdout
    assert "inference N 32, bf16-mixed + channels-last, in-place sums alone" in r.stdout


def test_the_plain_layers_rebinding_restores_the_generators_own(monkeypatch):
    own = layers.SpectralBlock._forward_in_place
    seen = []
    call = channels_last_ops.with_plain_layers(
        lambda: seen.append(layers.SpectralBlock._forward_in_place), "_forward_in_place")
    call()
    assert seen == [channels_last_ops._out_of_place]
    assert layers.SpectralBlock._forward_in_place is own and layers.gelu is not F.gelu
