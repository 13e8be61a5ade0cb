"""The figures that carried-runs/README.md states for a finished, unshipped experiment are measured again."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import explorer
from explorer.energies_sources import items_for
from explorer.evaluate import evaluate_models

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "carried-runs" / "README.md"
WIDTH32 = ROOT / "carried-runs" / "energy-natural-gray" / "energy-natural-gray.json"


def test_the_width_32_energy_models_denoising_table_reproduces():
    """README: "on Set68's 1088 tiles, σ = a / b / … : p / q / … dB" for the width-32 energy model, one level measured again with the
    command it names (compare_energy_score.py: 16 tiles of 32×32 per image, seed 0, non-blind)."""
    if not WIDTH32.is_file():
        pytest.skip("the width-32 run is no longer carried")
    text = " ".join(README.read_text().split())
    m = re.search(r"1088 tiles, σ = ([\d. /]+): ([\d. /]+) dB", text)
    assert m, "carried-runs/README.md no longer states the width-32 table"
    sigmas = [float(s) for s in m.group(1).split("/")]
    stated = [float(p) for p in m.group(2).split("/")]
    images = [item.load() for item in items_for(f"patches:{SHARED / 'data' / 'bsd' / 'Set68'}", patch=32, per_image=16)]
    assert len(images) == 1088
    handle = explorer.load(WIDTH32, device="cpu")
    s, p = sigmas[1], stated[1]  # one level of the four (the suite's time): σ = 0.1
    measured = evaluate_models([handle], images, [s], seed=0, progress=False, batch=64)[handle.name][s]["psnr"]
    assert measured == pytest.approx(p, abs=0.01), (s, measured, p)
