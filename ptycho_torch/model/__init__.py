"""The model: the Lightning module that wires generator, physics and loss
(:mod:`.lightning_module`), the one way it is built from configs (:mod:`.build`) and the
weights-only model-file loader (:mod:`.checkpoint`).

``from ptycho_torch.model import PtychoPINN_Lightning`` is the documented import (the
Ptychodus host uses it).
"""
from ptycho_torch.model.build import build_model
from ptycho_torch.model.lightning_module import PtychoPINN_Lightning

__all__ = ["PtychoPINN_Lightning", "build_model"]
