"""Lightning module: forward/forward_predict contracts, physics round trip, training, checkpoints."""
import numpy as np
import pytest
import torch

from ptycho.config.config import DataConfig
from ptycho.config.study_config import StudyConfig
from ptycho_torch.model import PtychoPINN_Lightning

SMALL = {"N": 32, "fno_width": 8, "fno_modes": 6, "fno_blocks": 2, "fno_cnn_blocks": 1,
         "n_filters_scale": 1}
_DATA_KEYS = ("input_scale", "photon_scale", "probe_modes")


def _module(**over):
    """A module from flat study values; input_scale / photon_scale go to the DataConfig."""
    values = {**SMALL, **over}
    cfg = StudyConfig().replace(**{k: v for k, v in values.items() if k not in _DATA_KEYS})
    data = DataConfig(**{k: v for k, v in values.items() if k in _DATA_KEYS})
    return PtychoPINN_Lightning(cfg.model, data, cfg.training)


@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("arch", ["cnn", "fno", "hybrid"])
def test_forward_predict_dtype_and_shape(arch, gridsize):
    torch.manual_seed(0)
    m = _module(architecture=arch, gridsize=gridsize).eval()
    C = gridsize * gridsize
    x = torch.rand(3, C, 32, 32)
    pos = torch.zeros(3, C, 1, 2)
    if gridsize == 2:
        pos[:, :, 0, :] = torch.tensor([[-2., -2.], [2., -2.], [-2., 2.], [2., 2.]])
    probe = torch.ones(32, 32, dtype=torch.complex64)
    scale = torch.ones(3, 1, 1, 1)
    obj = m.forward_predict(x, pos, probe, scale)
    assert obj.dtype == torch.complex64 and obj.shape == (3, C, 32, 32)
    amp = m(x, pos, probe, scale)
    assert amp.dtype == torch.float32 and amp.shape == (3, C, 32, 32)
    # forward is the physics applied to forward_predict's object
    ref = torch.abs(torch.fft.fftshift(torch.fft.fft2(obj * probe, norm="ortho"), dim=(-2, -1)))
    torch.testing.assert_close(amp, ref, rtol=1e-5, atol=1e-6)


def test_gridsize2_prediction_obeys_overlap_constraint():
    from ptycho_torch.core.overlap import apply_overlap_constraint
    torch.manual_seed(0)
    m = _module(architecture="fno", gridsize=2).eval()
    pos = torch.tensor([[-3., -3.], [3., -3.], [-3., 3.], [3., 3.]]).reshape(1, 4, 1, 2).repeat(2, 1, 1, 1)
    obj = m.forward_predict(torch.rand(2, 4, 32, 32), pos, torch.ones(32, 32, dtype=torch.complex64),
                            torch.ones(2, 1, 1, 1))
    # consistent patches: applying the constraint again changes nothing
    torch.testing.assert_close(apply_overlap_constraint(obj, pos), obj, rtol=1e-5, atol=1e-6)


def test_true_object_reproduces_simulated_amplitudes(tiny_data):
    """Round trip: true object patches through the torch forward model reproduce the
    noise-free simulated amplitudes (numpy simulator) to float32 precision, and the stored
    (1e9-photon) data up to Poisson noise."""
    from ptycho.forward import diffraction_amplitude as np_amplitude
    from ptycho.datagen.grid_lines import extract_patches
    from ptycho_torch.core.physics import diffraction_amplitude
    _, test = tiny_data
    stride = test.metadata["stride"]
    patches = extract_patches(test.ground_truth, 32, stride)
    probe = test.probe
    torch_amp = diffraction_amplitude(torch.from_numpy(patches), torch.from_numpy(probe)).numpy()
    noise_free = np_amplitude(patches, probe)
    rel = np.linalg.norm(torch_amp - noise_free) / np.linalg.norm(noise_free)
    assert rel < 1e-5
    stored = test.diffraction[test.object_index == 0][:, 0]
    assert stored.shape == torch_amp.shape
    rel_noisy = np.linalg.norm(torch_amp - stored) / np.linalg.norm(stored)
    assert 0 < rel_noisy < 1e-2


def _fit_steps(module, batch, steps=25, lr=3e-3):
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    x, pos, scale = batch
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = module.loss_fn(module(x, pos, module.probe, scale), x)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _uniform_object_loss(module, x, probe) -> float:
    """The loss of the best featureless guess: a uniform object as bright as the data say
    (Parseval: ``object_amplitude_estimate``), through the same physics and loss."""
    from ptycho_torch.engine.data import object_amplitude_estimate
    from ptycho_torch.core.physics import diffraction_amplitude
    a = object_amplitude_estimate(x.numpy(), probe)
    obj = torch.full(x.shape, a, dtype=torch.complex64)
    with torch.no_grad():
        return float(module.loss_fn(diffraction_amplitude(obj, torch.from_numpy(probe)), x))


@pytest.mark.parametrize("arch", ["cnn", "fno", "hybrid"])
def test_short_optimisation_beats_the_uniform_object(arch, tiny_data):
    """25 Adam steps on 16 patterns: the trained physics loss must beat a uniform object of
    the right brightness on the same data (the network learned structure, not just a level)."""
    from ptycho_torch.engine.data import input_scale_from
    train, _ = tiny_data
    torch.manual_seed(0)
    m = _module(architecture=arch, input_scale=input_scale_from(train.diffraction))
    m.set_probe(train.probe)
    x = torch.from_numpy(train.diffraction[:16])
    batch = (x, torch.zeros(16, 1, 1, 2), torch.full((16, 1, 1, 1), m.data_config.input_scale))
    losses = _fit_steps(m, batch)
    baseline = _uniform_object_loss(m, x, train.probe)
    assert np.isfinite(losses).all() and np.isfinite(baseline)
    assert losses[0] > baseline, (losses[0], baseline)  # it did not start there
    assert min(losses[-5:]) < baseline, (losses, baseline)


def test_poisson_loss_is_used_when_configured(tiny_data):
    train, _ = tiny_data
    m = _module(architecture="fno", loss="poisson", photon_scale=100.0)
    x = torch.from_numpy(train.diffraction[:4])
    pred = x * 1.1
    from ptycho_torch.core.losses import poisson_nll
    assert float(m.loss_fn(pred, x)) == pytest.approx(float(poisson_nll(pred, x, photon_scale=100.0)))


def test_set_probe_checks_shape():
    m = _module()
    with pytest.raises(ValueError, match=r"probe has shape \(16, 16\); expected \(32, 32\)"):
        m.set_probe(np.ones((16, 16), np.complex64))


def test_checkpoint_round_trip_identical_predictions(tmp_path, tiny_data):
    import lightning as L
    from ptycho_torch.engine.data import make_loaders, split_indices
    train, _ = tiny_data
    torch.manual_seed(0)
    m = _module(architecture="hybrid", epochs=1, scheduler="plateau", generator_output_mode="amp_phase")
    m.set_probe(train.probe)
    split = split_indices(train.n, 0.1, 0, max_train=32)
    tl, vl = make_loaders(train, split, 1.0, 8, 0)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(m, tl, vl)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = PtychoPINN_Lightning.load_from_checkpoint(path, map_location="cpu")
    assert loaded.model_config == m.model_config and loaded.data_config == m.data_config
    torch.testing.assert_close(loaded.probe, m.probe)
    x = torch.from_numpy(train.diffraction[:5])
    args = (x, torch.zeros(5, 1, 1, 2), m.probe, torch.ones(5, 1, 1, 1))
    m.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_predict(*args), m.forward_predict(*args), rtol=0, atol=0)


def test_optimizer_and_scheduler_configuration():
    m = _module(optimizer="adamw", weight_decay=0.01, scheduler="plateau", learning_rate=2e-4)
    conf = m.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.AdamW)
    assert conf["optimizer"].defaults["lr"] == 2e-4
    assert conf["optimizer"].defaults["weight_decay"] == 0.01
    sched = conf["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert sched.factor == 0.5 and sched.patience == 2 and conf["lr_scheduler"]["monitor"] == "val_loss"
    assert isinstance(_module(scheduler="none").configure_optimizers(), torch.optim.Adam)


class _SpyGenerator(torch.nn.Module):
    """Records the generator input; returns a constant complex object."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.ones_like(x, dtype=torch.complex64)


@pytest.mark.parametrize("transform,expected", [
    ("none", lambda v: v), ("sqrt", torch.sqrt), ("log1p", torch.log1p)])
def test_input_transform_is_applied_to_the_scaled_amplitudes(transform, expected):
    m = _module(architecture="cnn", input_transform=transform)
    m.generator = _SpyGenerator()
    x = torch.rand(3, 1, 32, 32) * 5.0
    scale = torch.full((3, 1, 1, 1), 0.7)
    m.forward_predict(x, torch.zeros(3, 1, 1, 2), m.probe, scale)
    torch.testing.assert_close(m.generator.seen[0], expected(x * 0.7), rtol=0, atol=1e-6)
    if transform != "none":  # the transform really changes the input (the test can fail)
        assert (m.generator.seen[0] - x * 0.7).abs().max() > 0.1
    # negative inputs (never produced by the readers) are clamped, not NaN
    m.forward_predict(-x, torch.zeros(3, 1, 1, 2), m.probe, scale)
    assert torch.isfinite(m.generator.seen[1]).all()


@pytest.mark.parametrize("loss", ["mae", "poisson"])
def test_bad_pixel_values_do_not_change_the_loss(loss):
    """With a detector mask the loss ignores the measured values of the masked pixels (the
    readers also zero them in the generator input; see ptycho.formats.raw_scan)."""
    torch.manual_seed(0)
    m = _module(architecture="cnn", loss=loss, photon_scale=50.0)
    bad = np.zeros((32, 32), bool)
    bad[3, 4] = bad[16, 16] = True
    x = torch.rand(4, 1, 32, 32) + 0.1
    x_changed = x.clone()
    x_changed[:, :, 3, 4] = 1e3
    x_changed[:, :, 16, 16] = 0.0
    with torch.no_grad():
        pred = m(x, torch.zeros(4, 1, 1, 2), None, torch.ones(4, 1, 1, 1))

    def loss_of(obs):
        return float(m.loss_fn(pred, obs, mask=m.valid_mask))

    assert abs(loss_of(x) - loss_of(x_changed)) > 1e-5  # unmasked, the pixels' values matter
    m.set_bad_pixels(bad)
    assert float(m.valid_mask.sum()) == 32 * 32 - 2
    assert loss_of(x) == pytest.approx(loss_of(x_changed), rel=1e-6)
    # the training step uses the module's mask: with a generator that ignores its input,
    # the step's loss does not see the bad pixels' values either
    m.generator = _SpyGenerator()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        with torch.no_grad():
            a = m.training_step((x, torch.zeros(4, 1, 1, 2), torch.ones(4, 1, 1, 1)), 0)
            b = m.training_step((x_changed, torch.zeros(4, 1, 1, 2), torch.ones(4, 1, 1, 1)), 0)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    with pytest.raises(ValueError, match=r"bad_pixels has shape \(16, 16\); expected \(32, 32\)"):
        m.set_bad_pixels(np.zeros((16, 16), bool))


@pytest.mark.parametrize("constraint,weight", [(True, 1.0), (True, 0.5), (False, 1.0)])
def test_overlap_constraint_flag_controls_the_merge_at_gridsize_2(constraint, weight, monkeypatch):
    """overlap_constraint=False: the group's patches go to the physics as the generator made
    them (no merge / re-extract); True: they are merged, blended by overlap_weight."""
    from ptycho_torch.core import overlap
    calls = []
    real = overlap.apply_overlap_constraint

    def spy(obj, positions, w=1.0, **kw):
        calls.append(w)
        return real(obj, positions, w, **kw)
    monkeypatch.setattr(overlap, "apply_overlap_constraint", spy)
    torch.manual_seed(0)
    m = _module(architecture="cnn", gridsize=2, overlap_constraint=constraint,
                overlap_weight=weight).eval()
    pos = torch.tensor([[-3., -3.], [3., -3.], [-3., 3.], [3., 3.]]).reshape(1, 4, 1, 2).repeat(2, 1, 1, 1)
    x, scale = torch.rand(2, 4, 32, 32), torch.ones(2, 1, 1, 1)
    with torch.no_grad():
        obj = m.forward_predict(x, pos, m.probe, scale)
        raw = m.generator(x)
    assert calls == ([weight] if constraint else [])
    if constraint:
        torch.testing.assert_close(obj, torch.lerp(raw, real(raw, pos), weight))
        assert (obj - raw).abs().max() > 1e-4  # the merge changed the patches
    else:
        torch.testing.assert_close(obj, raw, rtol=0, atol=0)
