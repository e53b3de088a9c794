"""Ptychodus drives this project: train, reconstruct and score through Ptychodus' own batch mode.

For each seed: simulate the realistic benchmark scan (``make_example_scan.py --from
data/run1084_recon3_postPC.npz``: the run-1084 object and probe at its first
``--n-positions`` positions, Poisson counts at ``--nphotons``), write Ptychodus' input
folder (``diffraction.h5``, ``product.h5``, ``settings.ini`` with Ptychodus' defaults except
``model_size``, ``epochs`` and ``device``), then time

1. ``ptychodus -b train`` (algorithm ``ptychopinn-torch_unsupervised``);
2. ``ptychodus -b reconstruct`` with that ``model.ckpt`` (the network);
3. the same with the model file's refine plan (``--refine-epochs`` LSQML epochs from the
   network's object, :mod:`ptycho_torch.api.refine_plan`);
4. Pty-chi LSQML alone (``--lsqml-epochs`` epochs from a flat object, object only, the
   product's probe; this project's Pty-chi adapter on the same two files: Ptychodus' own
   Pty-chi back end does not load beside a CPU torch without torchvision),

and score each output ``product.h5`` against the true object over the box the positions
span: phase correlation after removing the global phase, the phase ramp and the sub-pixel
translation (``ptycho.evaluation``, ``register=True``), and amplitude SSIM.

    python scripts/studies/ptychodus_benchmark.py --ptychodus .venv-ptychodus/bin/ptychodus \\
        --seeds 1,7,42 --epochs 30 --refine-epochs 20 --lsqml-epochs 100 --num-threads 2

Ptychodus writes each output as ``product.<progress>.h5``. Writes
``<output-dir>/results.json`` and prints one row per seed and route.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho.evaluation import evaluate_reconstruction  # noqa: E402
from ptycho.formats.geometry import metres_to_pixels  # noqa: E402
from ptycho.formats.ptychodus import (  # noqa: E402
    object_window,
    read_ptychodus,
    scan_centred_window,
)
from ptycho.formats.ptychodus_product import read_product  # noqa: E402
from ptycho_torch.api.frame import frame_from_canvas  # noqa: E402
from ptycho_torch.api.refine_plan import RefinePlan, set_refine_plan  # noqa: E402
from ptycho_torch.ptychi.baseline import reconstruct_iterative  # noqa: E402

SOURCE = _REPO / "data" / "run1084_recon3_postPC.npz"
N = 64
TORCH_SETTINGS = """[Processing]
Algorithm = ptychopinn-torch_unsupervised
[PtychoPINNTorchData]
model_size = {N}
[PtychoPINNTorchTraining]
epochs = {epochs}
device = cpu
"""


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ptychodus", required=True, help="Ptychodus' executable "
                   "(scripts/install_ptychodus.sh prints it)")
    p.add_argument("--output-dir", default="outputs/ptychodus_benchmark")
    p.add_argument("--seeds", default="1,7,42")
    p.add_argument("--n-positions", type=int, default=300)
    p.add_argument("--nphotons", type=float, default=1e6)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--refine-epochs", type=int, default=20)
    p.add_argument("--lsqml-epochs", type=int, default=100, help="0: skip the LSQML row")
    p.add_argument("--num-threads", type=int, default=2)
    return p.parse_args(argv)


def _run(cmd, env, log: Path) -> float:
    """Run ``cmd``; its wall time in s, or exit with the tail of its output."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)
    log.write_text(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise SystemExit(f"error: {' '.join(map(str, cmd[:3]))} exited {proc.returncode} "
                         f"(log {log}):\n{tail}")
    return time.perf_counter() - t0


def _input(folder: Path, scan: Path, settings: str, model: Path | None = None) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(scan / "diffraction.h5", folder / "diffraction.h5")
    shutil.copy(scan / "product.h5", folder / "product.h5")
    (folder / "settings.ini").write_text(settings)
    if model is not None:
        shutil.copy(model, folder / "model.ckpt")
    return folder


def score(product: Path, truth: dict, obj=None) -> dict:
    """Scores of a product's object (or ``obj`` in its frame) against the truth over the
    positions' box widened by N/4 (where the stitched central halves of the patches reach)."""
    p = read_product(product)
    if obj is not None:
        p = dict(p, object=obj)
    pos = metres_to_pixels(p["x_m"], p["y_m"], p["object_center_m"], p["object_pixel_m"],
                           p["object_shape"])
    (r0, c0), (H, W) = scan_centred_window(truth["written_positions_px"], N)
    if (H, W) != tuple(p["object_shape"]):
        raise SystemExit(f"error: {product}: object {p['object_shape']} is not the input "
                         f"frame {(H, W)}")
    gt = object_window(truth["object"], r0, c0, H, W)
    lo = np.maximum(np.ceil(pos.min(0)).astype(int) - N // 4, 0)
    hi = np.floor(pos.max(0)).astype(int) + N // 4
    box = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    ev = evaluate_reconstruction(p["object"][box], gt[box], register=True)
    return {"phase_correlation": ev["phase_correlation"],
            "amp_ssim": ev["metrics"]["ssim"][0], "phase_psnr": ev["metrics"]["psnr"][1],
            "registration_shift_px": ev.get("registration_shift_px")}


def one_seed(a, seed: int, root: Path, env: dict) -> list[dict]:
    work = root / f"seed{seed}"
    scan = work / "scan"
    subprocess.run([sys.executable, str(_REPO / "scripts/studies/make_example_scan.py"),
                    "--from", str(SOURCE), "--n-positions", str(a.n_positions),
                    "--subset", "first",
                    "--nphotons", str(a.nphotons), "--seed", str(seed), "--layouts", "ptychodus",
                    "--output-dir", str(scan)], check=True, stdout=subprocess.DEVNULL)
    truth = dict(np.load(scan / "truth.npz"))
    settings = TORCH_SETTINGS.format(N=N, epochs=a.epochs)
    rows = []
    t_train = _run([a.ptychodus, "-b", "train", "-i", _input(work / "in", scan / "ptychodus",
                                                               settings), "-o", work / "out"],
                   env, work / "train.log")
    model = next((work / "out").glob("run_*/model.ckpt"))
    routes = [("network", model, settings)]
    if a.refine_epochs:
        refined = set_refine_plan(model, RefinePlan("lsqml", a.refine_epochs), work / "refine.ckpt")
        routes.append((f"network + {a.refine_epochs} LSQML", refined, settings))
    for k, (name, ckpt, text) in enumerate(routes):
        folder = _input(work / f"in{k}", scan / "ptychodus", text, ckpt)
        t = _run([a.ptychodus, "-b", "reconstruct", "-i", folder, "-o", work / f"out{k}"], env,
                 work / f"reconstruct{k}.log")
        row = {"seed": seed, "route": name, "reconstruct_s": round(t, 1),
               "train_s": round(t_train, 1) if ckpt is not None else 0.0}
        # Ptychodus writes product.<progress>.h5 per result; the last is the final one
        row.update(score(sorted((work / f"out{k}").glob("product*.h5"))[-1], truth))
        rows.append(row)
        print(f"seed {seed:>3}  {name:<32} train {row['train_s']:>7.1f} s  reconstruct "
              f"{t:>6.1f} s  phase corr {row['phase_correlation']:.3f}  amp SSIM "
              f"{row['amp_ssim']:.3f}", flush=True)
    if a.lsqml_epochs:
        rows.append(lsqml_row(a, seed, work / "in", truth))
    return rows


def lsqml_row(a, seed: int, folder: Path, truth: dict) -> dict:
    """Pty-chi LSQML alone on the input folder, in the input object's frame."""
    raw = read_ptychodus(folder / "diffraction.h5", folder / "product.h5", unit="counts")
    ds = raw.to_dataset(gridsize=1, N=N)
    torch.set_num_threads(a.num_threads)
    t0 = time.perf_counter()
    rec, _ = reconstruct_iterative("lsqml", ds, epochs=a.lsqml_epochs, device="cpu")
    t = time.perf_counter() - t0
    product = folder / "product.h5"
    obj = frame_from_canvas(rec.canvas, ds.metadata["position_origin_px"],
                            tuple(read_product(product)["object_shape"]))
    row = {"seed": seed, "route": f"Pty-chi LSQML {a.lsqml_epochs}", "reconstruct_s": round(t, 1),
           "train_s": 0.0}
    row.update(score(product, truth, obj))
    print(f"seed {seed:>3}  {row['route']:<32} train     0.0 s  reconstruct {t:>6.1f} s  "
          f"phase corr {row['phase_correlation']:.3f}  amp SSIM {row['amp_ssim']:.3f}",
          flush=True)
    return row


def main(argv=None) -> int:
    a = _args(argv)
    root = Path(a.output_dir)
    if root.exists():
        print(f"error: --output-dir {root} exists (allowed: a new folder)", file=sys.stderr)
        return 2
    if not os.access(a.ptychodus, os.X_OK):
        print(f"error: --ptychodus {a.ptychodus!r} is not an executable (allowed: the path "
              "scripts/install_ptychodus.sh prints)", file=sys.stderr)
        return 2
    env = dict(os.environ, OMP_NUM_THREADS=str(a.num_threads),
               PYTHONPATH=os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")]))
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        rows += one_seed(a, seed, root, env)
        (root / "results.json").write_text(json.dumps({"args": vars(a), "rows": rows},
                                                      indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
