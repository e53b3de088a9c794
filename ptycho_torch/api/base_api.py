"""The classes Ptychodus 1.7's PtychoPINN-Torch back end calls, backed by this project.

Ptychodus' child process (``ptychodus/model/ptychopinn_torch/_subprocess.py``) trains with

    cm = ConfigManager(data_config=, model_config=, training_config=, inference_config=,
                       datagen_config=)              # settings translated or refused here
    loader = PtychoDataLoader(data_dir=, config_manager=cm,
                              data_format=DataloaderFormats('lightning_only_module'),
                              output_dir=)           # reads the folder; run_<UTC time>/
    model = PtychoModel._new_model(model=PtychoPINN_Lightning, config_manager=cm)
    trainer = Trainer._from_lightning(model=, dataloader=, orchestration='lightning',
                                      config_manager=cm)   # trainer._trainer: lightning
    trainer.train(orchestration='lightning', experiment_name='')  # -> run dir/model.ckpt

and reconstructs with ``PtychoModel._extract_configs_from_checkpoint(path)``,
``PtychoPINN_Lightning.load_from_checkpoint(path, ...)``, ``ConfigManager.from_loaded_model``,
``PtychoDataLoader.from_np(diff_patterns, probe, positions (row, column), cm)`` and
``InferenceEngine(...).predict_and_stitch(loader)`` (the object in the input object's frame,
:mod:`ptycho_torch.api.frame`). Each call goes through the project's own pipeline: the
config factory, the readers, :func:`ptycho_torch.engine.training.prepare_fit`, batched
``forward_predict`` and position stitching.
"""
from __future__ import annotations

import enum
import logging
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
import numpy as np

from ptycho.artifacts import write_json_atomic
from ptycho.config.runner_config import TorchRunnerConfig
from ptycho.config.validation import StudyError
from ptycho.stitching import probe_weights
from ptycho_torch import config_params as cp
from ptycho_torch.api.frame import frame_from_canvas, frame_shape, stitch_in_frame
from ptycho_torch.api.inputs import (
    merge_scans,
    read_training_dir,
    scan_from_arrays,
    select_in_bounds,
)
from ptycho_torch.api.model_file import read_model_configs, write_model_file
from ptycho_torch.api.refine_plan import RefinePlan
from ptycho_torch.api.translate import describe, translate
from ptycho_torch.api.views import ptychodus_view
from ptycho_torch.config_factory import build_model, data_config_from, payload_from_study
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.engine.training import finish_fit, prepare_fit
from ptycho_torch.model import PtychoPINN_Lightning
from ptycho_torch.pipeline.polish import polish_with_lsqml
from ptycho_torch.ptychi import import_ptychi
from ptycho.reconstruction import stitch_test_object
from ptycho_torch.engine.threads import apply_num_threads, threads_line

__all__ = ["ConfigManager", "DataloaderFormats", "InferenceEngine", "PtychoDataLoader",
           "PtychoModel", "Trainer"]

log = logging.getLogger(__name__)


class DataloaderFormats(enum.Enum):
    """How training data reach Lightning: in-memory loaders of a Lightning module."""

    LIGHTNING_ONLY_MODULE = "lightning_only_module"


class ConfigManager:
    """Ptychodus' four settings records and what they mean here.

    Construction translates them (:func:`ptycho_torch.api.translate.translate`): a value
    this project does not honour is refused in one line naming the Ptychodus setting,
    before any data are read. ``payload`` (the family configs) is set once the training
    data are read, because the data fix the input and photon scales."""

    def __init__(self, data_config, model_config, training_config, inference_config,
                 datagen_config=None):
        self.data_config, self.model_config = data_config, model_config
        self.training_config, self.inference_config = training_config, inference_config
        self.datagen_config = datagen_config if datagen_config is not None else cp.DatagenConfig()
        self.translation = translate(data_config, model_config, training_config,
                                     inference_config)
        describe(self.translation)
        self.payload = None

    @classmethod
    def from_loaded_model(cls, ptycho_model: "PtychoModel") -> "ConfigManager":
        """The settings view of a loaded model (no translation: it was trained already)."""
        cm = cls.__new__(cls)
        view = ptychodus_view(ptycho_model.model_config, ptycho_model.training_config,
                              ptycho_model.inference_config)
        cm.data_config, cm.model_config, cm.training_config, cm.inference_config = view
        cm.datagen_config, cm.translation = cp.DatagenConfig(), None
        cm.payload = None
        cm.family = (ptycho_model.data_config, ptycho_model.model_config,
                     ptycho_model.training_config, ptycho_model.inference_config)
        return cm

    def validate_arch_compatibility(self, ptycho_model: "PtychoModel") -> None:
        """The loaded module's pattern size and channels equal the configs' (ValueError)."""
        module = ptycho_model.model
        mc = ptycho_model.model_config
        if module.model_config.N != mc.N or module.model_config.gridsize != mc.gridsize:
            raise ValueError(f"the checkpoint's module (N={module.model_config.N}, gridsize="
                             f"{module.model_config.gridsize}) does not match its configs "
                             f"(N={mc.N}, gridsize={mc.gridsize})")


class PtychoModel:
    """The family configs of a model and its Lightning module (``model``)."""

    def __init__(self, model_config=None, data_config=None, training_config=None,
                 inference_config=None):
        self.model_config, self.data_config = model_config, data_config
        self.training_config, self.inference_config = training_config, inference_config
        self.model: PtychoPINN_Lightning | None = None

    @staticmethod
    def _extract_configs_from_checkpoint(path):
        """``(data, model, training, inference)`` family configs, read weights only."""
        return read_model_configs(path)

    @classmethod
    def _new_model(cls, model=PtychoPINN_Lightning, config_manager: ConfigManager = None
                   ) -> "PtychoModel":
        """A fresh module of the manager's configs, with the training scan's probe."""
        if model is not PtychoPINN_Lightning:
            raise StudyError(f"model={getattr(model, '__name__', model)!r} is not supported "
                             "(allowed: ptycho_torch.model.PtychoPINN_Lightning)")
        p = _payload(config_manager)
        L.seed_everything(p.training_config.seed, workers=True, verbose=False)
        out = cls(p.model_config, p.data_config, p.training_config, p.inference_config)
        out.model = build_model(p.model_config, p.data_config, p.training_config, p.train)
        return out


def _payload(cm: ConfigManager):
    if cm is None or getattr(cm, "payload", None) is None:
        raise StudyError("no training data read yet (allowed: build PtychoDataLoader(data_dir=..., "
                         "config_manager=...) before the model)")
    return cm.payload


class PtychoDataLoader:
    """Training data from a folder (see :mod:`ptycho_torch.api.inputs`), or a scan to
    reconstruct from arrays (:meth:`from_np`). ``output_dir``: ``<output_dir>/run_<UTC
    %Y%m%d_%H%M%S>``, where training writes."""

    def __init__(self, data_dir=None, config_manager: ConfigManager = None,
                 data_format=DataloaderFormats.LIGHTNING_ONLY_MODULE, output_dir=None):
        if DataloaderFormats(getattr(data_format, "value", data_format)) is not \
                DataloaderFormats.LIGHTNING_ONLY_MODULE:
            raise StudyError(f"data_format={data_format!r} (allowed: 'lightning_only_module')")
        self.config_manager = config_manager
        self.output_dir = None if output_dir is None else _run_dir(Path(output_dir))
        self.scan = self.dataset = None
        if data_dir is None:
            return
        tr = config_manager.translation
        ov = tr.overrides
        read = read_training_dir(data_dir, ov["N"])
        scans = [select_in_bounds(s, tr.bounds) for s in read]
        self.dataset = merge_scans([
            s.to_dataset(gridsize=ov["gridsize"], N=ov["N"], k_nearest=ov.get("k_nearest", 0),
                         groups_per_position=ov.get("groups_per_position", 1)) for s in scans])
        study = TorchRunnerConfig(**ov, progress_bar=False, train_npz=scans[0].path,
                                  output_dir=str(self.output_dir or data_dir)).to_study()
        config_manager.payload = payload_from_study(study, data_config_from(self.dataset),
                                                    self.dataset)
        log.info("ptychopinn-torch: training data %s: %d patterns, %d inside x/y bounds, %d "
                 "samples at gridsize %d", ", ".join(s.path for s in read),
                 sum(s.n for s in read), sum(s.n for s in scans), self.dataset.n,
                 ov["gridsize"])

    @classmethod
    def from_np(cls, diff_patterns, probe, positions, config_manager: ConfigManager
                ) -> "PtychoDataLoader":
        """A scan to reconstruct: patterns (intensities), probe (modes, H, W), positions
        (n, 2) as (row, column) in the input object's pixels."""
        out = cls(config_manager=config_manager)
        _, mc, _, _ = config_manager.family
        out.scan = scan_from_arrays(diff_patterns, probe, positions)
        out.dataset = out.scan.to_dataset(gridsize=mc.gridsize, N=mc.N)
        return out


def _run_dir(base: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    run, k = base / f"run_{stamp}", 2
    while run.exists():
        run, k = base / f"run_{stamp}_{k}", k + 1
    return run


class Trainer:
    """A Lightning fit of this project (``_trainer`` is its ``lightning.Trainer``)."""

    def __init__(self, prepared, ptycho_model: PtychoModel, dataloader: PtychoDataLoader,
                 config_manager: ConfigManager):
        self._prepared, self._trainer = prepared, prepared.trainer
        self.ptycho_model, self.dataloader, self.config_manager = (ptycho_model, dataloader,
                                                                   config_manager)
        self.result = None

    @classmethod
    def _from_lightning(cls, model: PtychoModel, dataloader: PtychoDataLoader,
                        orchestration: str = "lightning", config_manager: ConfigManager = None
                        ) -> "Trainer":
        if str(orchestration).lower() != "lightning":
            raise StudyError(f"orchestration={orchestration!r} (allowed: 'lightning')")
        p = _payload(config_manager)
        run_dir = Path(dataloader.output_dir)
        log.info("ptychopinn-torch: %s", threads_line(*apply_num_threads(0)))
        prepared = prepare_fit(p.model_config, p.training_config, p.data_config, p.train,
                               run_dir, progress_bar=False, model=model.model)
        return cls(prepared, model, dataloader, config_manager)

    def train(self, orchestration: str = "lightning", experiment_name: str = ""):
        """Fit, then write ``model.ckpt``, ``history.json`` and ``config.json`` in the run
        folder (``find_best_checkpoint`` returns that ``model.ckpt``)."""
        cm, run_dir = self.config_manager, Path(self.dataloader.output_dir)
        fit = finish_fit(self._prepared)
        self.result = fit
        p = cm.payload
        records = {k: getattr(cm, k).to_dict() for k in ("data_config", "model_config",
                                                         "training_config", "inference_config")}
        write_model_file(run_dir / "model.ckpt", fit.model, p.inference_config,
                         {"ptychodus": dict(records, mode=cm.model_config.mode),
                          "experiment_name": str(experiment_name)})
        write_json_atomic(run_dir / "history.json", fit.history)
        write_json_atomic(run_dir / "config.json", {
            "study": p.study.to_dict(), "data_config": p.data_config.to_dict(),
            "ptychodus": records, "data": self.dataloader.dataset.metadata})
        log.info("ptychopinn-torch: model written to %s", run_dir / "model.ckpt")
        return fit


class InferenceEngine:
    """Batched prediction of a scan and stitching in the input object's frame."""

    def __init__(self, config_manager: ConfigManager, ptycho_model: PtychoModel):
        self.config_manager, self.ptycho_model = config_manager, ptycho_model

    def predict_and_stitch(self, loader: PtychoDataLoader) -> np.ndarray:
        """(H, W) complex64 object, H x W the input object's (:mod:`ptycho_torch.api.frame`)."""
        device = resolve_device("auto")
        log.info("ptychopinn-torch: %s", threads_line(*apply_num_threads(0)))
        module = self.ptycho_model.model.to(device).eval()
        inference = self.ptycho_model.inference_config
        plan = RefinePlan.of({"reconstruct": module.reconstruct_request})
        log.info("ptychopinn-torch: reconstruction = %s", plan.describe())
        if plan.refine == "lsqml":
            import_ptychi()                       # refused in one line before any work
        ds = loader.dataset
        shift = np.asarray(ds.metadata["position_origin_px"], np.float64)
        shape = frame_shape(loader.scan.positions_px, ds.N)
        patches = predict_patches(module, ds, inference.infer_batch_size)
        if plan.refine == "lsqml":
            rec = stitch_test_object(patches, ds, inference, probe=ds.probe)
            _, out, _ = polish_with_lsqml(ds, rec, inference, epochs=plan.refine_epochs,
                                          device=device, optimize_probe=False)
            return frame_from_canvas(out.canvas, shift, shape)
        weights = probe_weights(ds.probe) if inference.stitch_weighting == "probe" else None
        return stitch_in_frame(patches, ds.centres.astype(np.float64) - shift, shape,
                               crop=inference.crop_for(ds.N),
                               subpixel=inference.stitch_subpixel, weights=weights)
