"""The settings of ``ptycho-reconstruct``: a trained model on any scan (and, optionally,
Pty-chi polishing the network's object and probe)."""
from __future__ import annotations

from dataclasses import dataclass

from ptycho.config.choices import (
    CXI_TRANSLATION_SIGNS,
    DATA_UNITS,
    DEVICES,
    PREDICT_PRECISIONS,
    PROBE_SOURCES,
    REFINE_ENGINES,
)
from ptycho.config.record import Record
from ptycho.config.record import described as _f
from ptycho.config.validation import check_bool, check_int, refuse


@dataclass(frozen=True)
class ReconstructConfig(Record):
    """Reconstruct a scan with a trained model (``ptycho-reconstruct``)."""

    checkpoint: str = _f("", "a trained study's model.ckpt (runs/<model_id>/model.ckpt)")
    data: str = _f("", "the scan to reconstruct: any supported file (see docs/reference/formats.md)")
    output_dir: str = _f("outputs/reconstruction", "directory that receives recon.npz, "
                         "product-out.h5, metrics.json and the PNGs")
    data_unit: str = _f("auto", "unit of the patterns in --data: detector counts or amplitudes "
                        "(auto: the rule in docs/reference/formats.md)", choices=DATA_UNITS)
    cxi_translation_sign: int = _f(1, "CXI files only: 1 reads the translations with "
                                   "Ptychodus's sign (object pixel = +translation / pixel); -1 "
                                   "for files written with the opposite sign",
                                   choices=CXI_TRANSLATION_SIGNS)
    device: str = _f("auto", "where to predict", choices=DEVICES)
    precision: str = _f("model", "arithmetic of prediction: the one the model trained with "
                        "(model), 32 or bf16-mixed", choices=PREDICT_PRECISIONS)
    num_threads: int = _f(0, "torch CPU threads, Pty-chi's too (0: the usable CPUs that other "
                             "work leaves free, chosen at start)")
    refine: str = _f("none", "after the network: polish its object and probe with Pty-chi "
                     "(lsqml: LSQML started at the network's object; needs the 'iterative' "
                     "extra)", choices=REFINE_ENGINES)
    refine_epochs: int = _f(20, "LSQML epochs of --refine lsqml")
    probe_source: str = _f("model", "the probe the reconstruction is scored and written with: "
                           "the model's (the one it trained with, refined or learned) or the "
                           "scan file's", choices=PROBE_SOURCES)
    overwrite: bool = _f(False, "replace an earlier reconstruction in --output-dir")
    trust_checkpoint: bool = _f(False, "load a --checkpoint that holds Python objects beyond "
                                "weights and plain values (refused otherwise: unpickling it "
                                "can run code); only for a file from a source you trust")

    def __post_init__(self) -> None:
        o = "ReconstructConfig"
        self._check_choices()
        for name in ("checkpoint", "data", "output_dir"):
            if not str(getattr(self, name)).strip():
                raise refuse(o, name, " is empty (allowed: a path)")
        for name in ("overwrite", "trust_checkpoint"):
            check_bool(o, name, getattr(self, name))
        check_int(o, "refine_epochs", self.refine_epochs, 1, 100000)
        check_int(o, "num_threads", self.num_threads, 0, 1024)
