"""Command-line entry points (``ptycho-study``, ``ptycho-reconstruct``).

Each parses flags generated from the config dataclasses, calls one package function and
turns refusals into one ``error:`` line on stderr with exit code 2 (no traceback; nothing
written). The scripts under ``scripts/studies`` call these same functions.

This module imports no torch: flags are parsed and the configs validated (numpy only) before
the work's modules are imported, inside :func:`run_study_cli` and :func:`reconstruct_main`
(the entry points' one deferred import, named in ``tests/test_package_shape.py``), so a
refused flag answers in well under a second instead of after torch and Lightning load.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

from ptycho.config.cli import build_parser, config_from_argv, flag, flag_hint, parse_known
from ptycho.config.config import InferenceConfig
from ptycho.config.live_config import LiveConfig
from ptycho.config.reconstruct_config import ReconstructConfig
from ptycho.config.runner_config import as_study_config
from ptycho.config.validation import ConfigError, StudyError
from ptycho.study_metrics import StudyMetrics, metrics_table
from ptycho_torch.engine.malloc import keep_freed_memory
from ptycho_torch.engine.interrupts import Interrupted, signals_interrupt


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to the *current* ``sys.stderr`` (which a test harness or
    a caller may replace after the handler was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property wins
        pass


def configure_logging() -> None:
    """INFO messages of this project on stderr, one line each. Lightning's own start-up
    chatter (accelerator summary, tips, "fit stopped") is lowered to warnings: the study
    logs its device, one line per epoch and the stop reason itself."""
    import warnings
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("ptycho", "ptycho_torch"):
        lg = logging.getLogger(name)
        if not lg.handlers:
            lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False


def refuse(err: BaseException) -> int:
    print(f"error: {flag_hint(err)}", file=sys.stderr)
    return 2


def run_entry(parse, run, *, interrupted: str, errors: tuple = (StudyError,)):
    """The one wrapper of a study command's refusals and exit codes.

    Configures logging, then ``parse()`` (any ``ValueError``: one ``error:`` line, code 2)
    and ``run(parsed)`` (``errors``: one ``error:`` line, code 2). ``run`` runs with
    SIGINT and SIGTERM turned into :class:`ptycho_torch.engine.interrupts.Interrupted`: an
    interrupted run prints ``error: interrupted (<signal>); <interrupted>`` and gives code
    130 (SIGINT, Ctrl-C) or 143 (SIGTERM); a ``KeyboardInterrupt`` raised in the run
    gives 130. Returns ``(code, result)``, ``result`` None unless the run finished.
    """
    configure_logging()
    keep_freed_memory()            # before the first large allocation (engine.malloc)
    try:
        parsed = parse()
    except ValueError as err:  # StudyError, ConfigError, IterativeUnavailableError
        return refuse(err), None
    try:
        with signals_interrupt():
            return 0, run(parsed)
    except errors as err:
        return refuse(err), None
    except Interrupted as err:
        print(f"error: interrupted ({signal.Signals(err.signum).name}); {interrupted}",
              file=sys.stderr)
        return err.exit_code, None
    except KeyboardInterrupt:
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return 130, None


def run_study_cli(cfg) -> dict:
    """Run one study from a StudyConfig or a TorchRunnerConfig; returns the metrics.json
    content (``{}`` on extra DDP ranks)."""
    from ptycho_torch.pipeline.study import run_study  # deferred: torch loads after the flags' checks
    result = run_study(as_study_config(cfg))
    return result.metrics.to_json() if result is not None else {}


def parse_and_run_study(argv, prog: str, parse=config_from_argv) -> tuple[int, object, dict]:
    """``(exit code, config, metrics)`` of one study run from the command line: refusals
    print one ``error:`` line (code 2), an interrupt code 130; ``metrics`` is ``{}`` on the
    extra ranks of a distributed launch."""
    code, done = run_entry(lambda: parse(argv, prog=prog),
                           lambda cfg: (cfg, run_study_cli(cfg)),
                           interrupted="resume with --resume")
    return (code, *done) if done is not None else (code, None, {})


def study_main(argv=None, prog: str = "ptycho-study") -> int:
    """Exit codes: 0 done; 2 refused input (one ``error:`` line on stderr, nothing
    written); 130 (SIGINT) or 143 (SIGTERM) interrupted (resume with --resume)."""
    code, cfg, metrics = parse_and_run_study(argv, prog)
    if code == 0 and metrics:
        print(metrics_table([StudyMetrics.from_json(metrics)]))
        print(f"stop: {metrics['stop_reason']} after {metrics['steps_completed']} step(s) = "
              f"{metrics['epochs_trained']:.2f} epochs; artifacts: "
              f"{Path(cfg.run.output_dir).resolve()}")
    return code


def parse_reconstruct(argv, prog: str) -> tuple[ReconstructConfig, InferenceConfig]:
    """The two configs of ``ptycho-reconstruct`` from its flags (ValueError: one line)."""
    parser = build_parser(prog, "Reconstruct any supported scan with a trained model.",
                          sections={"reconstruct": ReconstructConfig,
                                    "inference": InferenceConfig}, config_flag=False)
    values = parse_known(parser, argv)
    rc = _own_fields(values, ReconstructConfig, ("checkpoint", "data"))
    return ReconstructConfig(**rc), InferenceConfig(**values)


def _own_fields(values: dict, cls, required: tuple[str, ...]) -> dict:
    """The fields of the command's own config ``cls`` taken out of the parsed flag
    ``values`` (the rest is the inference config's); a missing ``required`` one is refused
    in one line."""
    own = {k: values.pop(k) for k in list(values) if k in cls.__dataclass_fields__}
    missing = [k for k in required if k not in own]
    if missing:
        raise StudyError(f"--{missing[0]} is required (allowed: a path; see --help)")
    return own


def _reconstruct(configs: tuple) -> tuple:
    """``(ReconstructConfig, metrics)`` of :func:`ptycho_torch.pipeline.reconstruct.run_reconstruction`."""
    from ptycho_torch.pipeline.reconstruct import run_reconstruction  # deferred, as in run_study_cli
    return configs[0], run_reconstruction(*configs)


def reconstruct_main(argv=None, prog: str = "ptycho-reconstruct") -> int:
    """Reconstruct a scan with a trained model. Exit codes: 0 done; 2 refused input
    (nothing written); 130 (SIGINT) or 143 (SIGTERM) interrupted (``--output-dir`` as it
    was)."""
    code, done = run_entry(lambda: parse_reconstruct(argv, prog), _reconstruct,
                           interrupted="--output-dir was left as it was; run the same "
                                       "command again")
    if code != 0:
        return code
    cfg, m = done
    rows = reconstruct_rows(cfg, m)
    print(metrics_table(rows))
    print(f"data residual (stitched object): amplitude MAE "
          f"{m.data_residual['amplitude_mae']:.4g}; raw patches: "
          f"{m.patch_residual['amplitude_mae']:.4g}"
          + "".join(f"; {r.model_id}: {r.data_residual['amplitude_mae']:.4g}" for r in rows[1:])
          + f"; artifacts: {Path(cfg.output_dir).resolve()}")
    return 0


def reconstruct_rows(cfg: ReconstructConfig, m: StudyMetrics) -> list[StudyMetrics]:
    """The rows of ``ptycho-reconstruct``'s table: the network's, and with ``--refine`` the
    refined one (``refined/metrics.json`` in the output folder)."""
    refined = Path(cfg.output_dir) / "refined" / "metrics.json"
    if cfg.refine == "none" or not refined.is_file():
        return [m]
    return [m, StudyMetrics.from_json(json.loads(refined.read_text()))]


def parse_live(argv, prog: str) -> tuple[LiveConfig, InferenceConfig]:
    """The two configs of ``ptycho-live`` (ValueError: one line). Stitching defaults to
    ``--stitch-weighting probe``; the incremental canvas has no ``tiles`` or
    ``--align-phase`` form."""
    parser = build_parser(prog, "Reconstruct a scan while it is measured, from the HDF5 file "
                          "or folder the detector writes. Here the stitching weighs each patch "
                          "by the probe's intensity (--stitch-weighting probe) unless told "
                          "otherwise.", sections={"live": LiveConfig,
                                                            "inference": InferenceConfig},
                          config_flag=False)
    values = parse_known(parser, argv)
    lc = _own_fields(values, LiveConfig, ("checkpoint", "source"))
    try:
        cfg = LiveConfig(**lc)
    except ConfigError as err:
        raise StudyError(f"{err} [flag {flag(err.field)}]") from None
    if values.get("stitch", "positions") == "tiles" or values.get("align_phase"):
        what = "stitch='tiles'" if values.get("stitch") == "tiles" else "align_phase=True"
        raise StudyError(f"InferenceConfig.{what} needs every patch at once; ptycho-live "
                         "stitches chunk by chunk (allowed: --stitch positions, "
                         "--no-align-phase)")
    inference = InferenceConfig(**{"stitch_weighting": "probe", **values})
    return cfg, inference


def _live(configs: tuple):
    """``(LiveConfig, status)`` of :func:`ptycho_torch.pipeline.live.run_live`."""
    from ptycho_torch.pipeline.live import run_live  # deferred, as in run_study_cli
    return configs[0], run_live(*configs)


def live_main(argv=None, prog: str = "ptycho-live") -> int:
    """Reconstruct a scan while it is measured. Exit codes: 0 the scan ended (how: one line
    on stdout); 2 refused input (nothing written); 130 (SIGINT) or 143 (SIGTERM)
    interrupted (the last product-live.h5 stays valid)."""
    code, done = run_entry(lambda: parse_live(argv, prog), _live,
                           interrupted="product-live.h5 holds the frames of the last "
                                       "snapshot, a valid product")
    if code != 0:
        return code
    cfg, st = done
    left = sum(st.left_out.values())
    lat = st.latency_s.get("median")
    print(f"live: {st.frames} frames stitched ({left} left out: "
          + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in st.left_out.items())
          + f"), {st.frames_per_s:.1f} frames/s, latency median "
          + ("n/a" if lat is None else f"{lat:.2f} s")
          + f"; end: {st.end}; artifacts: {Path(cfg.output_dir).resolve()}")
    return 0
