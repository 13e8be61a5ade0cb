"""The weights' exponential moving average: its update rule on a known sequence, the swap in and out, and
a training run with --ema: the card's weights are the average, resume continues it exactly."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from explorer import train
from explorer.weight_average import WeightAverage, average_decay

from test_train import image_folder  # noqa: F401  (the smooth training images of the trainer's tests)


def test_the_average_of_a_known_sequence_matches_the_recursion_written_out():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.zero_(), net.bias.zero_()
    avg = WeightAverage(net, decay=0.9)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0, -1.0, 3.0] * 4, start=1):
        with torch.no_grad():
            net.weight.fill_(value), net.bias.fill_(value)
        avg.update(net)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    assert avg.updates == 20
    assert torch.allclose(avg.tensors["weight"], torch.full((2, 3), expected), atol=1e-6)
    assert average_decay(0.9, 1) == pytest.approx(2 / 11) and average_decay(0.9, 1000) == 0.9


def test_applied_swaps_the_average_in_and_the_own_weights_back():
    net = torch.nn.Linear(2, 2)
    avg = WeightAverage(net, decay=0.5)
    own = net.weight.detach().clone()
    with torch.no_grad():
        avg.tensors["weight"].fill_(7.0)
    with avg.applied(net):
        assert torch.all(net.weight == 7.0)
    assert torch.equal(net.weight, own)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def _args(folder, out, steps, *extra):
    return ["--data", str(folder), "--name", "tiny", "--out", str(out), "--arch", "dncnn", "--depth", "3",
            "--width", "8", "--patch", "16", "--batch", "4", "--steps", str(steps), "--checkpoint-every", "10",
            "--lr", "3e-3", "--sigma-min", "0.1", "--sigma-max", "0.2", "--quiet", "--device", "cpu",
            "--recalibrate", "0", "--ema", "0.8", *extra]


def test_a_run_with_ema_ships_the_average_and_resume_continues_it_exactly(image_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main(_args(image_folder, a, 30)) == 0
    assert train.main(_args(image_folder, b, 20)) == 0
    state = json.loads((b / "training" / "tiny" / "state.json").read_text())
    assert state["average"] == {"decay": 0.8, "updates": 20, "from_step": 0}
    shipped, trained = load_file(str(b / "tiny.safetensors")), load_file(str(b / "training" / "tiny" / "weights.safetensors"))
    assert any(not torch.equal(shipped[k], trained[k]) for k in shipped)  # mid-run the card holds the average
    assert train.main(_args(image_folder, b, 30, "--resume")) == 0
    wa, wb = load_file(str(a / "tiny.safetensors")), load_file(str(b / "tiny.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    card = json.loads((a / "tiny.json").read_text())
    assert card["training"]["weight_average"]["updates"] == 30
    assert "exponential moving average (decay 0.8" in card["training"]["weight_average"]["text"]


def test_a_bad_decay_is_refused(image_folder, tmp_path, capsys):
    assert train.main(_args(image_folder, tmp_path / "o", 5)[:-2] + ["--ema", "1.5"]) == 2
    assert "--ema must be in [0, 1)" in capsys.readouterr().err
