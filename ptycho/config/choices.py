"""The allowed values of every enumerated config field (each field declares its tuple as
``choices``; the tuples equal the keys of the implementation maps, tested)."""

ARCHITECTURES = ("cnn", "fno", "hybrid")
OUTPUT_MODES = ("real_imag", "amp_phase", "amp_silu_phase")
ENCODER_ATTENTIONS = ("none", "cbam")  # ptycho_torch.generators.attention
INPUT_TRANSFORMS = ("none", "sqrt", "log1p")
LOSSES = ("mae", "poisson")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("plateau", "onecycle", "none")
WEIGHT_AVERAGES = ("none", "ema")  # ptycho_torch.engine.weight_averaging
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("32", "bf16-mixed")  # Lightning's names; ptycho_torch.core.precision
PREDICT_PRECISIONS = ("model",) + PRECISIONS  # ptycho-reconstruct: the model's, or one
STRATEGIES = ("auto", "ddp")
STITCH_MODES = ("positions", "tiles")
STITCH_WEIGHTINGS = ("uniform", "probe")  # ptycho.stitching.STITCH_WEIGHTINGS
SUBPIXEL_MODES = ("none", "fourier", "bilinear")
DATA_UNITS = ("auto", "counts", "amplitude")
# sign of a CXI translation in object pixels (ptycho.formats.cxi); 1 = Ptychodus's
CXI_TRANSLATION_SIGNS = (1, -1)
PRESETS = ("none", "quick", "paper")
SUPPORTED_N = (16, 32, 64, 128, 256)
SUPPORTED_GRIDSIZE = (1, 2)
PROBE_UPDATES = ("none", "auto", "lsqml", "learn")
PROBE_SOURCES = ("model", "file")
LOGGERS = ("csv", "tensorboard", "mlflow")
REFINE_ENGINES = ("none", "lsqml")
PROBE_SCALE_MODES = ("pad", "pad_preserve", "pad_extrapolate", "interpolate")  # ptycho.probe_scaling
