"""The one config family (ptycho.config.config): validation, flat view, presets, CLI.

Every bad value gives a one-line ``ConfigError`` naming ``<Owner>.<field>``, the value and
what is allowed; the error carries ``owner`` and ``field`` so the CLI names the flag.
"""
import dataclasses
import json
import re
import typing
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from ptycho.config import cli
from ptycho.config import choices
from ptycho.config import presets
from ptycho.config import study_config
from ptycho.config.options import StudyOptions
from ptycho.config.record import described
from ptycho.config.config import (
    DataConfig,
    InferenceConfig,
    ModelConfig,
    RunConfig,
    SimulationConfig,
    TrainingConfig,
)
from ptycho.config.presets import from_preset
from ptycho.config.reconstruct_config import ReconstructConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import ConfigError, StudyError


def test_defaults_follow_the_reference():
    m, t, i, s = ModelConfig(), TrainingConfig(), InferenceConfig(), SimulationConfig()
    assert (m.fno_modes, m.fno_width, m.fno_blocks, m.fno_cnn_blocks) == (12, 32, 4, 2)
    assert (m.N, m.gridsize, m.generator_output_mode) == (64, 1, "real_imag")
    assert (t.batch_size, t.learning_rate, t.loss) == (16, 1e-3, "mae")
    assert (t.max_steps, t.max_train_minutes, t.num_nodes) == (0, 0.0, 1)
    assert s.nphotons == 1e9 and not hasattr(t, "nphotons")  # nphotons is a simulation setting
    assert i.infer_batch_size == 128 and i.stitch == "positions" and i.crop_for(64) == 32
    assert ModelConfig(gridsize=2).channels == 4
    assert (DataConfig().input_scale, DataConfig().photon_scale, DataConfig().probe_modes) == (1.0, 1.0, 1)


def test_fno_modes_message_names_field_value_and_limit():
    with pytest.raises(ConfigError, match=re.escape(
            "ModelConfig.fno_modes=40 exceeds N//2=32 for N=64 (allowed: 1..32)")) as exc:
        ModelConfig(fno_modes=40)
    assert (exc.value.owner, exc.value.field) == ("ModelConfig", "fno_modes")
    assert ModelConfig(N=128, fno_modes=40).fno_modes == 40


MODEL_BAD = [
    ("N", 48, "ModelConfig.N=48 is not allowed (choose one of: 16, 32, 64, 128, 256)"),
    ("gridsize", 3, "ModelConfig.gridsize=3 is not allowed (choose one of: 1, 2)"),
    ("architecture", "unet",
     "ModelConfig.architecture='unet' is not allowed (choose one of: 'cnn', 'fno', 'hybrid')"),
    ("fno_modes", 0, "ModelConfig.fno_modes=0 is out of range (allowed: >= 1)"),
    ("fno_modes", 2.5, "ModelConfig.fno_modes=2.5 must be an integer"),
    ("fno_width", 2, "ModelConfig.fno_width=2 is out of range (allowed: 4..512)"),
    ("fno_blocks", 0, "ModelConfig.fno_blocks=0 is out of range (allowed: 1..16)"),
    ("fno_cnn_blocks", -1, "ModelConfig.fno_cnn_blocks=-1 is out of range (allowed: 0..16)"),
    ("n_filters_scale", 0, "ModelConfig.n_filters_scale=0 is out of range (allowed: 1..16)"),
    ("generator_output_mode", "polar", "ModelConfig.generator_output_mode='polar' is not allowed"),
    ("input_transform", "log", "ModelConfig.input_transform='log' is not allowed (choose one of: "
                               "'none', 'sqrt', 'log1p')"),
    ("overlap_constraint", "yes", "ModelConfig.overlap_constraint='yes' must be true or false"),
    ("overlap_weight", 1.5, "ModelConfig.overlap_weight=1.5 is out of range (allowed: 0..1)"),
    ("overlap_weight", 0.5, "ModelConfig.overlap_weight=0.5 has no effect with gridsize=1 (it "
                            "weighs the gridsize-2 overlap constraint)"),
]

TRAINING_BAD = [
    ("batch_size", 0, "TrainingConfig.batch_size=0 is out of range (allowed: 1..65536)"),
    ("epochs", 0, "TrainingConfig.epochs=0 is out of range (allowed: 1..100000)"),
    ("max_steps", -1, "TrainingConfig.max_steps=-1 is out of range (allowed: >= 0)"),
    ("max_train_minutes", -1.0, "TrainingConfig.max_train_minutes=-1.0 is out of range (allowed: 0..1e+06)"),
    ("learning_rate", -1e-3, "TrainingConfig.learning_rate=-0.001 is out of range (allowed: > 0 and <= 1)"),
    ("loss", "mse", "TrainingConfig.loss='mse' is not allowed (choose one of: 'mae', 'poisson')"),
    ("seed", -1, "TrainingConfig.seed=-1 is out of range"),
    ("optimizer", "sgd", "TrainingConfig.optimizer='sgd' is not allowed"),
    ("weight_decay", -0.1, "TrainingConfig.weight_decay=-0.1 is out of range (allowed: 0..1)"),
    ("scheduler", "cosine", "TrainingConfig.scheduler='cosine' is not allowed"),
    ("plateau_factor", 1.0, "TrainingConfig.plateau_factor=1.0 is out of range"),
    ("plateau_patience", -1, "TrainingConfig.plateau_patience=-1 is out of range"),
    ("min_lr", -1.0, "TrainingConfig.min_lr=-1.0 is out of range"),
    ("val_fraction", 0.0, "TrainingConfig.val_fraction=0.0 is out of range (allowed: > 0 and <= 0.5)"),
    ("val_fraction", 0.9, "TrainingConfig.val_fraction=0.9 is out of range"),
    ("early_stopping_patience", -2, "TrainingConfig.early_stopping_patience=-2 is out of range"),
    ("max_train_patterns", -5, "TrainingConfig.max_train_patterns=-5 is out of range"),
    ("device", "tpu", "TrainingConfig.device='tpu' is not allowed (choose one of: 'auto', 'cpu', 'cuda')"),
    ("devices", 0, "TrainingConfig.devices=0 is out of range"),
    ("num_nodes", 2, "TrainingConfig.num_nodes=2 needs strategy='ddp' (allowed with strategy='auto': 1)"),
    ("strategy", "fsdp", "TrainingConfig.strategy='fsdp' is not allowed"),
    ("deterministic", 1, "TrainingConfig.deterministic=1 must be true or false"),
]

SIMULATION_BAD = [
    ("nphotons", 0, "SimulationConfig.nphotons=0 is out of range (allowed: > 0"),
    ("nphotons", float("nan"), "SimulationConfig.nphotons=nan must be a finite number"),
    ("object_size", 8, "SimulationConfig.object_size=8 is out of range (allowed: 16..8192)"),
    ("test_stride", 0, "SimulationConfig.test_stride=0 is out of range (allowed: 1..1024)"),
    ("with_phase", 0, "SimulationConfig.with_phase=0 must be true or false"),
]

RUN_BAD = [
    ("output_dir", "  ", "RunConfig.output_dir is empty (allowed: a directory path)"),
    ("data_unit", "photons", "RunConfig.data_unit='photons' is not allowed (choose one of: "
                             "'auto', 'counts', 'amplitude')"),
    ("snapshot_every", -1, "RunConfig.snapshot_every=-1 is out of range"),
    ("num_threads", -1, "RunConfig.num_threads=-1 is out of range"),
    ("resume", "no", "RunConfig.resume='no' must be true or false"),
    ("preset", "fast", "RunConfig.preset='fast' is not allowed"),
]


def _refused(cls, field, value, message):
    with pytest.raises(ConfigError) as info:
        cls(**{field: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert info.value.field == field and info.value.owner == cls.__name__


@pytest.mark.parametrize("field,value,message", MODEL_BAD)
def test_model_config_errors(field, value, message):
    _refused(ModelConfig, field, value, message)


@pytest.mark.parametrize("field,value,message", TRAINING_BAD)
def test_training_config_errors(field, value, message):
    _refused(TrainingConfig, field, value, message)


@pytest.mark.parametrize("field,value,message", SIMULATION_BAD)
def test_simulation_config_errors(field, value, message):
    _refused(SimulationConfig, field, value, message)


@pytest.mark.parametrize("field,value,message", RUN_BAD)
def test_run_config_errors(field, value, message):
    _refused(RunConfig, field, value, message)


def test_inference_and_data_config_errors():
    with pytest.raises(ValueError, match=re.escape("InferenceConfig.infer_batch_size=0 is out of range")):
        InferenceConfig(infer_batch_size=0)
    with pytest.raises(ValueError, match="must be an integer"):
        InferenceConfig(infer_batch_size=True)
    with pytest.raises(ValueError, match=re.escape("InferenceConfig.stitch='grid' is not allowed")):
        InferenceConfig(stitch="grid")
    with pytest.raises(ValueError, match=re.escape("DataConfig.input_scale=0.0 is out of range")):
        DataConfig(input_scale=0.0)
    with pytest.raises(ValueError, match=re.escape("DataConfig.probe_modes=0 is out of range")):
        DataConfig(probe_modes=0)


def test_configs_are_frozen_and_study_checks_types():
    m = ModelConfig()
    with pytest.raises(FrozenInstanceError):
        m.fno_width = 64  # frozen
    with pytest.raises(ConfigError, match=re.escape("StudyConfig.model must be a ModelConfig")):
        StudyConfig(model=TrainingConfig())
    assert StudyConfig().to_dict()["model"]["fno_width"] == 32


# ------------------------------------------------------------------ cross-field rules
@pytest.mark.parametrize("values,message,field", [
    (dict(stitch_crop=100), "InferenceConfig.stitch_crop=100 exceeds N=64 (allowed: 0..64)",
     "stitch_crop"),
    (dict(stitch="tiles", gridsize=2), "InferenceConfig.stitch='tiles' needs gridsize 1 (allowed "
     "at gridsize 2: 'positions')", "stitch"),
    (dict(test_stride=100), "SimulationConfig.test_stride=100 exceeds N=64 (allowed: 1..64; "
     "stitched tiles are test_stride wide)", "test_stride"),
    (dict(object_size=32), "SimulationConfig.object_size=32 is smaller than N=64 (allowed: >= 64)",
     "object_size"),
    (dict(test_npz="t.npz"), "RunConfig.test_npz needs --train-npz too (allowed: both, "
     "--train-npz alone, or neither to simulate)", "test_npz"),
    (dict(gridsize=2, overlap_constraint=False, overlap_weight=0.0),
     "ModelConfig.overlap_weight=0 has no effect with overlap_constraint=false", "overlap_weight"),
    (dict(N=32, object_size=48, gridsize=2, test_stride=20, fno_modes=8),
     "GridLinesSpec.test_stride=20 leaves fewer than gridsize=2 scan positions per side", "test_stride"),
    (dict(stitch="tiles", stitch_weighting="probe"), "InferenceConfig.stitch_weighting='probe' "
     "needs stitch='positions' (tiles do not overlap; allowed with stitch='tiles': 'uniform')",
     "stitch_weighting"),
    (dict(train_npz="s.npz", k_nearest=6), "TrainingConfig.k_nearest=6 has no effect at gridsize 1 "
     "(it draws the neighbour groups of gridsize 2; allowed at gridsize 1: 0)", "k_nearest"),
    (dict(train_npz="s.npz", groups_per_position=7), "TrainingConfig.groups_per_position=7 has no "
     "effect at gridsize 1 (it draws the neighbour groups of gridsize 2; allowed at gridsize 1: 1)",
     "groups_per_position"),
    (dict(gridsize=2, groups_per_position=2), "TrainingConfig.groups_per_position=2 needs a "
     "training scan file (--train-npz); the simulated scans are grouped on their grid (allowed "
     "without --train-npz: 1)", "groups_per_position"),
    (dict(train_npz="s.npz", gridsize=2, k_nearest=2), "TrainingConfig.k_nearest=2 is fewer than "
     "the C-1 = 3 neighbours of a group at gridsize 2 (allowed: 0 or 3..64)", "k_nearest"),
    (dict(train_npz="s.npz", gridsize=2, groups_per_position=7), "TrainingConfig."
     "groups_per_position=7 exceeds the 1 distinct group(s) per position of k_nearest=0 at "
     "gridsize 2 (allowed: 1..1, or raise k_nearest)", "groups_per_position"),
])
def test_cross_field_refusals(values, message, field):
    with pytest.raises(ConfigError) as exc:
        StudyConfig().replace(**values)
    assert str(exc.value).startswith(message) and exc.value.field == field


def test_the_upstream_grouping_draw_is_allowed_at_gridsize_2_on_a_scan_file():
    cfg = StudyConfig().replace(train_npz="s.npz", gridsize=2, k_nearest=6, groups_per_position=7)
    assert (cfg.training.k_nearest, cfg.training.groups_per_position) == (6, 7)
    assert StudyConfig().replace(stitch_weighting="probe").inference.stitch_weighting == "probe"


def test_train_npz_alone_is_allowed_and_skips_the_simulation_checks():
    cfg = StudyConfig().replace(train_npz="train.npz")
    assert cfg.run.test_npz is None and not cfg.simulated  # the test scan defaults to it
    # geometry of the simulation is not checked for user data
    assert StudyConfig().replace(train_npz="a.npz", object_size=32).simulation.object_size == 32
    assert StudyConfig().replace(train_npz="a.npz", test_npz="b.npz").run.test_npz == "b.npz"


# ------------------------------------------------------------------ flat view
def test_flat_view_round_trips_and_names_are_unique():
    cfg = StudyConfig().replace(fno_width=48, epochs=3, nphotons=1e6, stitch="tiles",
                                output_dir="x", max_steps=7)
    flat = cfg.flat()
    assert len(flat) == sum(len(fields(c)) for c in study_config.SECTIONS.values())
    assert StudyConfig.from_flat(flat) == cfg
    assert StudyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert (cfg.model.fno_width, cfg.training.epochs, cfg.simulation.nphotons,
            cfg.inference.stitch, cfg.run.output_dir, cfg.training.max_steps) == (
        48, 3, 1e6, "tiles", "x", 7)
    # replace keeps everything else; from_flat with a base layers values on top of it
    assert cfg.replace(epochs=5).flat() == {**flat, "epochs": 5}
    base = StudyConfig().replace(fno_modes=8)
    assert StudyConfig.from_flat({"fno_width": 24}, base=base).model.fno_modes == 8
    owner = study_config.flat_owner()
    assert owner["nphotons"] == "simulation" and owner["max_steps"] == "training"
    assert cfg.model_id == "pinn_hybrid" and cfg.simulated


def test_unknown_keys_are_refused_with_a_did_you_mean():
    with pytest.raises(ValueError, match=re.escape("unknown config key 'fno_widht'; did you mean "
                                                   "'fno_width'")):
        StudyConfig().replace(fno_widht=64)
    with pytest.raises(ValueError, match=re.escape("unknown StudyConfig section 'modle'; did you "
                                                   "mean 'model'")):
        StudyConfig.from_dict({"modle": {}})
    with pytest.raises(ValueError, match=re.escape("unknown TrainingConfig key 'epoch'; did you "
                                                   "mean 'epochs'")):
        TrainingConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match=r"^unknown config key 'banana' \(valid keys: N, "):
        StudyConfig.from_flat({"banana": 1})


def test_every_field_has_help_and_valid_choice_defaults():
    n_choices = 0
    for section, f in study_config.leaf_fields():
        assert f.metadata.get("help"), f"{section}.{f.name} has no help text"
        if "choices" in f.metadata:
            assert f.default in f.metadata["choices"], f.name
            n_choices += 1
    assert n_choices >= 10  # the enumerated fields (architecture, loss, stitch, ...) were seen


def test_resume_and_no_effect_sets_name_real_fields():
    names = set(StudyConfig().flat())
    assert study_config.NO_EFFECT_ON_RESULT <= study_config.RESUME_MAY_CHANGE <= names
    # settings that change the trained numbers may never change on resume
    for k in ("learning_rate", "seed", "fno_width", "loss", "nphotons", "train_npz", "N"):
        assert k not in study_config.RESUME_MAY_CHANGE


def test_to_dict_gives_plain_python_values():
    """A NumPy number passes a float field's check (np.float64 is a float) but is written as
    the Python number: the dicts go into JSON and into weights-only model checkpoints."""
    from ptycho.config.record import plain
    cfg = StudyConfig().replace(learning_rate=np.float64(2e-3), nphotons=np.float64(1e6),
                                output_dir=np.str_("out"))
    d = cfg.to_dict()
    values = [v for section in d.values() for v in section.values()]
    assert all(v is None or type(v) in (bool, int, float, str) for v in values)
    assert d["training"]["learning_rate"] == 2e-3 and d["run"]["output_dir"] == "out"
    assert StudyConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert plain({"a": (np.int64(3), np.arange(2))}) == {"a": (3, [0, 1])}
    with pytest.raises(TypeError, match="a object is not a plain value"):
        plain({"a": object()})


# ------------------------------------------------------------------ presets
def test_presets_and_explicit_values():
    for name, values in presets.PRESET_VALUES.items():
        cfg = from_preset(name)
        assert cfg.run.preset == name
        assert all(cfg.flat()[k] == v for k, v in values.items()), name
    quick = from_preset("quick")
    # a budget in steps only: a wall-clock cap would make a seed's result load-dependent
    assert quick.training.max_train_minutes == 0 and quick.model.input_transform == "log1p"
    assert quick.training.min_steps == 2000
    paper = from_preset("paper", epochs=3)
    assert (paper.model.N, paper.training.learning_rate, paper.training.seed) == (128, 2e-4, 3)
    assert paper.training.epochs == 3  # explicit wins
    assert from_preset() == StudyConfig()
    assert tuple(presets.PRESET_VALUES) == choices.PRESETS


# ------------------------------------------------------------------ generated CLI
def _parser():
    return cli.build_parser("prog", "description")


def test_every_leaf_field_has_exactly_one_flag_and_back():
    parser = _parser()
    options = [(a.dest, o) for a in parser._actions for o in a.option_strings
               if o.startswith("--") and a.dest not in ("help", "config")]
    by_dest = {}
    for dest, opt in options:
        by_dest.setdefault(dest, []).append(opt)
    leaves = [f.name for _, f in study_config.leaf_fields()]
    assert sorted(by_dest) == sorted(leaves)  # a flag per field, and no flag without a field
    for name in leaves:
        f = cli.flag(name)
        kind = next(fl.type for _, fl in study_config.leaf_fields() if fl.name == name)
        expected = [f, "--no-" + f[2:]] if kind in ("bool", "bool | None") else [f]
        assert sorted(by_dest[name]) == sorted(expected), name
    # and exactly one argparse action per field
    assert sorted(a.dest for a in parser._actions if a.dest in leaves) == sorted(leaves)
    text = parser.format_help()
    assert "--infer-batch-size" in text and "--fno-width" in text and "--config" in text


def _help_sections(text: str) -> dict[str, list[str]]:
    """``{heading: [flags]}`` of an argparse help text (a heading: an unindented line ending
    in ':'; a flag: an indented line's first '--' option)."""
    sections, heading = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            heading = line[:-1]
            sections[heading] = []
        elif heading and line.startswith("  -"):
            sections[heading].append(line.split()[0].rstrip(","))
    return sections


def test_help_lists_the_flags_in_one_group_per_concern(capsys):
    sections = _help_sections(_parser().format_help())
    assert sections["options"] == ["-h"]          # every flag sits in a group
    where = {f: h for h, flags in sections.items() for f in flags}
    expected = {"--preset": "starting values", "--config": "starting values",
                "--train-npz": "data", "--probe-npz": "data", "--cache-dir": "data",
                "--object-size": "simulated", "--nphotons": "simulated",
                "--fno-width": "model", "--N": "model", "--probe-update": "probe",
                "--epochs": "training", "--learning-rate": "training",
                "--stitch": "inference", "--infer-batch-size": "inference",
                "--output-dir": "output and run", "--resume": "output and run"}
    for f, start in expected.items():
        assert where[f].startswith(start), (f, where[f])
    leaves = {cli.flag(f.name) for _, f in study_config.leaf_fields()}
    assert leaves <= set(where) and len(where) == len(leaves) + 2   # + -h, --config
    # ptycho-reconstruct's flags: its inputs, the refinement, the output
    text = cli.build_parser("prog", "d", sections={"reconstruct": ReconstructConfig,
                                                   "inference": InferenceConfig},
                            config_flag=False).format_help()
    where = {f: h for h, flags in _help_sections(text).items() for f in flags}
    assert [where[f].split(":")[0] for f in ("--checkpoint", "--data", "--refine",
                                             "--refine-epochs", "--output-dir", "--stitch")] \
        == ["data", "data", "refinement after the network (Pty-chi)",
            "refinement after the network (Pty-chi)", "output and run", "inference and stitching"]


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_help_shows_the_value_of_the_preset_on_the_command_line(preset, capsys):
    defaults = {f.name: f.default for _, f in study_config.leaf_fields()}
    for argv in (["--preset", preset, "--help"], [f"--preset={preset}", "--help"]):
        with pytest.raises(SystemExit) as info:
            cli.config_from_argv(argv)
        assert info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for key, value in presets.PRESET_VALUES[preset].items():
            assert f"(default: {defaults[key]!r}; {preset}: {value!r})" in text, key
        assert text.count(f"; {preset}: ") == len(presets.PRESET_VALUES[preset])
    if preset == "quick":
        assert "maximum training epochs (default: 50; quick: 7)" in text
    with pytest.raises(SystemExit):
        cli.config_from_argv(["--help"])
    text = capsys.readouterr().out
    assert "; quick: " not in text and "; paper: " not in text
    assert "maximum training epochs (default: 50)" in " ".join(text.split())


def test_flags_parse_into_the_config_with_the_right_types():
    parser = _parser()
    cfg = cli.config_from_values(cli.parse_known(parser, [
        "--fno-width", "24", "--learning-rate", "0.01", "--no-progress-bar", "--stitch", "tiles",
        "--train-npz", "a.npz", "--nphotons", "1e6", "--max-steps", "5"]))
    assert cfg.model.fno_width == 24 and isinstance(cfg.model.fno_width, int)
    assert cfg.training.learning_rate == 0.01 and cfg.simulation.nphotons == 1e6
    assert cfg.run.progress_bar is False and cfg.inference.stitch == "tiles"
    assert cfg.run.train_npz == "a.npz" and cfg.training.max_steps == 5
    assert cli.config_from_argv([]) == StudyConfig()  # nothing given: every default
    paper = cli.config_from_argv(["--preset", "paper", "--epochs", "3"])
    assert paper.model.N == 128 and paper.training.epochs == 3


@pytest.mark.parametrize("argv,prefix,facts", [
    (["--fno-widht", "8"], "unknown flag '--fno-widht'; did you mean --fno-width?", ()),
    (["--learning", "0.1"], "unknown flag '--learning'; did you mean --learning-rate?", ()),
    (["fno"], "unexpected argument 'fno' (allowed: --flag VALUE pairs only; see --help)", ()),
    (["--epochs", "2.5"], "argument --epochs:", ("2.5", "(run with --help to list the flags)")),
    (["--architecture", "unet"], "argument --architecture:",
     ("unet", "cnn", "fno", "hybrid", "(run with --help to list the flags)")),
])
def test_cli_refusals_are_one_line(argv, prefix, facts):
    with pytest.raises(StudyError) as exc:
        cli.config_from_argv(argv)
    line = str(exc.value)
    assert line.startswith(prefix) and "\n" not in line, line
    for fact in facts:  # argparse words the middle; the project's prefix and the facts stay
        assert fact in line, (fact, line)


def test_flag_hint_uses_the_error_field_not_its_text():
    err = ConfigError("anything at all", "ModelConfig", "fno_width")
    assert cli.flag_hint(err) == "anything at all [flag --fno-width]"
    assert cli.flag_hint(ValueError("fno_width is mentioned")) == "fno_width is mentioned"
    assert cli.flag_hint(ConfigError("x [flag --y]", "M", "fno_width")) == "x [flag --y]"
    with pytest.raises(ConfigError) as exc:
        cli.config_from_argv(["--max-steps", "-3"])
    assert cli.flag_hint(exc.value).endswith("[flag --max-steps]")


# ------------------------------------------------------------------ --config PATH
def _write_config(tmp_path, cfg: StudyConfig, **extra) -> str:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"study": cfg.to_dict(), "data_config": {}, **extra}))
    return str(p)


def test_config_file_round_trip_and_explicit_flags_win(tmp_path):
    saved = StudyConfig().replace(fno_width=40, epochs=9, nphotons=1e7, seed=5)
    path = _write_config(tmp_path, saved)
    assert cli.config_from_argv(["--config", path]) == saved
    again = cli.config_from_argv(["--config", path, "--epochs", "2", "--no-progress-bar"])
    assert again == saved.replace(epochs=2, progress_bar=False)
    assert again.model.fno_width == 40  # the file's value where no flag was given


def test_config_file_refusals(tmp_path):
    bad = StudyConfig().to_dict()
    bad["model"]["fno_widht"] = 8
    p = tmp_path / "typo.json"
    p.write_text(json.dumps({"study": bad}))
    with pytest.raises(StudyError) as exc:
        cli.config_from_argv(["--config", str(p)])
    line = str(exc.value)
    assert line.startswith(f"config '{p}': unknown ModelConfig key 'fno_widht'; did you mean "
                           "'fno_width'") and line.endswith("[flag --config]"), line
    nostudy = tmp_path / "nostudy.json"
    nostudy.write_text(json.dumps({"runner": {}}))
    with pytest.raises(StudyError, match=re.escape(f"config '{nostudy}': key 'study' is missing")):
        cli.config_from_argv(["--config", str(nostudy)])
    missing = tmp_path / "missing.json"
    with pytest.raises(StudyError) as exc:
        cli.config_from_argv(["--config", str(missing)])
    assert str(exc.value).startswith(f"config '{missing}': cannot read (")
    assert str(exc.value).endswith("[flag --config]")
    # a value the config refuses is named by its field
    values = StudyConfig().to_dict()
    values["training"]["epochs"] = 0
    p.write_text(json.dumps({"study": values}))
    with pytest.raises(ConfigError) as exc:
        cli.config_from_argv(["--config", str(p)])
    assert cli.flag_hint(exc.value).endswith("[flag --epochs]")


def test_a_tensorflow_ptychopinn_call_is_refused_naming_the_torch_back_end():
    """Ptychodus' TensorFlow "PtychoPINN" back end builds ptycho.config.config.ModelConfig
    with its own keywords (it finds this package by the name 'ptycho')."""
    from ptycho.config.config import ModelConfig
    with pytest.raises(TypeError) as err:
        ModelConfig(N=64, gridsize=1, n_filters_scale=2, model_type="pinn", pad_object=True)
    assert str(err.value) == (
        "ptycho.config.config.ModelConfig(model_type=...) is a TensorFlow PtychoPINN call, but "
        "this 'ptycho' is ptychopinn-torch's (in Ptychodus choose the "
        "ptychopinn-torch_unsupervised algorithm)")


def _parse_ints(text):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(t.isdigit() for t in items):
        raise StudyError(f"--sizes={text!r} is not a list of sizes (allowed: e.g. 1,2)")
    return tuple(int(t) for t in items)


@dataclasses.dataclass(frozen=True)
class _ToyOptions(StudyOptions):
    title: typing.ClassVar[str] = "toy study"
    sizes: tuple = described("1,2", "sizes", flag="size-list", parse=_parse_ints)
    steps: int = described(3, "steps")
    fast: bool = described(False, "go fast", switch=True)
    by_time: str | None = described(None, "by time", exclusive="budget", required=True,
                                    metavar="LIST")
    by_count: str | None = described(None, "by count", exclusive="budget", required=True)


def test_add_options_generates_one_group_of_flags_from_a_study_options_dataclass():
    """The flags of a study's options class: one group titled by the study, the flag name of
    the metadata, a switch, a required mutually exclusive pair, None defaults left out; the
    options parse their text when constructed, and again when replaced."""
    p = cli.build_parser("toy", "toy", sections={"model": ModelConfig}, config_flag=False)
    group = cli.add_options(p, _ToyOptions)
    assert group.title == "toy study"
    assert [a.option_strings for a in group._group_actions] == [
        ["--size-list"], ["--steps"], ["--fast"], ["--by-time"], ["--by-count"]]
    values = cli.parse_known(p, ["--by-count", "5", "--size-list", "4, 8", "--N", "128"])
    assert values == {"by_count": "5", "sizes": "4, 8", "N": 128, "steps": 3, "fast": False}
    o = _ToyOptions.from_values(values)
    assert (o.sizes, o.steps, o.fast, o.by_time, o.by_count) == ((4, 8), 3, False, None, "5")
    assert values == {"N": 128}                                    # the options taken out
    assert _ToyOptions().sizes == (1, 2)                           # the default text, parsed
    assert dataclasses.replace(o, steps=4).sizes == (4, 8)         # a parsed value again
    with pytest.raises(StudyError, match=r"^--sizes='4,x' is not a list of sizes"):
        _ToyOptions.from_values({"sizes": "4,x"})
    for argv, message in [
        ([], "one of the arguments --by-time --by-count is required"),
        (["--by-time", "1", "--by-count", "2"], "argument --by-count: not allowed with "
                                                "argument --by-time"),
    ]:
        with pytest.raises(StudyError) as err:
            cli.parse_known(p, ["--fast", *argv])
        assert str(err.value).splitlines() == [f"{message} (run with --help to list the flags)"]
    with pytest.raises(StudyError, match=r"^unknown flag '--sizes'; did you mean --size-list\?"):
        cli.parse_known(p, ["--by-time", "1", "--sizes", "1"])


def test_a_commands_own_section_gets_a_help_group_of_its_own():
    """A section that is no study concern (ptycho-live's) is its own group in --help, not a
    KeyError when the parser is built."""
    from ptycho.config.cli import SECTION_TITLES, build_parser
    from ptycho.config.live_config import LiveConfig
    p = build_parser("ptycho-live", "live", sections={"live": LiveConfig}, config_flag=False)
    groups = {g.title: {a.dest for a in g._group_actions} for g in p._action_groups}
    assert "source" in groups[SECTION_TITLES["live"]]
    assert "checkpoint" in groups["data: the input files"]
