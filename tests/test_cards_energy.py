"""Card regression for the energy models: the likelihood figures their cards record regenerate with the
commands recorded beside them (run again here, on the same images and seeded dequantization draws):
the held-out NLL, the stationary Gaussian baseline with the model's paired margin, and the one-pass vs
probability-flow ODE cross-check (its first image, since the ODE costs seconds per image)."""
from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from explorer import energies, gaussian_baseline
from explorer.checkpoints import PRETRAINED_DIR
from explorer.likelihood import LN2

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE_BITS = 0.005  # the same images and draws: only floating-point differences remain (≪ this)
TOLERANCE_ODE_BITS = 0.05  # one image instead of a batch: the Hutchinson probes are other draws


def recorded(prefix: str) -> list[tuple[str, str, dict]]:
    """(model, key, entry) of every shipped card's metrics entry whose key starts with ``prefix``."""
    out = []
    for path in sorted(PRETRAINED_DIR.glob("*.json")):
        card = json.loads(path.read_text())
        for key, entry in (card.get("metrics") or {}).items():
            if key.startswith(prefix) and isinstance(entry, dict) and "command" in entry:
                out.append((card["name"], key, entry))
    return out


def argv_of(command: str, program: list[str], tmp_path: Path) -> list[str]:
    """The arguments of a recorded command, without ``--write-card``, with ``--out`` in ``tmp_path`` and the
    shared data found from the tests (``../shared`` is relative to the repository root)."""
    words = shlex.split(command)
    assert words[:len(program)] == program, command
    argv = []
    for word in words[len(program):]:
        if word != "--write-card":
            argv.append(word.replace("../shared", str(SHARED), 1) if "../shared" in word else word)
    if "--out" in argv:
        argv[argv.index("--out") + 1] = str(tmp_path / "result.json")
    return argv


NLL = recorded("nll ") + recorded("heldout_nll")
BASELINES = recorded("gaussian_baseline ")
ODE = recorded("ode_cross_check")


def test_the_natural_image_energy_model_records_each_figure():
    assert {m for m, *_ in NLL} >= {"energy-natural-gray"}
    assert {m for m, *_ in BASELINES} >= {"energy-natural-gray"}
    assert {m for m, *_ in ODE} >= {"energy-natural-gray", "energy-mnist"}


@pytest.mark.parametrize("model,key,entry", NLL, ids=[f"{m}:{k}" for m, k, _ in NLL])
def test_card_heldout_nll_reproduces(model, key, entry, tmp_path):
    argv = argv_of(entry["command"], ["python", "-m", "explorer.energies"], tmp_path)
    argv += [] if "--no-cache" in argv else ["--no-cache"]
    argv += [] if "--out" in argv else ["--out", str(tmp_path / "result.json")]
    assert energies.main(argv + ["--quiet"]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    bits = np.asarray(result["nats"]) / (np.asarray(result["dims"]) * LN2)
    assert len(bits) == entry["images"]
    assert abs(bits.mean() - entry["mean_bits_per_dim"]) <= TOLERANCE_BITS, (
        f"{model} {key}: measured {bits.mean():.4f} bits/dim, the card says {entry['mean_bits_per_dim']:.4f}")


@pytest.mark.parametrize("model,key,entry", BASELINES, ids=[f"{m}:{k}" for m, k, _ in BASELINES])
def test_card_gaussian_baseline_and_margin_reproduce(model, key, entry, tmp_path):
    argv = argv_of(entry["command"], ["python", "-m", "explorer.gaussian_baseline"], tmp_path)
    assert gaussian_baseline.main(argv + ["--out", str(tmp_path / "result.json")]) == 0
    measured = gaussian_baseline.card_entry({**json.loads((tmp_path / "result.json").read_text()), "command": ""})
    assert measured["heldout_patches"] == entry["heldout_patches"]
    for got, want in zip(measured["quantities"], entry["quantities"], strict=True):
        for column in ("gaussian", "model", "margin"):
            if column in want:
                g, w = got[column]["bits/dim"]["mean"], want[column]["bits/dim"]["mean"]
                assert abs(g - w) <= TOLERANCE_BITS, f"{model} {want['quantity']}: {column} {g:.4f} ≠ card {w:.4f} bits/dim"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model,key,entry", ODE, ids=[f"{m}:{k}" for m, k, _ in ODE])
def test_card_ode_cross_check_reproduces_on_its_first_image(model, key, entry, tmp_path):
    script = load_script("check_nll_ode")
    argv = argv_of(entry["command"], ["python", "scripts/check_nll_ode.py"], tmp_path)
    argv[argv.index("--images") + 1] = "1"
    r = script.measure(script.parse_args(argv))
    assert abs(r["one_pass_bits_per_dim"][0] - entry["one_pass_bits_per_dim"][0]) <= TOLERANCE_BITS
    assert abs(r["ode_bits_per_dim"][0] - entry["ode_bits_per_dim"][0]) <= TOLERANCE_ODE_BITS, (
        f"{model}: ODE {r['ode_bits_per_dim'][0]:.4f} bits/dim, the card says {entry['ode_bits_per_dim'][0]:.4f}")
