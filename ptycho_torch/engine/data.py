"""In-memory training data for the Lightning module: tensors, split, loaders.

The readers return a channel-first :class:`ptycho.dataset.PtychoDataset`; this module turns the
training patterns into a seeded train/validation split (the validation patterns are carved
from the training scan, never from the test scan) and batches of
``(x (B,C,N,N) float32, positions (B,C,1,2) float32, input_scale_factor (B,1,1,1) float32)``.

The training order of epoch ``e`` is a function of the seed and ``e`` only
(:class:`EpochOrder`), so a run resumed after epoch ``k`` sees the batches the
uninterrupted run would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ptycho.config.config import DataConfig
from ptycho.dataset import PtychoDataset


class PatchDataset(Dataset):
    """Diffraction patches with their relative positions and the input scale factor."""

    def __init__(self, diffraction: np.ndarray, positions: np.ndarray, input_scale: float):
        if diffraction.ndim != 4:
            raise ValueError(f"diffraction must be (n, C, N, N), got shape {diffraction.shape}")
        if positions.shape != (diffraction.shape[0], diffraction.shape[1], 1, 2):
            raise ValueError(f"positions must be (n, C, 1, 2), got shape {positions.shape}")
        self.x = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
        self.positions = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.float32))
        self.scale = torch.full((1, 1, 1), float(input_scale), dtype=torch.float32)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], self.positions[i], self.scale


class EpochOrder(Sampler[int]):
    """The training order: epoch ``e`` visits the ``n`` samples in the order that Lightning's
    fit loop over a shuffling ``DataLoader(..., shuffle=True,
    generator=torch.Generator().manual_seed(seed))`` gives in its epoch ``e`` in one
    uninterrupted process, computed from ``(seed, e)`` alone.

    Over such a loader the fit loop draws from its generator, per epoch: the iterator's base
    seed (one int64), the ``RandomSampler``'s permutation and, only when the last batch is
    partial (``n % batch_size != 0``), the sampler's second permutation for its empty
    remainder: the batch sampler exhausts the sampler to close a partial batch, while after
    a full last batch Lightning stops at the loader's length.
    :meth:`permutation` replays those draws from the seed, so the uninterrupted run keeps the
    order (and every trained figure) it had with that loader, and a resumed run sees the
    same order from its first epoch on (``tests/ptycho_torch/engine/test_data.py`` holds the
    identity against a Lightning fit over torch's loader).

    Lightning calls :meth:`set_epoch` with the epoch about to run, before it iterates the
    loader (``lightning.fabric.utilities.data._set_sampler_epoch``, from the fit loop), also
    in a resumed run. Several processes (DDP): Lightning wraps this sampler in its
    ``DistributedSamplerWrapper``, which forwards ``set_epoch`` and gives each rank its shard.
    """

    def __init__(self, n: int, seed: int, batch_size: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"EpochOrder: n={n}, batch_size={batch_size} (expected at least "
                             "one sample and a batch of at least one)")
        self.n, self.seed, self.batch_size, self.epoch = int(n), int(seed), int(batch_size), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def permutation(self, epoch: int) -> list[int]:
        """The order of epoch ``epoch`` (the class docstring: a replay of the loader's draws)."""
        gen = torch.Generator().manual_seed(self.seed)
        perm = None
        for _ in range(int(epoch) + 1):
            torch.empty((), dtype=torch.int64).random_(generator=gen)   # the iterator's base seed
            perm = torch.randperm(self.n, generator=gen)
            if self.n % self.batch_size:
                torch.randperm(self.n, generator=gen)     # the remainder draw, see above
        return perm.tolist()

    def __iter__(self):
        return iter(self.permutation(self.epoch))

    def __len__(self) -> int:
        return self.n


@dataclass(frozen=True)
class TrainValSplit:
    train_idx: np.ndarray
    val_idx: np.ndarray


def split_indices(n: int, val_fraction: float, seed: int, max_train: int = 0) -> TrainValSplit:
    """Seeded random split of ``n`` patterns; at least one pattern in each part.

    ``max_train`` > 0 caps the number of training patterns (a random subset).
    """
    if n < 2:
        raise ValueError(f"training set has {n} pattern(s); at least 2 are needed for a validation split")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    val, train = np.sort(perm[:n_val]), perm[n_val:]
    if max_train and max_train < train.size:
        train = train[:max_train]
    return TrainValSplit(train_idx=np.sort(train), val_idx=val)


def input_scale_from(diffraction: np.ndarray) -> float:
    """Dataset-wide input normalisation: 1 / RMS of the diffraction amplitudes."""
    rms = float(np.sqrt(np.mean(np.square(diffraction, dtype=np.float64))))
    if not np.isfinite(rms) or rms <= 0:
        raise ValueError("diffraction has zero or non-finite RMS; cannot normalise the input")
    return 1.0 / rms


def make_loaders(train: PtychoDataset, split: TrainValSplit, input_scale: float,
                 batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    """Training (in the :class:`EpochOrder` of ``seed``) and validation (in order) loaders
    over a dataset's groups."""
    x, pos = train.diffraction, train.coords_nominal
    ds_train = PatchDataset(x[split.train_idx], pos[split.train_idx], input_scale)
    ds_val = PatchDataset(x[split.val_idx], pos[split.val_idx], input_scale)
    order = EpochOrder(len(ds_train), seed, batch_size)
    return (DataLoader(ds_train, batch_size=batch_size, sampler=order, drop_last=False),
            DataLoader(ds_val, batch_size=max(batch_size, 64), shuffle=False))


def object_amplitude_estimate(diffraction: np.ndarray, probe: np.ndarray) -> float:
    """Typical object amplitude from Parseval: sqrt(mean_patches sum A^2 / sum |P|^2)
    (``probe`` (N, N) or (modes, N, N): the modes' intensities add).

    Used to start the generator at a uniform object of the right brightness.
    """
    energy = float(np.mean(np.sum(np.square(diffraction, dtype=np.float64), axis=(-2, -1))))
    probe_energy = float(np.sum(np.abs(probe) ** 2))
    if not (energy > 0 and probe_energy > 0):
        raise ValueError("cannot estimate the object amplitude: zero diffraction or probe energy")
    return float(np.sqrt(energy / probe_energy))


def data_config_from(train: PtychoDataset) -> DataConfig:
    """The data-derived config of a training scan: input scale 1/RMS of its amplitudes,
    its photon scale and its number of probe modes."""
    return DataConfig(input_scale=input_scale_from(train.diffraction),
                      photon_scale=float(train.photon_scale),
                      probe_modes=int(np.asarray(train.probe_modes).shape[0]))
