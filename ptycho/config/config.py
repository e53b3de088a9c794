"""The project's one config family: frozen dataclasses, validated when constructed.

* :class:`ModelConfig`       what network is built (architecture and hyperparameters);
* :class:`TrainingConfig`    how it is trained (optimizer, loss, schedule, budget, devices);
* :class:`InferenceConfig`   how the test scan is predicted and stitched;
* :class:`SimulationConfig`  the simulated grid-lines dataset (objects, scan, photons);
* :class:`RunConfig`         where a study writes and how it runs (paths, resume, logging);
* :class:`DataConfig`        values derived from the data (input and photon scale), not flags;

The five user-facing sections nest in :class:`ptycho.config.study_config.StudyConfig`; the
presets are in :mod:`ptycho.config.presets`.

Each default is declared once, here. Field names are unique across the five user-facing
classes, so a study's flat view (``StudyConfig.flat()``, one CLI flag per field) is
unambiguous. Every field carries a one-sentence help text (``metadata["help"]``) and, for
enumerations, its ``choices``; the choice tuples equal the keys of the implementation
maps (tested). Defaults follow the reference study (fno 12/32/4/2, N 64, gridsize 1,
batch 16, lr 1e-3, inference batch 128).
"""
from __future__ import annotations

from dataclasses import dataclass

from ptycho.config.choices import (
    ARCHITECTURES,
    DEVICES,
    ENCODER_ATTENTIONS,
    INPUT_TRANSFORMS,
    LOSSES,
    OPTIMIZERS,
    OUTPUT_MODES,
    PRECISIONS,
    SCHEDULERS,
    STITCH_MODES,
    STITCH_WEIGHTINGS,
    STRATEGIES,
    SUBPIXEL_MODES,
    SUPPORTED_GRIDSIZE,
    SUPPORTED_N,
    WEIGHT_AVERAGES,
)
from ptycho.config.record import Record
from ptycho.config.record import described as _f
from ptycho.config.run_config import RunConfig  # noqa: F401  (re-exported)
from ptycho.config.validation import (
    check_bool,
    check_float,
    check_int,
    refuse,
)
from ptycho.geometry.grouping import MAX_GROUPS_PER_POSITION, MAX_K_NEAREST



@dataclass(frozen=True)
class ModelConfig(Record):
    """Generator architecture and hyperparameters."""

    N: int = _f(64, "diffraction pattern / object patch size in pixels", choices=SUPPORTED_N)
    gridsize: int = _f(1, "patches per group per side: 1, or 2 for the real-space overlap "
                          "constraint (C=4)", choices=SUPPORTED_GRIDSIZE)
    architecture: str = _f("hybrid", "generator architecture", choices=ARCHITECTURES)
    fno_modes: int = _f(12, "Fourier modes kept per axis by each spectral layer (<= N/2)")
    fno_width: int = _f(32, "channel width of the spectral blocks")
    fno_blocks: int = _f(4, "number of spectral (FNO) blocks")
    fno_cnn_blocks: int = _f(2, "convolutional refiner blocks (fno) / bottleneck blocks (hybrid)")
    n_filters_scale: int = _f(2, "width multiplier of the CNN baseline")
    encoder_attention: str = _f("none", "attention block after each encoder level of the cnn "
                                "architecture: none, or cbam (a channel then a spatial sigmoid "
                                "gate)", choices=ENCODER_ATTENTIONS)
    generator_output_mode: str = _f("real_imag", "how the generator's two output channels are "
                                    "read: real and imaginary parts, amplitude sigmoid and phase, "
                                    "or amplitude silu and phase", choices=OUTPUT_MODES)
    input_transform: str = _f("none", "compression of the scaled diffraction amplitudes before "
                              "the generator (sqrt or log1p lift the weak high-angle signal)",
                              choices=INPUT_TRANSFORMS)
    overlap_constraint: bool = _f(True, "at gridsize 2, merge the group's predicted patches "
                                  "and re-extract them before the forward model")
    overlap_weight: float = _f(1.0, "with the overlap constraint at gridsize 2, the forward "
                               "model sees (1 - w) x predicted + w x merged patches (1: the "
                               "hard constraint)")

    def __post_init__(self) -> None:
        o = "ModelConfig"
        self._check_choices()
        check_int(o, "fno_modes", self.fno_modes, 1)
        if self.fno_modes > self.N // 2:
            raise refuse(o, "fno_modes", f"={self.fno_modes} exceeds N//2={self.N // 2} for "
                         f"N={self.N} (allowed: 1..{self.N // 2})")
        check_int(o, "fno_width", self.fno_width, 4, 512)
        check_int(o, "fno_blocks", self.fno_blocks, 1, 16)
        check_int(o, "fno_cnn_blocks", self.fno_cnn_blocks, 0, 16)
        check_int(o, "n_filters_scale", self.n_filters_scale, 1, 16)
        if self.encoder_attention != "none" and self.architecture != "cnn":
            raise refuse(o, "encoder_attention", f"={self.encoder_attention!r} needs "
                         f"architecture='cnn' (allowed with architecture={self.architecture!r}: "
                         "'none')")
        check_bool(o, "overlap_constraint", self.overlap_constraint)
        check_float(o, "overlap_weight", self.overlap_weight, 0.0, 1.0)
        if self.overlap_weight != 1.0 and (self.gridsize == 1 or not self.overlap_constraint):
            why = "gridsize=1" if self.gridsize == 1 else "overlap_constraint=false"
            raise refuse(o, "overlap_weight", f"={self.overlap_weight:g} has no effect with "
                         f"{why} (it weighs the gridsize-2 overlap constraint)")

    @property
    def channels(self) -> int:
        """C = gridsize**2 patches per sample."""
        return self.gridsize * self.gridsize


CANDIDATE_EPOCHS = 3  # TrainingConfig.candidate_epochs' default


@dataclass(frozen=True)
class TrainingConfig(Record):
    """Optimisation, budget and devices.

    ``val_fraction`` of the training patterns is held out (seeded) as the validation split
    that drives the LR scheduler and early stopping; the test scan is never used for it.
    With ``candidates`` > 1 the test scan's object 1, which no score uses, chooses among
    the starts (``ptycho_torch.pipeline.candidates``).
    The budget is ``epochs`` and, when > 0, ``max_steps`` (optimizer steps): both are
    reproducible on any machine. ``max_train_minutes`` is a wall-clock safety cap only.
    """

    batch_size: int = _f(16, "training batch size")
    epochs: int = _f(50, "maximum training epochs")
    max_steps: int = _f(0, "stop after this many optimizer steps (0: no step limit); a "
                           "reproducible budget on any machine")
    min_steps: int = _f(0, "train at least this many optimizer steps: when epochs x batches "
                           "per epoch fall short (a small scan), the epochs are raised")
    max_train_minutes: float = _f(0.0, "wall-clock safety cap on training in minutes "
                                  "(0: none); when it stops training, metrics.json says so")
    learning_rate: float = _f(1e-3, "initial learning rate")
    loss: str = _f("mae", "training loss: normalized amplitude MAE or Poisson NLL", choices=LOSSES)
    seed: int = _f(42, "random seed of weights, data split and shuffling")
    optimizer: str = _f("adam", "optimizer", choices=OPTIMIZERS)
    weight_decay: float = _f(0.0, "weight decay of the optimizer")
    scheduler: str = _f("plateau", "LR schedule: ReduceLROnPlateau on the validation loss; "
                        "onecycle (per step: 10%% warm-up from learning_rate/10 to "
                        "learning_rate, cosine decay to min_lr at the last planned step); "
                        "or none", choices=SCHEDULERS)
    plateau_factor: float = _f(0.5, "LR multiplier when the validation loss plateaus")
    plateau_patience: int = _f(2, "epochs without improvement before the LR is reduced")
    min_lr: float = _f(1e-4, "lower bound of the learning rate under the plateau schedule; "
                       "the final one under onecycle")
    weight_average: str = _f("none", "weights validated, checkpointed and reconstructed "
                             "with: the last ones (none) or their exponential moving average "
                             "over optimizer steps (ema; Lightning's EMAWeightAveraging)",
                             choices=WEIGHT_AVERAGES)
    ema_decay: float = _f(0.999, "per-step decay of --weight-average ema (the average "
                          "remembers about 1/(1-decay) steps)")
    gradient_clip_val: float = _f(0.0, "clip the gradient norm of every optimizer step to "
                                  "this value (0: off; Lightning's gradient_clip_val)")
    val_fraction: float = _f(0.05, "fraction of training patterns held out for validation")
    max_train_patterns: int = _f(0, "use at most this many training patterns (0: all)")
    k_nearest: int = _f(0, "gridsize 2, training scan file: each group is a position and "
                        "C-1 of its k_nearest nearest positions (0: its C-1 nearest)")
    groups_per_position: int = _f(1, "gridsize 2, training scan file: groups drawn per "
                                  "position (distinct, seeded), multiplying the training "
                                  "groups")
    early_stopping_patience: int = _f(0, "stop after this many epochs without validation "
                                      "improvement (0: off)")
    candidates: int = _f(1, "train this many starts (seeds) for candidate_epochs each and go "
                         "on with the one whose patches of test object 1 agree best with their "
                         "neighbours (1: one start, the seed's)")
    candidate_epochs: int = _f(CANDIDATE_EPOCHS, "epochs of each start when candidates > 1")
    device: str = _f("auto", "where to train and predict", choices=DEVICES)
    devices: int = _f(1, "number of devices (processes) to train on")
    strategy: str = _f("auto", "Lightning strategy; ddp for data-parallel training",
                       choices=STRATEGIES)
    num_nodes: int = _f(1, "machines for multi-node DDP (SLURM or torchrun start the "
                           "processes); num_nodes x devices processes in all")
    deterministic: bool = _f(True, "ask torch for deterministic algorithms (warn where "
                             "unavailable)")
    precision: str = _f("32", "arithmetic of training and prediction: 32 (float32 "
                        "throughout) or bf16-mixed (Lightning's plugin: the generator's "
                        "convolutions in bfloat16 under autocast; its spectral layers and "
                        "output head, the forward model and the loss in float32 / complex64)",
                        choices=PRECISIONS)
    channels_last: bool = _f(False, "keep the generator's weights and activations in "
                             "channels-last memory order, its spectral layers as DFT "
                             "products (faster on CPU in either precision, most with "
                             "bf16-mixed)")
    refine_probe_epochs: int = _f(0, "before training, refine the file's probe with this many "
                                  "Pty-chi LSQML epochs on the training scan (object and probe; "
                                  "needs the 'iterative' extra; 0: use the probe as given)")

    def __post_init__(self) -> None:
        o = "TrainingConfig"
        self._check_choices()
        check_int(o, "batch_size", self.batch_size, 1, 65536)
        check_int(o, "epochs", self.epochs, 1, 100000)
        check_int(o, "max_steps", self.max_steps, 0)
        check_int(o, "min_steps", self.min_steps, 0)
        check_float(o, "max_train_minutes", self.max_train_minutes, 0.0, 1e6)
        check_float(o, "learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True)
        check_int(o, "seed", self.seed, 0, 2**32 - 1)
        check_float(o, "weight_decay", self.weight_decay, 0.0, 1.0)
        check_float(o, "plateau_factor", self.plateau_factor, 0.0, 0.99, lo_open=True)
        check_int(o, "plateau_patience", self.plateau_patience, 0, 1000)
        check_float(o, "min_lr", self.min_lr, 0.0, 1.0)
        check_float(o, "ema_decay", self.ema_decay, 0.0, 0.99999, lo_open=True)
        check_float(o, "gradient_clip_val", self.gradient_clip_val, 0.0, 1e6)
        if self.weight_average == "none" and self.ema_decay != 0.999:
            raise refuse(o, "ema_decay", f"={self.ema_decay:g} has no effect with "
                         "weight_average='none' (it sets the decay of weight_average='ema')")
        check_float(o, "val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)
        check_int(o, "early_stopping_patience", self.early_stopping_patience, 0, 100000)
        check_int(o, "max_train_patterns", self.max_train_patterns, 0)
        check_int(o, "k_nearest", self.k_nearest, 0, MAX_K_NEAREST)
        check_int(o, "groups_per_position", self.groups_per_position, 1,
                  MAX_GROUPS_PER_POSITION)
        self._check_candidates(o)
        check_int(o, "devices", self.devices, 1, 1024)
        check_int(o, "num_nodes", self.num_nodes, 1, 1024)
        check_bool(o, "deterministic", self.deterministic)
        check_bool(o, "channels_last", self.channels_last)
        check_int(o, "refine_probe_epochs", self.refine_probe_epochs, 0, 100000)
        if self.num_nodes > 1 and self.strategy != "ddp":
            raise refuse(o, "num_nodes", f"={self.num_nodes} needs strategy='ddp' (allowed "
                         f"with strategy={self.strategy!r}: 1)")

    def _check_candidates(self, o: str) -> None:
        check_int(o, "candidates", self.candidates, 1, 64)
        check_int(o, "candidate_epochs", self.candidate_epochs, 1, 100000)
        if self.candidates == 1:
            if self.candidate_epochs != CANDIDATE_EPOCHS:
                raise refuse(o, "candidate_epochs", f"={self.candidate_epochs} has no effect "
                             "with candidates=1 (it sets the epochs of each start)")
            return
        if self.candidate_epochs >= self.epochs:
            raise refuse(o, "candidate_epochs", f"={self.candidate_epochs} leaves nothing to go "
                         f"on with (allowed: fewer than epochs={self.epochs})")
        # one process; no wall-clock cap; a schedule that does not plan the whole budget
        # (onecycle's would end with each start)
        for name, value, allowed in (("devices", self.devices, (1,)),
                                     ("num_nodes", self.num_nodes, (1,)),
                                     ("max_train_minutes", self.max_train_minutes, (0,)),
                                     ("scheduler", self.scheduler, ("plateau", "none"))):
            if value not in allowed:
                shown = repr(value) if isinstance(value, str) else f"{value:g}"
                raise refuse(o, name, f"={shown} is not supported with candidates="
                             f"{self.candidates} (allowed: {', '.join(map(str, allowed))})")


@dataclass(frozen=True)
class InferenceConfig(Record):
    """Prediction of the test scan (batches moved to the device one at a time) and stitching."""

    infer_batch_size: int = _f(128, "test patterns moved to the device per inference batch")
    stitch: str = _f("positions", "stitching: positions (each patch's central stitch_crop "
                     "region at its scan position, overlaps averaged) or tiles (the reference's "
                     "central test_stride tiles; regular grid scans at gridsize 1)",
                     choices=STITCH_MODES)
    stitch_crop: int = _f(0, "side of the central region of each patch used by --stitch "
                             "positions (0: N/2)")
    stitch_subpixel: str = _f("fourier", "how --stitch positions places a patch at a "
                              "fractional position", choices=SUBPIXEL_MODES)
    align_phase: bool = _f(False, "remove each patch's constant phase offset against its "
                           "overlap before averaging (--stitch positions)")
    stitch_weighting: str = _f("uniform", "how --stitch positions averages overlaps: "
                               "uniform (plain mean) or probe (each patch pixel weighted by "
                               "the forward model's probe intensity |P|^2, summed over modes)",
                               choices=STITCH_WEIGHTINGS)

    def __post_init__(self) -> None:
        o = "InferenceConfig"
        self._check_choices()
        check_int(o, "infer_batch_size", self.infer_batch_size, 1, 1 << 20)
        check_int(o, "stitch_crop", self.stitch_crop, 0, 4096)
        check_bool(o, "align_phase", self.align_phase)
        if self.stitch == "tiles" and self.stitch_weighting != "uniform":
            raise refuse(o, "stitch_weighting", f"={self.stitch_weighting!r} needs "
                         "stitch='positions' (tiles do not overlap; allowed with "
                         "stitch='tiles': 'uniform')")

    def crop_for(self, N: int) -> int:
        """The central crop used by position stitching for patch size ``N``."""
        return self.stitch_crop or N // 2


@dataclass(frozen=True)
class SimulationConfig(Record):
    """The simulated grid-lines dataset (see ``ptycho.datagen.grid_lines``)."""

    object_size: int = _f(392, "side of each simulated square object in pixels")
    n_lines: int = _f(400, "random line segments drawn per simulated object")
    n_train_objects: int = _f(2, "number of simulated training objects")
    n_test_objects: int = _f(2, "number of simulated test objects (object 0 is scored)")
    train_stride: int = _f(4, "scan step in pixels on training objects")
    test_stride: int = _f(10, "scan step in pixels on test objects (also the tile size of "
                              "--stitch tiles)")
    nphotons: float = _f(1e9, "mean photons per diffraction pattern (Poisson noise level)")
    train_seed: int = _f(1, "random seed of the simulated training objects and their noise")
    test_seed: int = _f(2, "random seed of the simulated test objects and their noise")
    with_phase: bool = _f(True, "give the objects the reference's phase (pi tanh of the "
                          "amplitude), else zero phase")
    probe_pupil_radius: float = _f(0.1875, "simulated probe: pupil radius in k-space as a "
                                   "fraction of N")
    probe_defocus: float = _f(14.0, "simulated probe: quadratic pupil phase at the pupil edge "
                              "in radians")

    def __post_init__(self) -> None:
        o = type(self).__name__
        check_int(o, "object_size", self.object_size, 16, 8192)
        check_int(o, "n_lines", self.n_lines, 1, 100000)
        check_int(o, "n_train_objects", self.n_train_objects, 1, 64)
        check_int(o, "n_test_objects", self.n_test_objects, 1, 64)
        check_int(o, "train_stride", self.train_stride, 1, 1024)
        check_int(o, "test_stride", self.test_stride, 1, 1024)
        check_float(o, "nphotons", self.nphotons, 0.0, 1e15, lo_open=True)
        check_int(o, "train_seed", self.train_seed, 0, 2**32 - 1)
        check_int(o, "test_seed", self.test_seed, 0, 2**32 - 1)
        check_bool(o, "with_phase", self.with_phase)
        check_float(o, "probe_pupil_radius", self.probe_pupil_radius, 0.0, 0.5, lo_open=True)
        check_float(o, "probe_defocus", self.probe_defocus)


@dataclass(frozen=True)
class DataConfig(Record):
    """Values derived from the training data (not user flags), saved with the model.

    ``input_scale``: dataset-wide constant multiplying the diffraction amplitudes before they
    enter the generator (the default ``input_scale_factor`` of ``forward_predict``).
    ``photon_scale``: the scale s with counts = (s A)^2, used by the Poisson loss.
    ``probe_modes``: incoherent probe modes of the forward model's probe.
    """

    input_scale: float = 1.0
    photon_scale: float = 1.0
    probe_modes: int = 1

    def __post_init__(self) -> None:
        check_float("DataConfig", "input_scale", self.input_scale, 0.0, None, lo_open=True)
        check_float("DataConfig", "photon_scale", self.photon_scale, 0.0, None, lo_open=True)
        check_int("DataConfig", "probe_modes", self.probe_modes, 1, 64)
