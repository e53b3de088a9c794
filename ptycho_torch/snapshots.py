"""Per-epoch reconstruction snapshots, so a long run can be watched while it trains.

:class:`SnapshotCallback` predicts a few fixed test patches with ``forward_predict`` every
``every`` epochs and writes a small PNG (amplitude and phase of each patch, next to the
ground-truth patch when the test data carry ``Y_I`` / ``Y_phi`` labels) to
``<out_dir>/<model_id>_epoch<k>.png``, ``k`` = number of completed epochs, zero-padded to
three digits (``pinn_fno_epoch005.png``). Files are written atomically (temporary name,
then rename), only by global rank 0, and the model's training mode and the random number
generators are left untouched (eval-mode forward under ``torch.no_grad``), so snapshots
do not change the training result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from ptycho.artifacts import save_figure_atomic
from ptycho.dataset import PtychoDataset


def snapshot_indices(test: PtychoDataset, n_patches: int) -> np.ndarray:
    """``n_patches`` pattern indices of test object 0, evenly spread over its scan."""
    if n_patches < 1:
        raise ValueError(f"n_patches={n_patches} must be >= 1")
    try:
        idx = test.object_selection(0)
    except ValueError:  # no object 0: any patterns will do for a snapshot
        idx = np.arange(test.n)
    pick = np.unique(np.linspace(0, idx.size - 1, min(n_patches, idx.size)).round().astype(int))
    return idx[pick]


def snapshot_path(out_dir: Path, model_id: str, epochs_done: int) -> Path:
    return Path(out_dir) / f"{model_id}_epoch{int(epochs_done):03d}.png"


class SnapshotCallback(Callback):
    """Every ``every`` epochs, predict fixed test patches and write a PNG.

    Args:
        test: the test :class:`ptycho.dataset.PtychoDataset` (``diffraction`` (n,C,N,N)
            float32, ``coords_nominal`` (n,C,1,2) float32, ``probe`` (N,N) complex64;
            optional ``Y_I``/``Y_phi`` (n,C,N,N) labels).
        out_dir: directory of the PNGs (``visuals/snapshots`` in a study).
        model_id: file name prefix.
        every: epochs between snapshots (>= 1).
        n_patches: patches shown (rows of the figure); channel 0 of each.
    """

    def __init__(self, test: PtychoDataset, out_dir, model_id: str, every: int, n_patches: int = 4):
        if int(every) < 1:
            raise ValueError(f"snapshot every={every} must be >= 1")
        self.every = int(every)
        self.out_dir = Path(out_dir)
        self.model_id = str(model_id)
        idx = snapshot_indices(test, n_patches)
        self.x = torch.from_numpy(np.ascontiguousarray(test.diffraction[idx], np.float32))
        self.positions = torch.from_numpy(
            np.ascontiguousarray(test.coords_nominal[idx], np.float32))
        self.probe = torch.as_tensor(np.asarray(test.probe)).to(torch.complex64)
        self.truth = None
        if test.Y_I is not None and test.Y_phi is not None:
            self.truth = (np.asarray(test.Y_I[idx][:, 0]), np.asarray(test.Y_phi[idx][:, 0]))
        self.written: list[Path] = []

    def predict(self, pl_module) -> np.ndarray:
        """Object patches (n, N, N) complex64 (channel 0) from the module as it is now."""
        device = pl_module.device
        scale = float(getattr(pl_module.data_config, "input_scale", 1.0))
        n = self.x.shape[0]
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                obj = pl_module.forward_predict(
                    # the probe argument is unused by forward_predict: it stays on the CPU
                    self.x.to(device), self.positions.to(device), self.probe,
                    torch.full((n, 1, 1, 1), scale, dtype=torch.float32, device=device))
        finally:
            pl_module.train(was_training)
        return obj[:, 0].detach().to("cpu").numpy().astype(np.complex64)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done = int(trainer.current_epoch) + 1
        if done % self.every or not trainer.is_global_zero:
            return
        self.written.append(self.write(pl_module, done))

    def write(self, pl_module, epochs_done: int) -> Path:
        obj = self.predict(pl_module)
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        cols = 4 if self.truth is not None else 2
        n = obj.shape[0]
        fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n), squeeze=False)
        for i in range(n):
            panels = [(np.abs(obj[i]), "amplitude", "gray"), (np.angle(obj[i]), "phase", "twilight")]
            if self.truth is not None:
                panels += [(self.truth[0][i], "true |O P|", "gray"),
                           (self.truth[1][i], "true phase", "twilight")]
            for j, (img, title, cmap) in enumerate(panels):
                ax = axes[i, j]
                ax.imshow(img, cmap=cmap)
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_title(title, fontsize=7)
        fig.suptitle(f"{self.model_id}: epoch {epochs_done}", fontsize=8)
        try:
            return save_figure_atomic(fig, snapshot_path(self.out_dir, self.model_id, epochs_done),
                                      dpi=72)
        finally:
            plt.close(fig)
