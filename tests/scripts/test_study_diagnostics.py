"""The diagnostic scripts on a finished tiny study: stitch_variants.py's row for the study's
own stitching options gives the scores the study wrote to metrics.json; patch_twins.py
scores the study's patches and refuses bad input in one line; self_consistency.py gives the
study's two-half FRC for its test object 0, and the library's neighbour disagreement."""
import json

import numpy as np
import pytest

from ptycho.study_metrics import format_number
from ptycho_torch.cli import study_main
from torch_fixtures import TINY_STUDY_FLAGS, load_repo_file

TINY = [*TINY_STUDY_FLAGS, "--architecture", "fno", "--num-threads", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny study's run folder and its test scan."""
    out = tmp_path_factory.mktemp("diagnostics") / "study"
    assert study_main([*TINY, "--output-dir", str(out)]) == 0
    run = out / "runs" / "pinn_fno"
    return run, json.loads((run / "config.json").read_text())["data"]["test_npz"]


def test_the_default_row_scores_what_the_study_scored(tiny_run, capsys):
    run, test_npz = tiny_run
    m = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    script = load_repo_file("scripts/studies/stitch_variants.py")
    assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                        "--crops", "8,16"]) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["stitch", "crop", "subpixel", "align phase"]
    # tiles, then crops 8 and 16 each with two sub-pixel modes and with/without alignment
    assert len(rows) == 1 + 2 * 2 * 2 and rows[0][0] == "tiles"
    # the study's defaults: positions, crop N/2 = 16, Fourier sub-pixel shifts, no alignment
    default = [r for r in rows if r[:4] == ["positions", "16", "fourier", "False"]]
    assert len(default) == 1
    assert default[0][4:7] == [format_number(m["ssim"][0], 3), format_number(m["psnr"][0], 4),
                               format_number(m["psnr"][1], 4)]


def test_patch_twins_scores_the_study_s_patches(tiny_run, tmp_path, capsys):
    from ptycho.formats.readers import read_dataset
    from ptycho.patch_twins import patch_twin_scores, twin_data_residuals
    from ptycho_torch.engine.inference import forward_probe, predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model

    run, test_npz = tiny_run
    script = load_repo_file("scripts/studies/patch_twins.py")
    out = tmp_path / "twins.json"
    capsys.readouterr()
    assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                        "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    # the same scores from the library, on patches predicted here at another batch size
    data = read_dataset(test_npz)
    sub = data.select(data.object_selection(0))
    model = load_model(str(run / "model.ckpt"), "cpu")
    pred = np.asarray(predict_patches(model, sub, 5))[:, 0]
    s = patch_twin_scores(pred, np.exp(1j * sub.Y_phi[:, 0]), forward_probe(model, data))
    assert len(res["direct"]) == len(sub.Y_phi) == len(pred)
    np.testing.assert_allclose(res["direct"], s["direct"], atol=1e-5)
    assert res["twin_fraction"] == pytest.approx(s["twin_fraction"])
    r = twin_data_residuals(pred, sub.diffraction[:, 0], forward_probe(model, data))
    np.testing.assert_allclose(res["residual"], r["residual"], rtol=1e-4)
    assert res["twin_fits_better"] == pytest.approx(r["twin_fits_better"])
    text = capsys.readouterr().out
    assert f"closer to the twin: {s['twin_fraction']:.3f}" in text
    assert f"the twin fits better for {r['twin_fits_better']:.3f} of the patches" in text


def test_patch_twins_refuses_in_one_line(tiny_run, spiral_npz, tmp_path, capsys):
    from ptycho.formats.readers import read_dataset
    assert read_dataset(spiral_npz).Y_phi is None   # a scan without the true phase
    run, test_npz = tiny_run
    script = load_repo_file("scripts/studies/patch_twins.py")
    ckpt = str(run / "model.ckpt")
    cases = [(["--checkpoint", ckpt, "--data", str(tmp_path / "none.npz")],
              f"error: --data {tmp_path / 'none.npz'}: no such file"),
             (["--checkpoint", ckpt, "--data", test_npz, "--object-index", "3"],
              "error: --object-index 3: allowed [0]"),
             (["--checkpoint", ckpt, "--data", test_npz, "--infer-batch-size", "0"],
              "error: --infer-batch-size 0: allowed 1 or more"),
             (["--checkpoint", ckpt, "--data", test_npz, "--num-threads", "-1"],
              "error: --num-threads -1: allowed 0 (choose) or more"),
             (["--checkpoint", ckpt, "--data", str(spiral_npz)],
              f"error: --data {spiral_npz}: no Y_phi labels (the true object phase of each "
              "patch): a simulated test scan is needed")]
    for argv, line in cases:
        capsys.readouterr()
        assert script.main(argv) == 2
        assert capsys.readouterr().err == line + "\n"


def test_self_consistency_gives_the_study_s_two_half_frc(tiny_run, tmp_path, capsys):
    from ptycho.formats.readers import read_dataset
    from ptycho.neighbour_agreement import neighbour_disagreement
    from ptycho_torch.engine.inference import predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model

    run, test_npz = tiny_run
    m = json.loads((run / "metrics.json").read_text())["two_half_frc"]
    script = load_repo_file("scripts/studies/self_consistency.py")
    out = tmp_path / "consistency.json"
    capsys.readouterr()
    assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                        "--infer-batch-size", "7", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    frc = res["two_half_frc"]
    assert frc["n_patterns"] == m["n_patterns"] and frc["region"] == m["region"]
    for key in ("frc50", "frc_halfbit"):
        assert frc[f"{key}_censored"] == m[f"{key}_censored"]
        for got, want in zip(frc[key], m[key]):
            assert (got is None and want is None) or got == pytest.approx(want, abs=1e-6)
    # the neighbour disagreement of the same patches, from the library (crop N/2 = 16)
    data = read_dataset(test_npz)
    sub = data.select(data.object_selection(0))
    pred = np.asarray(predict_patches(load_model(str(run / "model.ckpt"), "cpu"), sub, 5))
    want = neighbour_disagreement(pred[:, 0], sub.centres[:, 0], 16)
    assert res["neighbour_disagreement"]["pairs"] == want["pairs"].tolist()
    assert res["neighbour_disagreement"]["median"] == pytest.approx(want["median"], rel=1e-4)
    assert want["median"] > 0 and len(want["pairs"]) > 0
    study = json.loads((run / "metrics.json").read_text())["neighbour_disagreement"]
    assert study == pytest.approx(want["median"], rel=1e-4)   # the study wrote the same
    text = capsys.readouterr().out
    assert text.startswith("object 0, amplitude: two-half FRC50 ")
    assert f"neighbour phase disagreement {want['median']:.4f} rad" in text
    assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                        "--object-index", "2"]) == 2
    assert capsys.readouterr().err == "error: --object-index 2: allowed [0]\n"


def test_the_diagnostic_scripts_take_the_thread_count(tiny_run, capsys):
    import torch
    run, test_npz = tiny_run
    before = torch.get_num_threads()
    try:
        for name in ("self_consistency", "stitch_variants"):
            torch.set_num_threads(2)
            script = load_repo_file(f"scripts/studies/{name}.py")
            capsys.readouterr()
            assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                                "--num-threads", "1"]) == 0
            assert torch.get_num_threads() == 1, name
        capsys.readouterr()
        assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                            "--num-threads", "-2"]) == 2
        assert capsys.readouterr().err == "error: --num-threads -2: allowed 0 (choose) or more\n"
    finally:
        torch.set_num_threads(before)
