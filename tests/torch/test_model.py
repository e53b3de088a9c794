"""Lightning module: forward/forward_predict contracts, physics round trip, training, checkpoints."""
import numpy as np
import pytest
import torch

from ptycho_torch.config_factory import create_training_payload
from ptycho_torch.model import PtychoPINN_Lightning

SMALL = {"N": 32, "fno_width": 8, "fno_modes": 6, "fno_blocks": 2, "fno_cnn_blocks": 1,
         "n_filters_scale": 1}


def _module(**over):
    p = create_training_payload(overrides={**SMALL, **over})
    return PtychoPINN_Lightning(p.model_config, p.data_config, p.training_config)


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
    from ptycho_torch.physics import apply_overlap_constraint
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
    from ptycho.datagen.grid_lines import diffraction_amplitude as np_amplitude, extract_patches
    from ptycho_torch.physics import diffraction_amplitude
    _, test = tiny_data
    stride = test["metadata"]["stride"]
    patches = extract_patches(test["YY_ground_truth"], 32, stride)
    probe = test["probeGuess"]
    torch_amp = diffraction_amplitude(torch.from_numpy(patches), torch.from_numpy(probe)).numpy()
    noise_free = np_amplitude(patches, probe)
    rel = np.linalg.norm(torch_amp - noise_free) / np.linalg.norm(noise_free)
    assert rel < 1e-5
    stored = test["diffraction"][test["object_index"] == 0][:, 0]
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
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("arch", ["cnn", "fno", "hybrid"])
def test_short_optimisation_lowers_physics_loss(arch, tiny_data):
    from ptycho_torch.data import input_scale_from
    train, _ = tiny_data
    torch.manual_seed(0)
    m = _module(architecture=arch, input_scale=input_scale_from(train["diffraction"]))
    m.set_probe(train["probeGuess"])
    x = torch.from_numpy(train["diffraction"][:16])
    batch = (x, torch.zeros(16, 1, 1, 2), torch.full((16, 1, 1, 1), m.data_config.input_scale))
    losses = _fit_steps(m, batch)
    assert np.isfinite(losses).all()
    assert min(losses[-5:]) < 0.7 * losses[0], losses


def test_poisson_loss_is_used_when_configured(tiny_data):
    train, _ = tiny_data
    m = _module(architecture="fno", loss="poisson", photon_scale=100.0)
    x = torch.from_numpy(train["diffraction"][:4])
    pred = x * 1.1
    from ptycho_torch.physics import poisson_nll
    assert float(m.loss_fn(pred, x)) == pytest.approx(float(poisson_nll(pred, x, photon_scale=100.0)))


def test_set_probe_checks_shape():
    m = _module()
    with pytest.raises(ValueError, match=r"probe has shape \(16, 16\); expected \(32, 32\)"):
        m.set_probe(np.ones((16, 16), np.complex64))


def test_checkpoint_round_trip_identical_predictions(tmp_path, tiny_data):
    import lightning as L
    from ptycho_torch.data import make_loaders, split_indices
    train, _ = tiny_data
    torch.manual_seed(0)
    m = _module(architecture="hybrid", epochs=1, scheduler="plateau", generator_output_mode="amp_phase")
    m.set_probe(train["probeGuess"])
    split = split_indices(len(train["diffraction"]), 0.1, 0, max_train=32)
    tl, vl = make_loaders(train, split, 1.0, 8, 0)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(m, tl, vl)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = PtychoPINN_Lightning.load_from_checkpoint(path, map_location="cpu")
    assert loaded.model_config == m.model_config and loaded.data_config == m.data_config
    torch.testing.assert_close(loaded.probe, m.probe)
    x = torch.from_numpy(train["diffraction"][:5])
    args = (x, torch.zeros(5, 1, 1, 2), m.probe, torch.ones(5, 1, 1, 1))
    m.eval(); loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_predict(*args), m.forward_predict(*args), rtol=0, atol=0)


def test_optimizer_and_scheduler_configuration():
    m = _module(optimizer="adamw", weight_decay=0.01, scheduler="plateau", learning_rate=2e-4)
    conf = m.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.AdamW)
    sched = conf["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert sched.factor == 0.5 and sched.patience == 2 and conf["lr_scheduler"]["monitor"] == "val_loss"
    assert isinstance(_module(scheduler="none").configure_optimizers(), torch.optim.Adam)
