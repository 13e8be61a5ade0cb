"""Safetensors + model card round trip, sha256 verification, catalog, and the model handle."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explorer
from explorer.checkpoints import CheckpointError, load_denoiser, read_card, save_model
from explorer.denoisers import DnCNN
from explorer.handle import ModelHandle


@pytest.fixture
def saved(tmp_path, tiny_bf_cnn):
    card = save_model(tiny_bf_cnn, "dncnn", tmp_path, "tiny", training={"data": "test"})
    return card, tiny_bf_cnn


def test_round_trip_gives_the_same_function(saved):
    card, model = saved
    loaded, meta = load_denoiser(card)
    y = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded.eval()(y), model(y), rtol=0, atol=0)
    assert meta["training"]["data"] == "test" and meta["bias_free"] is True


def test_tampered_weights_are_refused(saved):
    card, _ = saved
    weights = card.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256.*tiny.safetensors|tiny.safetensors.*sha256"):
        load_denoiser(card)


def test_truncated_weights_with_matching_hash_are_refused(saved):
    card, _ = saved
    weights = card.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    meta = json.loads(card.read_text())
    from explorer.checkpoints import sha256_file

    meta["sha256"] = sha256_file(weights)
    card.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="tiny.safetensors"):
        load_denoiser(card)


def test_mismatched_architecture_is_refused(saved):
    card, _ = saved
    meta = json.loads(card.read_text())
    meta["config"]["width"] = 16
    card.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_denoiser(card)


@pytest.mark.parametrize("weights", ["../evil.safetensors", "/etc/passwd", "x.pt", "sub/x.safetensors"])
def test_card_pointing_outside_its_folder_is_refused(saved, weights):
    card, _ = saved
    meta = json.loads(card.read_text())
    meta["weights"] = weights
    card.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights"):
        read_card(card)


def test_card_missing_fields_and_bad_json_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json"):
        read_card(bad)
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(CheckpointError, match="architecture"):
        read_card(bad)


def test_load_by_path_is_cached_and_catalog_lists_user_models(saved, monkeypatch):
    card, _ = saved
    monkeypatch.setenv("EXPLORER_MODELS", str(card.parent))
    h1 = explorer.load(card.with_suffix(".safetensors"), device="cpu")
    h2 = explorer.load("tiny", device="cpu")
    assert h1 is h2
    assert "tiny" in [c["name"] for c in explorer.catalog()]
    with pytest.raises(CheckpointError, match="no model named"):
        explorer.load("does-not-exist")


def test_handle_accepts_arrays_and_tensors(tiny_bf_cnn):
    h = ModelHandle(tiny_bf_cnn, device="cpu")
    assert not any(p.requires_grad for p in h.model.parameters()) and not h.model.training
    img = np.random.default_rng(0).random((12, 14), dtype=np.float32)
    out = h.denoise(img)
    assert isinstance(out, np.ndarray) and out.shape == img.shape
    t = torch.from_numpy(img)[None, None]
    np.testing.assert_allclose(h.denoise(t)[0, 0].numpy(), out, atol=1e-6)
    np.testing.assert_allclose(h.residual(img), img - out, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        h.denoise(torch.rand(1, 3, 8, 8))


def test_estimate_sigma_is_rms_of_residual(tiny_bf_cnn):
    h = ModelHandle(tiny_bf_cnn, device="cpu")
    y = torch.rand(3, 1, 16, 16)
    r = h.residual(y)
    torch.testing.assert_close(h.estimate_sigma(y), r.pow(2).mean(dim=(1, 2, 3)).sqrt())
