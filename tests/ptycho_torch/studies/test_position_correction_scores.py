"""Rows whose positions are not the true ones are scored with the translation registered:
the position study's ``given`` and ``corrected`` rows (ptycho_torch.studies.position_correction),
and a study whose probe update corrected the test scan's positions (probe_update)."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.ndimage import fourier_shift, gaussian_filter

from ptycho.datagen.grid_lines import make_object
from ptycho.formats.readers import read_dataset
from ptycho_torch.pipeline import probe_update
from ptycho_torch.studies import position_correction
from torch_fixtures import load_repo_file

SHIFT = (0.4, -0.3)   # (x, y) px: where the refined object sits against the truth


@pytest.fixture(scope="module")
def scan(spiral_npz):
    data = read_dataset(str(spiral_npz), N=32, gridsize=1)
    c = data.centres.reshape(-1, 2)
    frame = (int(np.ceil(c[:, 1].max())) + 32, int(np.ceil(c[:, 0].max())) + 32)
    side = max(frame) + 32              # a band-limited truth larger than the frame, cut to it
    big = make_object(side, 60, np.random.default_rng(5))
    big = gaussian_filter(big.real, 1.0) + 1j * gaussian_filter(big.imag, 1.0)
    cut = (slice(16, 16 + frame[0]), slice(16, 16 + frame[1]))
    moved = np.fft.ifftn(fourier_shift(np.fft.fftn(big), (SHIFT[1], SHIFT[0])))[cut]
    data = dataclasses.replace(data, ground_truth=big[cut].astype(np.complex64), metadata={
        **data.metadata, "true_positions_px": c.astype(np.float64).tolist()})
    return data, moved.astype(np.complex64)


def test_rows_at_positions_other_than_the_true_ones_are_registered(scan, monkeypatch):
    scan, moved = scan

    def fake_refine(d, *, epochs, device, seed, refine_positions):
        true_xy = np.asarray(scan.metadata["true_positions_px"])
        return SimpleNamespace(time_s=0.0, residual_after={"amplitude_mae": 0.0},
                               object_after=moved, positions_after=true_xy + np.array(SHIFT))

    monkeypatch.setattr(position_correction, "load_dataset", lambda path, **kw: scan)
    monkeypatch.setattr(position_correction, "refine_probe", fake_refine)
    out = position_correction.run_position_study("scan.npz", epochs=1)
    for name in ("given", "corrected"):       # the frame of estimated positions: registered
        row = out[name]
        assert row["registration_shift_px"] == pytest.approx(list(SHIFT), abs=0.02)
        assert row["phase_corr"] > 0.999 and row["amp_psnr"] > 45
    true_row = out["true"]                     # the truth's own frame: not registered
    assert true_row["registration_shift_px"] is None
    assert true_row["amp_psnr"] < out["corrected"]["amp_psnr"] - 10
    assert out["corrected"]["mean_shift_px"] == pytest.approx(list(SHIFT))


def test_a_study_scores_with_registration_when_the_test_positions_were_corrected():
    corrected = {"route": "lsqml", "positions": {"moved_rms_px": 0.4, "test_corrected": True}}
    other_file = {"route": "lsqml", "positions": {"moved_rms_px": 0.4, "test_corrected": False}}
    assert probe_update.scored_at_corrected_positions(corrected) is True
    assert probe_update.scored_at_corrected_positions(other_file) is False
    assert probe_update.scored_at_corrected_positions({"route": "lsqml"}) is False
    assert probe_update.scored_at_corrected_positions({"route": "none", "reason": "x"}) is False


def test_script_refuses_a_bad_epoch_count_before_reading_the_dataset(tmp_path, capsys):
    script = load_repo_file("scripts/studies/position_correction.py")
    out = tmp_path / "out.json"
    assert script.main([str(tmp_path / "none.npz"), "--output", str(out), "--epochs", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --epochs=0 is out of range (allowed: >= 1)\n"
    assert captured.out == "" and not out.exists()
