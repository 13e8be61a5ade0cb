"""``python -m explorer.publish``: the one way a trained model enters pretrained/ (weights + card with its
evaluation table; never the optimizer state), refusing what it should."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from explorer import checkpoints, evaluate, publish, train


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A stand-in for pretrained/ (so that nothing is published into the real one) and the run folders."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", folder)
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EXPLORER_MODELS", str(tmp_path / "models"))
    return folder


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    for i in range(3):
        img = 0.5 + 0.4 * np.sin(2 * np.pi * (rng.random() * xx + rng.random() * yy))
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def trained(images, steps: int = 10):
    """Train the tiny model into its default run folder ($EXPLORER_RUNS/tiny); return that folder."""
    assert train.main(["--data", str(images), "--name", "tiny", "--arch", "dncnn", "--depth", "3", "--width", "4",
                       "--patch", "16", "--batch", "4", "--steps", str(steps), "--recalibrate", "0", "--quiet",
                       "--device", "cpu", *(["--resume"] if steps > 10 else [])]) == 0
    return checkpoints.runs_dir() / "tiny"


def evaluated(run, images):
    """``evaluate --write-card`` on the run's card: the evaluation table publish asks for."""
    assert evaluate.main([str(run / "tiny.json"), "--data", str(images), "--sigma", "25", "--write-card", "--quiet"]) == 0
    return run


def test_publish_copies_weights_and_card_with_its_table_and_nothing_else(shipped, images):
    run = evaluated(trained(images), images)
    assert publish.main([str(run)]) == 0
    assert sorted(p.name for p in shipped.iterdir()) == ["tiny.json", "tiny.safetensors"]  # no optimizer state, no log
    card = json.loads((shipped / "tiny.json").read_text())
    source = json.loads((run / "tiny.json").read_text())
    assert {k: v for k, v in card.items() if k != "metrics"} == {k: v for k, v in source.items() if k != "metrics"}
    assert checkpoints.sha256_file(shipped / "tiny.safetensors") == card["sha256"]
    # the recorded command regenerates the table from the shipped model: it names it, not the run's path
    assert str(run) in source["metrics"]["imgs"]["command"]
    assert card["metrics"]["imgs"]["command"].startswith("python -m explorer.evaluate tiny --data")
    assert card["metrics"]["imgs"]["results"] == source["metrics"]["imgs"]["results"]
    assert "tiny" in [c["name"] for c in checkpoints.catalog()]
    model, _ = checkpoints.load_denoiser(shipped / "tiny.json")
    assert model.config["depth"] == 3


@pytest.mark.parametrize("form", ["card", "weights"])
def test_publish_takes_a_card_or_its_weights(shipped, images, form):
    run = evaluated(trained(images), images)
    source = run / ("tiny.json" if form == "card" else "tiny.safetensors")
    assert publish.publish(source) == shipped / "tiny.json"


def test_a_card_without_an_evaluation_table_is_refused_with_the_command_to_run(shipped, images, capsys):
    run = trained(images)
    assert publish.main([str(run)]) == 1
    err = capsys.readouterr().err
    assert "no evaluation table" in err
    assert f"python -m explorer.evaluate {run / 'tiny.json'} --data TEST_FOLDER" in err and "--write-card" in err
    assert list(shipped.iterdir()) == []


def test_a_shipped_model_is_replaced_only_with_force(shipped, images, capsys):
    run = evaluated(trained(images), images)
    assert publish.main([str(run)]) == 0
    first = (shipped / "tiny.safetensors").read_bytes()
    run = evaluated(trained(images, steps=20), images)  # a fine-tune of the same name: new weights
    assert publish.main([str(run)]) == 1
    assert "--force" in capsys.readouterr().err and (shipped / "tiny.safetensors").read_bytes() == first
    assert publish.main([str(run), "--force"]) == 0
    card = json.loads((shipped / "tiny.json").read_text())
    assert card["training"]["steps"] == 20 and checkpoints.sha256_file(shipped / "tiny.safetensors") == card["sha256"]
    assert (shipped / "tiny.safetensors").read_bytes() != first


def test_weights_that_do_not_match_their_card_are_refused(shipped, images, capsys):
    run = evaluated(trained(images), images)
    weights = run / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert publish.main([str(run)]) == 1
    assert "does not match the card" in capsys.readouterr().err
    assert list(shipped.iterdir()) == []


def test_sources_that_are_not_runs_or_already_shipped_are_refused(shipped, images, tmp_path):
    with pytest.raises(publish.PublishError, match="no model card"):
        publish.publish(tmp_path / "imgs")
    with pytest.raises(publish.PublishError, match="not a run folder"):
        publish.publish(tmp_path / "missing.json")
    run = evaluated(trained(images), images)
    publish.publish(run)
    with pytest.raises(publish.PublishError, match="already"):
        publish.publish(shipped / "tiny.json", force=True)
