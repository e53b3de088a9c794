"""Training data: the seeded train/validation split, the max_train_patterns cap, loaders,
and the Parseval brightness estimate."""
import numpy as np
import pytest
import torch
import lightning as L
from torch.utils.data import DataLoader, TensorDataset

from ptycho_torch.engine.data import (
    EpochOrder, PatchDataset, input_scale_from, make_loaders, object_amplitude_estimate,
    split_indices,
)


@pytest.mark.parametrize("n,frac", [(2, 0.05), (81, 0.05), (100, 0.5), (1000, 0.1)])
def test_split_is_a_seeded_partition(n, frac):
    s = split_indices(n, frac, seed=3)
    assert s.val_idx.size == min(max(1, round(n * frac)), n - 1) and s.train_idx.size >= 1
    both = np.concatenate([s.train_idx, s.val_idx])
    assert np.array_equal(np.sort(both), np.arange(n))  # disjoint, complete
    assert np.all(np.diff(s.train_idx) > 0) and np.all(np.diff(s.val_idx) > 0)  # sorted
    again = split_indices(n, frac, seed=3)
    assert np.array_equal(again.train_idx, s.train_idx) and np.array_equal(again.val_idx, s.val_idx)
    if n > 20:  # another seed holds out other patterns
        assert not np.array_equal(split_indices(n, frac, seed=4).val_idx, s.val_idx)


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a = EpochOrder(50, seed=3, batch_size=8)
    orders = []
    for epoch in range(4):
        a.set_epoch(epoch)
        orders.append(list(a))
        assert sorted(orders[-1]) == list(range(50))
    assert len({tuple(o) for o in orders}) == 4             # every epoch reshuffles
    fresh = EpochOrder(50, seed=3, batch_size=8)
    fresh.set_epoch(2)                                       # no history: epoch 2 alone
    assert list(fresh) == orders[2]
    assert list(EpochOrder(50, seed=4, batch_size=8)) != orders[0]


class _Recorder(L.LightningModule):
    """Records the sample indices of every training batch; learns nothing."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, _):
        self.seen += batch[0].tolist()
        return self.w.sum() * 0.0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("n, seed", [(37, 42), (64, 1), (41, 7)])  # partial and full last batches
def test_epoch_order_is_the_order_of_a_lightning_fit_over_a_shuffling_loader(n, seed):
    """The uninterrupted run keeps the order Lightning gave DataLoader(shuffle=True,
    generator=seed), so figures measured with that loader stand."""
    data = TensorDataset(torch.arange(n))
    loader = DataLoader(data, batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    module = _Recorder()
    L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0).fit(
        module, loader, DataLoader(data, batch_size=8))
    by_loader = [module.seen[e * n:(e + 1) * n] for e in range(4)]
    order = EpochOrder(n, seed, 8)
    assert [order.permutation(e) for e in range(4)] == by_loader
    assert len({tuple(o) for o in by_loader}) == 4


def test_epoch_order_is_sharded_by_lightnings_ddp_wrapper():
    """With several processes Lightning wraps the sampler (it is no DistributedSampler) in
    its DistributedSamplerWrapper: the ranks' shards of an epoch are disjoint, cover every
    sample, and the epoch reaches the sampler (each epoch reshuffles)."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    def shards(epoch):
        out = []
        for rank in (0, 1):
            w = DistributedSamplerWrapper(EpochOrder(40, seed=3, batch_size=8), num_replicas=2, rank=rank,
                                          shuffle=True, seed=3)
            w.set_epoch(epoch)
            out.append(list(w))
        return out
    for epoch in (0, 1):
        a, b = shards(epoch)
        assert len(a) == len(b) == 20 and sorted(a + b) == list(range(40))
    assert shards(0)[0] != shards(1)[0]


def test_max_train_patterns_caps_only_the_training_part():
    full = split_indices(200, 0.1, seed=0)
    capped = split_indices(200, 0.1, seed=0, max_train=32)
    assert capped.train_idx.size == 32 and full.train_idx.size == 180
    assert np.array_equal(capped.val_idx, full.val_idx)  # validation is not touched
    assert set(capped.train_idx) <= set(full.train_idx)
    assert np.intersect1d(capped.train_idx, capped.val_idx).size == 0
    # a cap above the available patterns (or 0) changes nothing
    for cap in (0, 180, 10_000):
        assert np.array_equal(split_indices(200, 0.1, seed=0, max_train=cap).train_idx,
                              full.train_idx)


def test_too_few_patterns_are_refused():
    with pytest.raises(ValueError, match=r"training set has 1 pattern\(s\); at least 2"):
        split_indices(1, 0.05, seed=0)


def test_loaders_batch_the_split(tiny_data):
    train, _ = tiny_data
    split = split_indices(train.n, 0.1, seed=0, max_train=20)
    tl, vl = make_loaders(train, split, 2.0, batch_size=8, seed=0)
    batches = list(tl)
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]
    x, pos, scale = batches[0]
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 32, 32)
    assert pos.shape == (8, 1, 1, 2) and torch.all(scale == 2.0)
    assert sum(b[0].shape[0] for b in vl) == split.val_idx.size
    # the training patterns are exactly the split's, shuffled reproducibly
    seen = torch.cat([b[0] for b in batches]).reshape(20, -1)
    ref = torch.from_numpy(train.diffraction[split.train_idx]).reshape(20, -1)
    assert sorted(map(float, seen.sum(1))) == pytest.approx(sorted(map(float, ref.sum(1))))
    again = torch.cat([b[0] for b in make_loaders(train, split, 2.0, 8, 0)[0]])
    assert torch.equal(again.reshape(20, -1), seen)
    with pytest.raises(ValueError, match=r"positions must be \(n, C, 1, 2\)"):
        PatchDataset(np.zeros((2, 1, 4, 4), np.float32), np.zeros((2, 1, 2), np.float32), 1.0)


def test_input_scale_and_parseval_estimate(tiny_data):
    train, test = tiny_data
    s = input_scale_from(train.diffraction)
    assert np.sqrt(np.mean((s * train.diffraction.astype(np.float64)) ** 2)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="zero or non-finite RMS"):
        input_scale_from(np.zeros((2, 1, 4, 4), np.float32))
    # the estimate is the mean object brightness the data imply (within a factor 2 here)
    a = object_amplitude_estimate(test.diffraction, test.probe)
    assert 0.5 < a / float(np.abs(test.ground_truth).mean()) < 2.0
    with pytest.raises(ValueError, match="zero diffraction or probe energy"):
        object_amplitude_estimate(test.diffraction, np.zeros_like(test.probe))
