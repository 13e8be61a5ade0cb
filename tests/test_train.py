"""The training CLI: loss goes down, checkpoints load, --resume continues from the saved step."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import explorer
from explorer import train


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        # smooth images: a denoiser can learn them within a few steps
        yy, xx = np.mgrid[0:40, 0:40] / 40.0
        img = 0.5 + 0.4 * np.sin(2 * np.pi * (rng.random() * xx + rng.random() * yy))
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _args(folder, out, steps, *extra):
    return [
        "--data", str(folder), "--name", "tiny", "--out", str(out), "--arch", "dncnn", "--depth", "4", "--width", "8",
        "--patch", "24", "--batch", "8", "--steps", str(steps), "--checkpoint-every", "20", "--lr", "3e-3",
        "--sigma-min", "0.1", "--sigma-max", "0.2", "--quiet", "--log-every", "1", *extra,
    ]


def test_training_reduces_loss_and_writes_loadable_model(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 60)) == 0
    log = [json.loads(line) for line in (out / "training" / "tiny" / "log.jsonl").read_text().splitlines()]
    first, last = np.mean([e["loss"] for e in log[:10]]), np.mean([e["loss"] for e in log[-10:]])
    assert last < 0.7 * first
    handle = explorer.load(out / "tiny.safetensors", device="cpu")
    card = handle.card
    assert card["training"]["steps"] == 60 and card["bias_free"] is True
    assert card["training"]["noise"]["sigma_max"] == 0.2
    y = torch.rand(1, 1, 16, 16)
    assert torch.isfinite(handle.denoise(y)).all()


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(image_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train.main(_args(image_folder, a, 40))
    train.main(_args(image_folder, b, 20))
    state = json.loads((b / "training" / "tiny" / "state.json").read_text())
    assert state["step"] == 20
    train.main(_args(image_folder, b, 40, "--resume"))
    wa = explorer.checkpoints.load_denoiser(a / "tiny.json")[0].state_dict()
    wb = explorer.checkpoints.load_denoiser(b / "tiny.json")[0].state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_resume_without_state_fails_cleanly(image_folder, tmp_path, capsys):
    assert train.main(_args(image_folder, tmp_path / "none", 5, "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_sigma_distributions_stay_in_range():
    g = torch.Generator().manual_seed(0)
    for dist in ("uniform", "sqrt"):
        s = train.sample_sigmas(10000, 0.0, 0.4, dist, g)
        assert s.min() >= 0 and s.max() <= 0.4
    # √σ uniform puts more mass on small σ than σ uniform
    assert train.sample_sigmas(10000, 0, 0.4, "sqrt", g).median() < train.sample_sigmas(10000, 0, 0.4, "uniform", g).median()


def test_warm_restart_reruns_the_schedule_from_the_restart_step(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20)) == 0
    assert train.main(_args(image_folder, out, 25, "--restart-at", "30", "--resume")) == 2  # after the total
    assert train.main(_args(image_folder, out, 40, "--restart-at", "30", "--resume")) == 2  # after the saved step
    assert "after the saved step 20" in capsys.readouterr().err
    assert train.main(_args(image_folder, out, 40, "--restart-at", "20", "--resume")) == 0
    card = json.loads((out / "tiny.json").read_text())
    assert card["training"]["steps"] == 40 and "warm restart of the schedule at step 20" in card["training"]["optimizer"]
    # the schedule restarted at step 20 is the fresh schedule shifted by 20 steps
    assert train.lr_at(25 - 20, 40 - 20, 1e-3) == pytest.approx(1e-3 * 6 / 200)
