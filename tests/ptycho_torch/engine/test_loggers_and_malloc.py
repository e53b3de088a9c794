"""--logger (Lightning's loggers) and the allocator setting every entry point applies."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ptycho.config.study_config import StudyConfig
from ptycho_torch.engine import loggers, malloc

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts" / "studies"))
import grid_lines_torch_runner as runner  # noqa: E402

TINY = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
        "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
        "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--epochs", "1", "--num-threads", "1", "--no-progress-bar"]


def test_logger_choices_and_missing_package(monkeypatch):
    assert StudyConfig().run.logger == "csv"
    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match=r"^--logger mlflow needs the package mlflow, which is "
                       r"not installed \(pip install mlflow; allowed without it: csv\) "
                       r"\[flag --logger\]$"):
        loggers.check_logger("mlflow")
    loggers.check_logger("csv")


def test_a_refused_logger_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loggers, "NEEDS", {**loggers.NEEDS, "mlflow": ("no_such_module_x",)})
    out = tmp_path / "study"
    assert runner.main([*TINY, "--logger", "mlflow", "--output-dir", str(out)]) == 2
    assert "--logger mlflow needs the package" in capsys.readouterr().err
    assert not out.exists()


def test_tensorboard_logger_writes_event_files(tmp_path):
    out = tmp_path / "study"
    assert runner.main([*TINY, "--logger", "tensorboard", "--output-dir", str(out)]) == 0
    assert list((out / ".work" / "pinn_fno" / "logs").glob("events.out.tfevents.*"))
    assert (out / "runs" / "pinn_fno" / "metrics.json").exists()


def test_keep_freed_memory_respects_the_environment():
    code = ("from ptycho_torch.engine.malloc import keep_freed_memory; "
            "print(keep_freed_memory())")
    env = {k: v for k, v in os.environ.items() if k not in malloc.ENV_KEYS}
    env["PYTHONPATH"] = str(REPO)
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got in ("mallopt", "unavailable")
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION"):
        assert got == "mallopt"
    env["MALLOC_MMAP_MAX_"] = "0"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == "environment"
