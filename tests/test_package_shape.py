"""The package's shape, read from the sources (tools/layout_report.py): no
import cycle, no project import inside a function (the optional third-party packages,
Pty-chi, matplotlib and h5py, may be imported late; so may the work of the command-line
entry points, after their flags are checked: DEFERRED), no module over 350 lines and no
function body over 60 lines, and imports only go down the floors below (FLOORS)."""
from pathlib import Path

from tools import layout_report

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
# the one deferred import of the entry points: ptycho_torch.pipeline.study in run_study_cli and
# ptycho_torch.pipeline.reconstruct in _reconstruct, ptycho_torch.pipeline.live in _live, after
# the flags are parsed without torch; and of each study's entry point
# (ptycho_torch.studies.commands), after its flags are parsed without torch
# (ptycho_torch.studies.options): the run of comparison, dose, seeds, learning_curve, the
# report of reference_levels and the run of position_correction
DEFERRED = {"ptycho_torch.cli": 3, "ptycho_torch.studies.commands": 6}
# The floors, lowest first: a module may import its own floor and those below, never one
# above (a module's floor is that of the longest prefix of its name listed here).
FLOORS = [
    ["ptycho.geometry", "ptycho.forward", "ptycho.probes"],  # numpy ground
    ["ptycho.config"],
    ["ptycho"],  # formats, datagen, stitching, evaluation, the reconstruction record, plotting
    ["ptycho_torch.core"],  # the differentiable physics: torch only, no Lightning, no files
    ["ptycho_torch.generators"],
    ["ptycho_torch.model"],  # the Lightning module, build_model, the model-file loader
    ["ptycho_torch.engine"],  # data, callbacks, training, inference, outputs, threads
    ["ptycho_torch.ptychi"],  # the Pty-chi adapter
    ["ptycho_torch.pipeline"],  # study, reconstruct, probe update, polish
    ["ptycho_torch.api", "ptycho_torch.config_factory", "ptycho_torch.config_params",
     "ptycho_torch.lightning_utils"],  # facades for users and hosts
    ["ptycho_torch.cli"],
    ["ptycho_torch.studies"],
]


def _report():
    return layout_report.build(REPO, ["ptycho", "ptycho_torch"])


def test_no_import_cycle_and_no_late_project_import():
    r = _report()
    assert r.cycles == []
    assert r.late == DEFERRED


def test_no_module_over_350_lines():
    r = _report()
    assert {m: n for m, n in r.modules.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_body_over_60_lines():
    r = _report()
    assert {f: n for n, f in r.functions if n > MAX_FUNCTION_LINES} == {}


def floor_of(module: str) -> int:
    best, floor = "", None
    for i, prefixes in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, floor = p, i
    assert floor is not None, f"{module} is on no floor: add it to FLOORS"
    return floor


def test_imports_only_go_down_the_floors():
    r = _report()
    up = sorted(f"{a} -> {b}" for a, targets in r.edges.items() for b in targets
                if floor_of(b) > floor_of(a))
    assert up == []


def test_every_package_module_sits_in_a_folder_but_the_entry_points_and_facades():
    flat = sorted(p.stem for p in (REPO / "ptycho_torch").glob("*.py") if p.stem != "__init__")
    assert flat == ["cli", "config_factory", "config_params", "lightning_utils"]


def test_the_floor_rule_sees_an_upward_import():
    assert floor_of("ptycho_torch.engine.training") > floor_of("ptycho_torch.model.build")
    assert floor_of("ptycho.geometry.patches") < floor_of("ptycho.reconstruction")
    assert floor_of("ptycho_torch.studies.dose.cells") == len(FLOORS) - 1
