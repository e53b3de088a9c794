"""ptycho_torch.studies.dose (dose_study.py): the sweep's outputs and resumption, the decision
rules (loss by dose, held-out epoch, transfer), the crossover, and bad input."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ptycho.config.presets import from_preset
from ptycho.config.validation import StudyError
from ptycho.study_metrics import TABLE_COLUMNS
from ptycho_torch.studies import dose as ds
from ptycho_torch.studies.dose import cells, report, rules
from ptycho_torch.studies.dose.config import DoseConfig, DoseOptions
from torch_fixtures import TINY_STUDY_FLAGS

REPO = Path(__file__).resolve().parents[3]
TINY_FLAGS = [*TINY_STUDY_FLAGS,
              "--architectures", "fno", "--nphotons-list", "1e3,1e9"]


def _stamps(out: Path) -> dict:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in sorted(out.glob("dose_*/runs/*/metrics.json"))}


def _check_outputs(out: Path, methods: list[str], doses=(1e3, 1e9)) -> dict:
    result = json.loads((out / "dose_study.json").read_text())
    rows = result["rows"]
    assert result["doses"] == list(doses) and result["methods"] == methods
    assert len(rows) == len(methods) * len(doses)
    assert {(r["method"], r["nphotons"]) for r in rows} == {(m, d) for m in methods for d in doses}
    for r in rows:
        assert r["model_id"] == r["method"] and r["ground_truth"] is True
        for _, key, ch in TABLE_COLUMNS:  # every metric of the comparison table
            assert math.isfinite(float(r[key][ch])), (r["method"], key)
        assert math.isfinite(r["phase_correlation"]) and r["data_residual"]["amplitude_mae"] > 0
        assert r["inference_time_s"] > 0
        cell = out / r["cell"]
        assert cell.parent.parent.name == f"dose_{ds.format_dose(r['nphotons'])}"
        assert json.loads((cell / "metrics.json").read_text()) == {
            k: v for k, v in r.items() if k not in ("method", "nphotons", "cell", "selection")}
        assert (cell.parent.parent / "recons" / r["method"] / "recon.npz").is_file()
        assert r["region"] == [12, 12, 40, 40]
    md = (out / "dose_study.md").read_text()
    body = [ln for ln in md.split("## Every (method, dose)")[1].split("## Rules")[0].splitlines()
            if ln.startswith("| ") and not ln.startswith("| photons")]
    assert len(body) == len(rows)
    for r in rows:
        assert any(ln.startswith(f"| {ds.format_dose(r['nphotons'])} | {r['method']} |") for ln in body)
    import matplotlib.image as mpimg
    for name in ("dose_study.png", "dose_study_all.png", "dose_grid.png"):
        img = mpimg.imread(out / name)
        assert img.ndim == 3 and min(img.shape[:2]) > 300 and float(img[..., :3].std()) > 0.05
    for name in ("amplitude_psnr", "phase_psnr"):
        c = result["crossover"][name]
        assert set(c) >= {"dose", "reason"} and (c["dose"] is None) != (c["reason"] is None)
    return result


@pytest.fixture(scope="module")
def network_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("dose") / "out"
    argv = [*TINY_FLAGS, "--iterative", "none", "--output-dir", str(out)]
    assert ds.main(argv) == 0
    return out, argv


def test_network_only_sweep_writes_every_cell(network_sweep):
    out, _ = network_sweep
    result = _check_outputs(out, ["pinn_fno", "pinn_fno@bestval", "pinn_fno@1e3"])
    # the loss rule, and only nphotons differs between the doses' studies
    from ptycho.config.study_config import StudyConfig
    cfgs = {d: StudyConfig.from_dict(json.loads(
        (out / f"dose_{d}" / "runs/pinn_fno/config.json").read_text())["study"]) for d in ("1e3", "1e9")}
    assert cfgs["1e3"].training.loss == "poisson" and cfgs["1e9"].training.loss == "mae"
    a, b = cfgs["1e3"].flat(), cfgs["1e9"].flat()
    assert {k for k in a if a[k] != b[k]} == {"nphotons", "loss", "output_dir"}
    # same objects and scan, different noise
    from ptycho.io import load_dataset
    t3, t9 = (load_dataset(p) for p in sorted((out / "datasets").glob("*/test.npz")))
    np.testing.assert_array_equal(t3.ground_truth, t9.ground_truth)
    np.testing.assert_array_equal(t3.centres, t9.centres)
    assert not np.array_equal(t3.diffraction, t9.diffraction)
    # the transfer row at its own dose is the source network's result
    rows = {(r["method"], r["nphotons"]): r for r in result["rows"]}
    assert rows[("pinn_fno@1e3", 1e3)]["psnr"] == pytest.approx(rows[("pinn_fno", 1e3)]["psnr"])
    assert rows[("pinn_fno@1e3", 1e9)]["psnr"] != rows[("pinn_fno", 1e9)]["psnr"]
    assert result["crossover"]["phase_psnr"]["reason"] == "needs network and iterative rows"


def test_second_call_skips_finished_cells(network_sweep, monkeypatch):
    out, argv = network_sweep
    before = _stamps(out)
    assert len(before) == 6
    from ptycho_torch.studies import common as study  # where the studies call run_study

    def no_training(cfg):
        raise AssertionError(f"{cfg.run.output_dir}/{cfg.model_id} was retrained")
    monkeypatch.setattr(study, "run_study", no_training)
    assert ds.main(argv) == 0
    assert _stamps(out) == before
    # changed settings are refused before anything runs, nothing is lost
    assert ds.main([*argv, "--learning-rate", "0.5"]) == 2
    assert _stamps(out) == before


def test_interrupted_sweep_continues_per_cell(network_sweep, tmp_path, capsys, monkeypatch):
    """A sweep cut short inside the 1e9 training: the rerun asks for --resume, then trains
    only that cell; finished cells (and rows derived from them) are kept."""
    src, argv = network_sweep
    out = tmp_path / "out"
    shutil.copytree(src, out)
    (out / "dose_1e9/runs/pinn_fno/metrics.json").unlink()  # as if killed before the end
    before = _stamps(out)
    argv = [*argv[:-1], str(out)]
    capsys.readouterr()
    assert ds.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds an interrupted run of pinn_fno" in err and "--resume" in err
    assert _stamps(out) == before
    from ptycho_torch.studies import common as study  # where the studies call run_study
    trained, real = [], study.run_study

    def counting(cfg):
        trained.append(Path(cfg.run.output_dir).name)
        return real(cfg)
    monkeypatch.setattr(study, "run_study", counting)
    assert ds.main([*argv, "--resume"]) == 0
    assert trained == ["dose_1e9"]
    after = _stamps(out)
    kept = {k: v for k, v in before.items() if not k.startswith("dose_1e9/runs/pinn_fno@bestval")}
    assert {k: after[k] for k in kept} == kept
    assert set(after) == set(before) | {"dose_1e9/runs/pinn_fno/metrics.json"}
    _check_outputs(out, ["pinn_fno", "pinn_fno@bestval", "pinn_fno@1e3"])


@pytest.mark.iterative
def test_sweep_with_iterative_rows(network_sweep, tmp_path, monkeypatch):
    """Adding ePIE and LSQML refinement to a finished network sweep: the network cells are
    reused, the iterative and refined cells computed, every output consistent; a second
    call recomputes nothing."""
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    src, argv = network_sweep
    out = tmp_path / "out"
    shutil.copytree(src, out)
    networks = _stamps(out)
    from ptycho_torch.studies import common as study  # where the studies call run_study

    def no_training(cfg):
        raise AssertionError(f"{cfg.model_id} was retrained")
    monkeypatch.setattr(study, "run_study", no_training)
    argv = [*argv[:argv.index("--iterative")], "--iterative", "epie", "--iterative-epochs", "4",
            "--heldout-every", "2", "--refine", "lsqml", "--refine-epochs", "4",
            "--output-dir", str(out)]
    assert ds.main(argv) == 0
    methods = ["pinn_fno", "pinn_fno@bestval", "pinn_fno@1e3", "ptychi_epie",
               "ptychi_epie@heldout", "ptychi_epie@oracle", "pinn_fno+lsqml",
               "pinn_fno+lsqml@heldout", "pinn_fno@1e3+lsqml", "pinn_fno@1e3+lsqml@heldout"]
    result = _check_outputs(out, methods)
    after = _stamps(out)
    assert {k: after[k] for k in networks} == networks
    for r in result["rows"]:
        if r["method"] == "ptychi_epie":
            assert r["epochs_completed"] == 4 and r["kind"] == "iterative"
        if "+" in r["method"]:   # refined: LSQML from the network row's object
            assert r["kind"] == "refined" and r["engine"] == "lsqml"
            assert r["initialized_from"] == r["method"].split("+")[0]
            assert r["n_parameters"] > 0 and r["total_time_s"] >= r["inference_time_s"]
        if r["method"].endswith("+lsqml"):
            assert r["epochs_completed"] == 4
        if r["method"].endswith(("@heldout", "@oracle")):
            sel = r["selection"]
            first = [0] if "+" in r["method"] else []   # epoch 0: the network's own object
            assert sel["epochs"] == first + [2, 4]
            assert r["epochs_completed"] == sel["selected_epoch"]
        if r["method"] == "ptychi_epie@heldout":
            assert sel["n_heldout"] == 2 and sel["n_kept"] == 23
            assert sel["selected_epoch"] == rules.select_epoch(sel["epochs"], sel["poisson_nll"])
    for name in ("amplitude_psnr", "phase_psnr"):
        c = result["crossover"][name]
        assert "ptychi_epie@oracle" not in c["iterative_methods"]
        assert c["network_methods"] == ["pinn_fno", "pinn_fno@bestval", "pinn_fno@1e3"]
        assert len(c["network_minus_iterative"]) == 2
    assert ds.main(argv) == 0
    assert _stamps(out) == after


# ------------------------------------------------------------------ decision rules
def test_select_epoch_on_a_synthetic_curve():
    epochs = [10, 20, 30, 40, 50]
    assert rules.select_epoch(epochs, [5.0, 3.0, 2.0, 2.5, 4.0]) == 30        # U-shaped
    assert rules.select_epoch(epochs, [5.0, 4.0, 3.0, 2.0, 1.0]) == 50        # still improving
    assert rules.select_epoch(epochs, [1.0, 2.0, 3.0, 4.0, 5.0]) == 10        # overfits at once
    assert rules.select_epoch(epochs, [3.0, 2.0, 2.0, 2.5, 2.0]) == 20        # ties: earliest
    assert rules.select_epoch(epochs, [math.nan, 3.0, math.inf, 1.0, 2.0]) == 40
    with pytest.raises(ValueError):
        rules.select_epoch(epochs, [math.nan] * 5)


def test_heldout_split_is_seeded_and_disjoint():
    kept, held = rules.heldout_split(25, 0.1, 42)
    assert held.size == 2 and kept.size == 23 and not set(kept) & set(held)
    assert sorted([*kept, *held]) == list(range(25))
    again = rules.heldout_split(25, 0.1, 42)
    assert np.array_equal(again[1], held) and not np.array_equal(rules.heldout_split(25, 0.1, 7)[1], held)
    assert rules.heldout_split(2, 0.01, 0)[1].size == 1 and rules.heldout_split(3, 1.0, 0)[0].size == 1


@pytest.mark.parametrize("nphotons", [1e2, 1e9])
def test_heldout_residual_prefers_the_true_object(tmp_path, nphotons):
    """A real scan and a known answer: of a flat object, the truth and a phase-scrambled
    truth, the held-out Poisson residual picks the truth at high and at low dose (the
    amplitude MAE does not at 1e2 photons: the square root of sparse counts is biased)."""
    from ptycho.datagen.grid_lines import GridLinesSpec
    from ptycho.datagen.grid_lines_files import simulate_grid_lines
    from ptycho.io import load_dataset
    from ptycho_torch.ptychi.scan import scan_for_ptychi
    paths = simulate_grid_lines(GridLinesSpec(object_size=64, N=32, n_lines=40, train_stride=4,
                                              test_stride=8, n_train_objects=1,
                                              n_test_objects=1, nphotons=nphotons), tmp_path)
    test = load_dataset(paths.test)
    scan = scan_for_ptychi(test)
    _, held = rules.heldout_split(scan.patterns.shape[0], 0.1, 42)
    gt = test.ground_truth
    noise = np.random.default_rng(0).standard_normal(gt.shape)
    objects = [np.full_like(gt, scan.amplitude_guess), gt,
               (gt * np.exp(0.3j * noise)).astype(np.complex64)]
    res = rules.heldout_residuals(scan, held, objects, test.probe)
    assert rules.select_epoch([1, 2, 3], res[rules.SELECTION_METRIC]) == 2
    if nphotons == 1e9:
        assert rules.select_epoch([1, 2, 3], res["amplitude_mae"]) == 2
        assert res["amplitude_mae"][1] < 0.01
    else:
        assert rules.select_epoch([1, 2, 3], res["amplitude_mae"]) != 2


@pytest.mark.iterative
def test_heldout_curve_of_a_real_run_keeps_improving_at_high_dose(tiny_data):
    """ePIE on the nearly noise-free tiny scan only improves: the rule takes the last epoch."""
    from ptycho_torch.ptychi import import_ptychi
    from ptycho_torch.ptychi.scan import scan_for_ptychi
    import_ptychi()
    _, test = tiny_data
    curve = rules.heldout_curve("epie", scan_for_ptychi(test), test.probe, epochs=8, every=4,
                             fraction=0.1, batch_size=None, device="cpu", seed=42)
    assert curve["epochs"] == [4, 8] and curve["n_heldout"] == 2
    assert curve["poisson_nll"][1] < curve["poisson_nll"][0]
    assert curve["selected_epoch"] == 8 and curve["time_s"] > 0


def test_crossover_interpolates_in_log_dose():
    doses = [1e2, 1e3, 1e4]
    c = rules.crossover(doses, [30.0, 25.0, 20.0], [20.0, 24.0, 40.0])   # differences 10, 1, -20
    assert c["dose"] == pytest.approx(10 ** (3 + 1 / 21), rel=1e-12) and c["reason"] is None
    assert c["network_minus_iterative"] == [10.0, 1.0, -20.0]
    c = rules.crossover(doses, [30.0, 20.0, 10.0], [20.0, 20.0, 20.0])   # equal at 1e3
    assert c["dose"] == pytest.approx(1e3) and c["crossings"] == [pytest.approx(1e3)]
    c = rules.crossover([1e2, 1e4], [10.0, 30.0], [20.0, 20.0])          # network rises past
    assert c["dose"] == pytest.approx(1e3)
    assert rules.crossover(doses, [1, 2, 3], [0, 0, 0]) == {
        "dose": None, "reason": "network above at every dose", "crossings": [],
        "network_minus_iterative": [1.0, 2.0, 3.0]}
    assert rules.crossover(doses, [0, 0, 0], [1, 2, 3])["reason"] == "network below at every dose"
    c = rules.crossover(doses, [30.0, math.nan, 20.0], [20.0, 24.0, 40.0])  # a missing dose is skipped
    assert c["dose"] == pytest.approx(10 ** (2 + 2 * 10 / 30))
    assert c["network_minus_iterative"][1] is None


def test_crossover_of_rows_uses_the_best_ground_truth_free_methods():
    from ptycho.study_metrics import StudyMetrics

    def row(method, dose, phase_psnr):
        m = StudyMetrics(model_id=method, kind="iterative" if "ptychi" in method else "network",
                         ground_truth=True, psnr=[20.0, phase_psnr], frc50=[0.1, 0.1])
        return cells.Row(method, dose, m, None)
    doses = [1e2, 1e4]
    rows = [row("pinn_a", 1e2, 20), row("pinn_b", 1e2, 22), row("pinn_a", 1e4, 21),
            row("pinn_b", 1e4, 19), row("ptychi_e", 1e2, 10), row("ptychi_e", 1e4, 31),
            row("ptychi_e@oracle", 1e2, 40), row("ptychi_e@oracle", 1e4, 40)]
    methods = ["pinn_a", "pinn_b", "ptychi_e", "ptychi_e@oracle"]
    c = report.crossovers(rows, doses, methods)["phase_psnr"]
    assert c["network_best"] == [22, 21] and c["iterative_best"] == [10, 31]
    assert c["dose"] == pytest.approx(10 ** (2 + 2 * 12 / 22))       # 12 -> -10
    assert c["iterative_methods"] == ["ptychi_e"]


def test_headline_has_the_best_row_of_each_kind_per_dose():
    """dose_study.png: per panel, the best network, the best ground-truth-free iterative and
    the best network + iteration row at each dose (oracle rows never count), and no more."""
    from ptycho.plotting import dose_curves_figure
    from ptycho.study_metrics import StudyMetrics

    def row(method, dose, phase_psnr):
        m = StudyMetrics(model_id=method, kind="iterative" if "ptychi" in method else "network",
                         ground_truth=True, psnr=[20.0, phase_psnr], frc50=[0.1, 0.1])
        return cells.Row(method, dose, m, None)
    doses = [1e2, 1e4]
    values = {"pinn_a": (20, 21), "pinn_b": (22, 19), "ptychi_e": (10, 31),
              "ptychi_e@heldout": (12, 30), "ptychi_e@oracle": (40, 40),
              "pinn_a+e": (23, 33), "pinn_b+e@heldout": (24, 30)}
    rows = [row(m, d, v[i]) for m, v in values.items() for i, d in enumerate(doses)]
    head = report.headline_panels(rows, doses, list(values))
    assert list(head) == [label for label, *_ in rules.DOSE_METRICS]
    assert head["phase PSNR (dB)"] == {
        "best network (of 2 rows)": [22, 21],
        "best ground-truth-free iterative (of 2 rows)": [12, 31],
        "best network + iteration (of 2 rows)": [24, 33]}
    assert head["amplitude PSNR (dB)"]["best network (of 2 rows)"] == [20, 20]
    fig = dose_curves_figure(doses, head)
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3, 3, 3]
    only_nets = report.headline_panels(rows[:4], doses, ["pinn_a", "pinn_b"])
    assert list(only_nets["phase PSNR (dB)"]) == ["best network (of 2 rows)"]


def test_loss_rule_transfer_default_and_cell_configs(tmp_path):
    assert rules.loss_for_dose(1e5) == "poisson" and rules.loss_for_dose(1e6) == "mae"
    assert [ds.format_dose(v) for v in (1e2, 1e3, 2.5e4, 1e9, 1234.0)] == [
        "1e2", "1e3", "2.5e4", "1e9", "1.234e3"]
    dc = ds.config_from_argv(["--preset", "quick", "--iterative", "none",
                              "--output-dir", str(tmp_path / "o")])
    assert dc.doses == (1e2, 1e3, 1e4, 1e5, 1e9) and dc.transfer_from == 1e4
    assert dc.methods.architectures == ("hybrid", "fno") and dc.loss is None
    cfg = dc.study(1e3, "fno")
    assert (cfg.simulation.nphotons, cfg.training.loss, cfg.model.architecture) == (1e3, "poisson", "fno")
    assert cfg.run.output_dir == str(tmp_path / "o" / "dose_1e3")
    assert cfg.run.cache_dir == str(tmp_path / "o" / "datasets")
    assert dc.study(1e9).training.loss == "mae"
    assert cfg.training.learning_rate == 2e-3  # from the preset
    dc = ds.config_from_argv(["--loss", "mae", "--nphotons-list", "1e9,1e2", "--iterative", ""])
    assert dc.doses == (1e2, 1e9) and dc.study(1e2).training.loss == "mae"
    assert dc.transfer_from == 1e2 and dc.base.run.output_dir == "outputs/dose_study"
    assert ds.config_from_argv(["--nphotons-list", "1e5,1e9"]).transfer_from is None
    assert ds.config_from_argv(["--transfer-from", "1e9"]).transfer_from == 1e9
    assert ds.config_from_argv(["--transfer-from", "none"]).transfer_from is None
    assert ds.config_from_argv(["--iterative", "lsqml,epie"]).methods.iterative == ("lsqml", "epie")


@pytest.mark.parametrize("args,needle", [
    (["--nphotons-list", "1e3,1e3"], "--nphotons-list lists a dose twice"),
    (["--nphotons-list", "1e3,-5"], "--nphotons-list: -5 is out of range"),
    (["--nphotons-list", "lots"], "--nphotons-list: 'lots' is not a number"),
    (["--transfer-from", "5e3"], "--transfer-from=5e3 is not in --nphotons-list"),
    (["--heldout-fraction", "0.9"], "--heldout-fraction=0.9 is out of range"),
    (["--heldout-every", "0"], "--heldout-every=0 is out of range"),
    (["--nphotons", "1e3"], "unknown flag '--nphotons'; did you mean --nphotons-list?"),
    (["--architectures", "fno,unet"], "--architectures: 'unet' is not an architecture"),
    (["--iterative", "dm"], "--iterative: iterative engine 'dm' is not supported"),
    (["--train-npz", "x.npz"], "the dose study simulates its datasets"),
    (["--fno-modes", "40"], "ModelConfig.fno_modes=40 exceeds N//2=32"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    rc = ds.main([*args, "--iterative", "none", "--output-dir", str(out)] if "--iterative" not in args
                 else [*args, "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert needle in err
    assert not out.exists()


def test_script_is_thin():
    text = (REPO / "scripts/studies/dose_study.py").read_text()
    assert len(text.splitlines()) < 80 and "from ptycho_torch.studies.commands import dose_main" in text


@pytest.mark.iterative
def test_chunked_ptychi_run_equals_an_uninterrupted_one(tiny_data):
    """The fixed, held-out and oracle rows are checkpoints of one run continued in chunks."""
    from ptycho_torch import ptychi
    from ptycho_torch.ptychi import engine as ptychi_engine
    from ptycho_torch.ptychi import scan as ptychi_scan
    ptychi.import_ptychi()
    scan = ptychi_scan.scan_for_ptychi(tiny_data[1])
    o = ptychi_engine.PtychiOptions("epie", epochs=3, device="cpu", seed=5)
    whole, _ = ptychi_engine.reconstruct(scan, o)
    res, states = ptychi_engine.reconstruct(scan, o, every=2)
    assert [e for e, _, _ in states] == [2, 3] and states[0][2] < states[1][2] == res.time_s
    np.testing.assert_array_equal(res.obj, whole.obj)
    np.testing.assert_array_equal(states[1][1], whole.obj)


def test_line_styles_colour_by_base_method():
    """A rule row shares its base method's colour; 20 bases get 20 distinct colours."""
    from ptycho_torch.studies.dose.report import line_styles
    bases = [f"pinn_a{i}" for i in range(18)] + ["ptychi_epie", "pinn_a0+epie"]
    methods = bases + ["ptychi_epie@heldout", "ptychi_epie@oracle", "pinn_a0@bestval",
                       "pinn_a0+epie@heldout"]
    st = line_styles(methods)
    assert len({st[m]["color"] for m in bases}) == 20
    assert st["ptychi_epie@heldout"]["color"] == st["ptychi_epie"]["color"]
    assert st["pinn_a0@bestval"]["color"] == st["pinn_a0"]["color"]
    assert st["pinn_a0+epie@heldout"]["color"] == st["pinn_a0+epie"]["color"]
    assert st["ptychi_epie@heldout"]["ls"] == "-." and st["pinn_a0@bestval"]["ls"] == ":"


# ------------------------------------------------------------------ over seeds
def test_seeds_run_one_sweep_per_seed_on_one_dataset_cache(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*TINY_FLAGS, "--iterative", "none", "--transfer-from", "none", "--seeds", "3,5",
            "--output-dir", str(out)]
    assert ds.main(argv) == 0
    assert "dose study over seeds:" in capsys.readouterr().out
    per_seed = {s: json.loads((out / f"seed_{s}" / "dose_study.json").read_text())
                for s in (3, 5)}
    assert {s: r["settings"]["study"]["training"]["seed"] for s, r in per_seed.items()} == {
        3: 3, 5: 5}
    # one cache: the datasets were simulated once, for both seeds
    assert len(list((out / "datasets").glob("*/test.npz"))) == 2
    assert not list(out.glob("seed_*/datasets"))
    psnr = {s: {(r["method"], r["nphotons"]): r["psnr"][1] for r in res["rows"]}
            for s, res in per_seed.items()}
    assert psnr[3][("pinn_fno", 1e9)] != psnr[5][("pinn_fno", 1e9)]  # the seed reached training
    summary = json.loads((out / "seeds.json").read_text())
    net = summary["families"]["phase_psnr"]["network"]
    for i, d in enumerate((1e3, 1e9)):
        best = {s: max(psnr[s][("pinn_fno", d)], psnr[s][("pinn_fno@bestval", d)]) for s in (3, 5)}
        assert net["per_seed"]["3"][i] == pytest.approx(best[3])
        assert net["mean"][i] == pytest.approx((best[3] + best[5]) / 2)
        assert (net["min"][i], net["max"][i]) == (min(best.values()), max(best.values()))
    assert summary["crossover"]["phase_psnr"]["n_crossing"] == 0
    assert summary["crossover"]["phase_psnr"]["reasons"] == {
        "3": "needs network and iterative rows", "5": "needs network and iterative rows"}
    md = (out / "seeds.md").read_text()
    assert "| best network | " in md and "| phase PSNR (dB) | none (needs network" in md
    import matplotlib.image as mpimg
    img = mpimg.imread(out / "dose_study_seeds.png")
    assert img.ndim == 3 and float(img[..., :3].std()) > 0.05


def test_crossover_summary_over_seeds():
    from ptycho_torch.studies.dose import seeds as dseeds

    def result(phase_dose):
        cross = {name: {"dose": None, "reason": "network below at every dose"}
                 for *_, name in rules.DOSE_METRICS}
        cross["phase_psnr"] = ({"dose": phase_dose, "reason": None} if phase_dose
                               else {"dose": None, "reason": "network above at every dose"})
        return {"crossover": cross}
    c = dseeds.crossover_summary([1, 7, 42], [result(1e3), result(1e4), result(None)])
    phase = c["phase_psnr"]
    assert phase["per_seed"] == {1: 1e3, 7: 1e4, 42: None}
    assert phase["reasons"] == {42: "network above at every dose"}
    assert phase["n_crossing"] == 2 and phase["geometric_mean"] == pytest.approx(10 ** 3.5)
    assert (phase["min"], phase["max"]) == (1e3, 1e4)
    assert c["amplitude_psnr"]["n_crossing"] == 0 and c["amplitude_psnr"]["geometric_mean"] is None


def test_dose_curves_figure_draws_bands_and_spans():
    from ptycho.plotting import dose_curves_figure
    panels = {"p": {"a": [1.0, 2.0], "b": [0.5, 1.5]}}
    fig = dose_curves_figure([1e2, 1e4], panels, {"p": 1e3}, bands={"p": {"a": ([0.8, 1.9],
                             [1.2, 2.1])}}, spans={"p": (5e2, 2e3)})
    ax = fig.axes[0]
    assert len(ax.collections) == 1       # one band, for line a only
    assert len(ax.patches) == 1           # the crossover span
    np.testing.assert_allclose(ax.patches[0].get_x(), 5e2)


@pytest.mark.parametrize("args,needle", [
    (["--seed", "1", "--seeds", "1,2"], "--seed and --seeds were both given"),
    (["--seeds", "3"], "--seeds '3' gives 1 seed(s) (allowed: two or more"),
    (["--seeds", "1,x"], "--seeds: 'x' is not a seed"),
])
def test_seeds_refusals(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    assert ds.main([*args, "--iterative", "none", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and not out.exists()


def test_dose_options_refuse_in_python_as_on_the_command_line():
    """DoseOptions validates when constructed: the flags' refusals, for values given in Python
    too; the transfer dose stays what was asked (resolved by the sweep's config)."""
    o = DoseOptions(nphotons_list=(1e9, 1e3), architectures=("fno",), transfer_from="none")
    assert o.nphotons_list == (1e3, 1e9) and o.iterative == ("lsqml-poisson", "epie")
    assert DoseConfig(base=from_preset("quick"), options=o).transfer_from is None
    assert DoseConfig(base=from_preset("quick"), options=DoseOptions()).transfer_from == 1e4
    for kwargs, message in [
        (dict(architectures=("fno", "unet")),
         "--architectures: 'unet' is not an architecture (allowed: cnn, fno, hybrid)"),
        (dict(nphotons_list=(1e3, 1e3)), "--nphotons-list lists a dose twice (1000.0,1000.0)"),
        (dict(transfer_from="5e3"), "--transfer-from=5e3 is not in --nphotons-list (allowed: "
                                    "one of 1e2, 1e3, 1e4, 1e5, 1e9, or none)"),
        (dict(heldout_every=0), "--heldout-every=0 is out of range (allowed: >= 1)"),
    ]:
        with pytest.raises(StudyError) as err:
            DoseOptions(**kwargs)
        assert str(err.value) == message
