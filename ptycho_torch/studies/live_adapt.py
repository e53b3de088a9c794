"""Does ``ptycho-live --adapt`` help a model on a scan it was not trained on?
(``scripts/studies/live_adapt_study.py``)

Per seed s:

1. the scan ``ptycho-live-sim`` simulates by default with ``--seed s`` (a grid-lines object,
   a Fermat spiral, N = 64, ``--train-frames`` frames, 1e6 photons per pattern), kept as an
   NPZ; ``ptycho-study`` trains a generator on it for ``--train-steps`` optimizer steps
   (``--seed s``; ``--train-args`` adds flags);
2. a different scan: the object, probe and positions of ``--from`` (the run-1084
   reconstruction), Poisson counts at ``--nphotons`` with seed s, as
   ``make_example_scan.py --from`` simulates it, written to a live file as
   ``ptycho-live-sim --scan ... --rate 0`` writes it;
3. ``ptycho-live`` follows that file with the model frozen, then once per ``--variants``
   entry with ``--adapt`` and that entry's flags;
4. per run: the data residual of the final canvas as stitched (``live.json``), frames/s,
   the adaptation's rounds and seconds, and the score of ``product-out.h5`` against the true
   object (:func:`ptycho.evaluation.evaluate_reconstruction`, the object window where the
   product lies).

Writes ``live_adapt.json`` (every run) and ``live_adapt.md`` (mean and range over the
seeds) into ``--output-dir``; a model, scan or run already there is reused.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from ptycho.artifacts import write_json_atomic
from ptycho.config.live_config import LiveSimConfig
from ptycho.datagen.from_file import simulate_from_file
from ptycho.datagen.live_detector import frame_source, write_live_scan
from ptycho.evaluation import evaluate_reconstruction
from ptycho.formats.ptychodus_product import read_product
from ptycho.formats.ptychopinn_npz import save_npz, write_ptychopinn_npz
from ptycho_torch.cli import live_main, study_main
from ptycho_torch.studies.handover import product_origin
from ptycho_torch.studies.sweep import span, stats

FROZEN = "frozen"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--output-dir", default="outputs/live_adapt")
    p.add_argument("--seeds", default="1,7,42", help="comma-separated seeds")
    p.add_argument("--train-frames", type=int, default=500)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--train-args", default="--architecture hybrid --fno-width 8",
                   help="more ptycho-study flags")
    p.add_argument("--from", dest="source", default="data/run1084_recon3_postPC.npz")
    p.add_argument("--probes", default="file,model",
                   help="the probe the followed scan is simulated with, one set of runs each: "
                        "file (that of --from) or model (the training scan's, the model's own)")
    p.add_argument("--nphotons", type=float, default=1e6)
    p.add_argument("--frames", type=int, default=0, help="frames of the followed scan "
                   "(0: all)")
    p.add_argument("--variants", default=";--adapt-lr 1e-3",
                   help="';'-separated ptycho-live flags, one adapted run each ('' = the "
                        "defaults)")
    p.add_argument("--num-threads", type=int, default=1)
    return p


def training_scan(path: Path, seed: int, frames: int) -> Path:
    """The default simulated scan of ``ptycho-live-sim --seed seed`` as an NPZ (counts)."""
    if path.is_file():
        return path
    src = frame_source(LiveSimConfig(output=str(path), seed=seed, frames=frames))
    x, y = src.positions[:, 0], src.positions[:, 1]
    return save_npz(path, {"diffraction": src.chunk(0, src.n), "xcoords": x, "ycoords": y,
                           "probeGuess": src.probe[0], "scan_index": np.zeros(src.n, np.int64)})


def train(d: Path, npz: Path, seed: int, a) -> Path:
    ckpt = d / "runs" / "pinn_hybrid" / "model.ckpt"
    arch = shlex.split(a.train_args)
    if "--architecture" in arch:
        ckpt = d / "runs" / f"pinn_{arch[arch.index('--architecture') + 1]}" / "model.ckpt"
    if ckpt.is_file():
        return ckpt
    argv = ["--train-npz", str(npz), "--output-dir", str(d), "--N", "64", "--seed", str(seed),
            "--max-steps", str(a.train_steps), "--epochs", "100000", "--num-threads",
            str(a.num_threads), "--no-progress-bar", *arch]
    if study_main(argv) != 0:
        raise SystemExit(f"training failed: ptycho-study {shlex.join(argv)}")
    return ckpt


def followed_scan(d: Path, seed: int, probe: str, train_npz: Path, a):
    """The live file of the other scan and its truth (object, true positions), simulated with
    the probe of ``--from`` (``probe='file'``) or of the training scan (``'model'``)."""
    live, truth = d / f"other_{probe}.h5", d / f"other_{probe}_truth.npz"
    if not (live.exists() and truth.is_file()):
        source = Path(a.source)
        if probe == "model":
            with np.load(a.source) as f:
                arrays = {k: f[k] for k in ("objectGuess", "xcoords", "ycoords")}
            with np.load(train_npz) as f:
                arrays["probeGuess"] = f["probeGuess"]
            source = save_npz(d / "source_model_probe.npz", arrays)
        scan, true = simulate_from_file(source, nphotons=a.nphotons, n_positions=a.frames,
                                        seed=seed, N=64)
        npz = write_ptychopinn_npz(d / f"other_{probe}.npz", scan)
        write_live_scan(LiveSimConfig(output=str(live), scan=str(npz), rate=0.0, chunk=8),
                        out=sys.stderr)
        np.savez(truth, object=true.object, positions_px=true.positions_px)
    t = np.load(truth)
    return live, t["object"], t["positions_px"]


def truth_score(product_path: Path, obj: np.ndarray, true_xy: np.ndarray) -> dict:
    """SSIM / PSNR of the product's object against the true object's window under it (its
    corner from the product's positions, which are the true ones relative to it)."""
    p = read_product(product_path)
    try:
        r0, c0 = product_origin(p, true_xy)
    except ValueError as err:
        raise SystemExit(f"{product_path}: {err}") from None
    rec = p["object"]
    gt = obj[r0:r0 + rec.shape[0], c0:c0 + rec.shape[1]]
    if gt.shape != rec.shape or min(r0, c0) < 0:
        raise SystemExit(f"{product_path}: its object does not lie inside the true object")
    m = evaluate_reconstruction(rec, gt)["metrics"]
    return {"ssim": m["ssim"], "psnr": m["psnr"]}


def follow(ckpt: Path, live: Path, out: Path, flags: list[str], a) -> dict:
    if not (out / "live.json").is_file() or json.loads(
            (out / "live.json").read_text()).get("state") != "ended":
        argv = ["--checkpoint", str(ckpt), "--source", str(live), "--output-dir", str(out),
                "--num-threads", str(a.num_threads), "--device", "cpu", "--overwrite", *flags]
        if live_main(argv) != 0:
            raise SystemExit(f"ptycho-live failed: {shlex.join(argv)}")
    return json.loads((out / "live.json").read_text())


def _slug(flags: str) -> str:
    """The folder of an adapted run: ``adapt`` and its flags (``--adapt-lr 1e-3`` ->
    ``adapt_lr_1e-3``)."""
    words = [w.replace("--adapt-", "").replace("--", "") for w in shlex.split(flags)]
    return "_".join(["adapt", *words])


def one_seed(root: Path, seed: int, variants: list[str], a) -> list[dict]:
    d = root / f"seed_{seed}"
    d.mkdir(parents=True, exist_ok=True)
    train_npz = training_scan(d / "train_scan.npz", seed, a.train_frames)
    ckpt = train(d / "train", train_npz, seed, a)
    rows = []
    for probe, name in [(p, v) for p in a.probes.split(",") for v in [FROZEN, *variants]]:
        live, obj, true_xy = followed_scan(d, seed, probe, train_npz, a)
        flags = [] if name == FROZEN else ["--adapt", *shlex.split(name)]
        out = d / f"probe_{probe}" / (FROZEN if name == FROZEN else _slug(name))
        st = follow(ckpt, live, out, flags, a)
        ad = st.get("adaptation") or {}
        rows.append({"seed": seed, "probe": probe,
                     "run": name if name == FROZEN else f"--adapt {name}".strip(),
                     "residual": st["data_residual"]["amplitude_mae"],
                     "frames": st["frames"], "frames_per_s": st["frames_per_s"],
                     "adapt_rounds": ad.get("rounds", 0), "adapt_steps": ad.get("steps", 0),
                     "adapt_seconds": ad.get("seconds", 0.0),
                     **truth_score(out / "product-out.h5", obj, true_xy)})
    return rows


def _span(values) -> str:
    """``mean (min..max)`` of a column over the seeds, the studies' one summary format."""
    return span(stats(values))


def table(rows: list[dict]) -> str:
    """Markdown: per run, mean (min..max) over the seeds."""
    lines = ["| probe | run | data residual | amp SSIM | phase SSIM | amp PSNR | phase PSNR | "
             "frames/s | adaptation s |", "|---|---|---|---|---|---|---|---|---|"]
    for probe, run in dict.fromkeys((r["probe"], r["run"]) for r in rows):
        rs = [r for r in rows if r["run"] == run and r["probe"] == probe]
        lines.append(f"| {probe} | `{run}` | " + " | ".join([
            _span([r["residual"] for r in rs]),
            _span([r["ssim"][0] for r in rs]), _span([r["ssim"][1] for r in rs]),
            _span([r["psnr"][0] for r in rs]), _span([r["psnr"][1] for r in rs]),
            _span([r["frames_per_s"] for r in rs]),
            _span([r["adapt_seconds"] for r in rs])]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"error: --seeds {a.seeds!r} (allowed: comma-separated integers)", file=sys.stderr)
        return 2
    if not Path(a.source).is_file():
        print(f"error: --from '{a.source}' does not exist (allowed: an NPZ with objectGuess, "
              "probeGuess, xcoords, ycoords)", file=sys.stderr)
        return 2
    if not a.probes or set(a.probes.split(",")) - {"file", "model"}:
        print(f"error: --probes {a.probes!r} (allowed: file, model, comma-separated)",
              file=sys.stderr)
        return 2
    root = Path(a.output_dir)
    variants = [v.strip() for v in a.variants.split(";")]
    rows = [r for s in seeds for r in one_seed(root, s, variants, a)]
    write_json_atomic(root / "live_adapt.json", {"argv": sys.argv[1:] if argv is None
                                                 else list(argv), "rows": rows})
    text = table(rows)
    (root / "live_adapt.md").write_text(text)
    print(text)
    return 0
