"""Card regression: every shipped model still measures what its card says.

For each model in ``pretrained/`` the weights must match the card's sha256 (``explorer.load`` refuses
otherwise), and one headline PSNR of its evaluation table is measured again with the table's own
protocol (same images, same seeded noise draws, output clamped to [0, 1]). The noise is the same
draw, so the only differences are floating-point ones (≪ 0.01 dB); a swapped, corrupted or retrained
weight file moves the number by far more than :data:`TOLERANCE_DB`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import explorer
from explorer.checkpoints import PRETRAINED_DIR, CheckpointError, load_denoiser
from explorer.energies_sources import items_for
from explorer.evaluate import Lineup, benchmark, benchmark_images, evaluate_models
from explorer.imagesets import read_image

from conftest import SHARED

TOLERANCE_DB = 0.1
#: The evaluation tables' labels and the data they were measured on (cheapest first); a label
#: ``denoising patches:DIR`` is a table of DIR's tiles (its entry gives their size and number per image).
DATA = {
    "mnist-heldout": "mnist",
    "discs-40": "discs:40",
    "calpha-40": "calpha:40",
    "denoising patches:../shared/data/bsd/Set68": "patches",
    "Set12": str(SHARED / "data" / "bsd" / "Set12"),
}
#: The tables of small images, measured again 64 images per pass (``evaluate_models(batch=64)``: each image
#: keeps its own noise draw, so the table is that of the CLI's one image at a time up to float rounding).
BATCHED = {"mnist-heldout", "discs-40", "calpha-40", "denoising patches:../shared/data/bsd/Set68"}


def table_images(label: str, entry: dict) -> list:
    """The images a table was measured on."""
    if DATA[label] == "patches":
        folder = label.split(":", 1)[1].replace("../shared", str(SHARED), 1)
        return [item.load() for item in items_for(f"patches:{folder}", patch=entry["patch"], per_image=entry["per_image"])]
    return benchmark_images(DATA[label], None)[1]
CARDS = sorted(PRETRAINED_DIR.glob("*.json"))


def headline(card: dict) -> tuple[str, str, dict]:
    """(label, σ key, table entry) of the card's cheapest PSNR table, at its middle noise level."""
    tables = {k: v for k, v in card.get("metrics", {}).items() if isinstance(v, dict) and "results" in v}
    for label in DATA:
        if label in tables:
            keys = list(tables[label]["results"])
            return label, keys[len(keys) // 2], tables[label]
    raise AssertionError(f"{card['name']}: no evaluation table on {list(DATA)} in its card (has {list(tables)})")


def test_every_shipped_model_has_a_card_and_weights():
    assert len(CARDS) >= 8
    for path in CARDS:
        card = json.loads(path.read_text())
        assert (path.parent / card["weights"]).is_file(), path


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_card_headline_psnr_reproduces(card_path: Path):
    handle = explorer.load(card_path, device="cpu")  # verifies the sha256 of the weights
    label, key, entry = headline(handle.card)
    images = table_images(label, entry)
    assert len(images) == entry["images"], f"{label}: the table used {entry['images']} images, the data has {len(images)}"
    sigma = float(key) / entry["sigma_scale"]
    if label in BATCHED:  # small images: the same protocol, many images per forward pass
        arrays = images if DATA[label] == "patches" else [read_image(ref, gray=handle.channels == 1) for ref in images]
        psnr = evaluate_models([handle], arrays, [sigma], seed=entry["seed"], progress=False, batch=64)[handle.name][sigma]["psnr"]
    else:
        measured = benchmark(Lineup(), images, [sigma], seed=entry["seed"], handles=[handle], progress=False)
        psnr = measured.results[handle.name][sigma]["psnr"]
    card_psnr = entry["results"][key]["psnr"]
    assert abs(psnr - card_psnr) <= TOLERANCE_DB, (
        f"{handle.name} on {label} at σ = {key}: measured {psnr:.3f} dB, the card says {card_psnr:.3f} dB")


def test_a_swapped_weight_file_is_refused(tmp_path):
    card = json.loads((PRETRAINED_DIR / "bf-discs.json").read_text())
    shutil.copy(PRETRAINED_DIR / "bf-discs.json", tmp_path / "bf-discs.json")
    shutil.copy(PRETRAINED_DIR / "bf-calpha.safetensors", tmp_path / card["weights"])  # same architecture, other weights
    with pytest.raises(CheckpointError, match="does not match the card"):
        load_denoiser(tmp_path / "bf-discs.json")


def test_a_corrupted_weight_file_is_refused(tmp_path):
    shutil.copy(PRETRAINED_DIR / "bf-discs.json", tmp_path / "bf-discs.json")
    data = bytearray((PRETRAINED_DIR / "bf-discs.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "bf-discs.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the card"):
        load_denoiser(tmp_path / "bf-discs.json")
