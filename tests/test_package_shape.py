"""The package's shape, read from the sources (scripts/benchmarks/layout_report.py): no
import cycle, no project import inside a function (the optional third-party packages,
Pty-chi, matplotlib and h5py, may be imported late; so may the work of the command-line
entry points, after their flags are checked: DEFERRED), no module over 350 lines and no
function body over 60 lines."""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
# the one deferred import of the entry points: ptycho_torch.study in run_study_cli and
# ptycho_torch.reconstruct in _reconstruct, after the flags are parsed without torch
DEFERRED = {"ptycho_torch.cli": 2}


def _report():
    name = "_layout_report_shape"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts/benchmarks/layout_report.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].build(REPO, ["ptycho", "ptycho_torch"])


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
