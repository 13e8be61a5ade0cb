"""Data-set energies: exact values on a known density, the per-file cache, bad files, statistics, the CLI, which
likelihood is computed (the discrete 8-bit bound for a dequantized model), the registry's MNIST splits."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from explorer.checkpoints import load, save_model
from explorer.energies import (
    absolute_source,
    compute_energies,
    data_note,
    energies_of,
    folder_items,
    gumbel_fit,
    gumbel_pdf,
    items_for,
    items_for_source,
    main,
    percentile_indices,
    quantity_of_source,
    reference_energies,
    source_spec,
    summary,
)
from explorer.energy import CONTINUOUS, DEFAULT_DRAWS, EnergyUNet, NLLQuantity, discrete_nll, nll_quantity

torch.set_num_threads(1)


def gaussian_energy_model() -> EnergyUNet:
    """An EnergyUNet whose network is switched off: exactly x ~ N(m, v I), normalized (log Z = 0)."""
    torch.manual_seed(0)
    model = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8, t_min=1e-6)
    with torch.no_grad():
        model.head.weight.zero_()
        model.data_mean.fill_(0.5)
        model.data_var.fill_(0.04)
        model.log_z.fill_(0.0)
    return model.eval()


def exact_nll(img: np.ndarray, m=0.5, v=0.04, t=1e-6) -> float:
    x = img.astype(np.float64)
    return float(((x - m) ** 2).sum() / (2 * (v + t)) + x.size / 2 * math.log(2 * math.pi * (v + t)))


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(5):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    Image.fromarray((rng.random((16, 8)) * 255).astype(np.uint8)).save(d / "tall.png")
    (d / "broken.png").write_bytes(b"not a png at all")
    return d


def test_energies_are_exact_and_cached_per_file(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = gaussian_energy_model()
    items = folder_items(folder)
    rep = compute_energies(model, items, "src", progress=False)
    assert rep.normalized and rep.cached == 0
    assert rep.failures and rep.failures[0][0] == "broken.png"  # reported, not silent
    assert "skipped broken.png" in capsys.readouterr().err
    assert sorted(rep.labels) == sorted(["im0.png", "im1.png", "im2.png", "im3.png", "im4.png", "tall.png"])
    for label, value, d in zip(rep.labels, rep.values, rep.dims):
        img = np.asarray(Image.open(folder / label), dtype=np.float32) / 255
        assert value == pytest.approx(exact_nll(img), rel=1e-5)
        assert d == img.size
    # second run: everything from the cache
    again = compute_energies(model, folder_items(folder), "src", progress=False)
    assert again.cached == 6 and np.allclose(again.values, rep.values)
    # change one file: only it is recomputed, and its new energy is right
    new = np.full((8, 8), 128, np.uint8)
    Image.fromarray(new).save(folder / "im2.png")
    third = compute_energies(model, folder_items(folder), "src", progress=False)
    assert third.cached == 5
    assert third.values[third.labels.index("im2.png")] == pytest.approx(exact_nll(new / 255.0), rel=1e-5)


def test_cache_is_tied_to_the_model(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = gaussian_energy_model()
    compute_energies(model, folder_items(folder), "src", progress=False)
    with torch.no_grad():
        model.log_z.fill_(10.0)
    rep = compute_energies(model, folder_items(folder), "src", progress=False)
    assert rep.cached == 0  # a different log Z is a different model


def test_unnormalized_model_gives_relative_energies(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = gaussian_energy_model()
    with torch.no_grad():
        model.log_z.fill_(float("nan"))
    rep = compute_energies(model, folder_items(folder), "src", progress=False, use_cache=False)
    assert not rep.normalized and np.isfinite(rep.values).all()


def test_gumbel_fit_recovers_known_parameters():
    x = stats.gumbel_r.rvs(loc=3.0, scale=0.5, size=4000, random_state=0)
    fit = gumbel_fit(x)
    assert fit["side"] == "right" and fit["converged"]
    ref_loc, ref_scale = stats.gumbel_r.fit(x)  # scipy's own MLE
    assert fit["loc"] == pytest.approx(ref_loc, abs=1e-3) and fit["scale"] == pytest.approx(ref_scale, rel=1e-3)
    assert fit["loc"] == pytest.approx(3.0, abs=0.05) and fit["scale"] == pytest.approx(0.5, rel=0.05)
    left = gumbel_fit(-x)
    assert left["side"] == "left" and left["loc"] == pytest.approx(-fit["loc"], abs=1e-4)
    grid = np.linspace(0, 10, 2001)
    assert np.trapezoid(gumbel_pdf(grid, fit), grid) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(gumbel_pdf(grid, fit), stats.gumbel_r.pdf(grid, fit["loc"], fit["scale"]), rtol=1e-9)


def test_summary_and_percentiles():
    v = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    s = summary(v)
    assert s["count"] == 5 and s["mean"] == 3.0 and s["median"] == 3.0 and s["std"] == pytest.approx(np.std(v, ddof=1))
    idx = percentile_indices(v, [50])
    assert idx["min"] == 1 and idx["max"] == 0 and v[idx["p50"]] == 3.0


def test_reference_energies_of_constant_and_noise_images():
    model = gaussian_energy_model()
    refs = reference_energies(model, (8, 8), levels=3, noise_images=4)
    for g, e in zip(refs["gray_levels"], refs["constant"]):
        assert e == pytest.approx(exact_nll(np.full((8, 8), g)), rel=1e-5)
    assert refs["constant"][1] < refs["constant"][0]  # the mean gray is the most probable constant
    assert len(refs["uniform_noise"]) == 4


def test_cli_writes_report_and_percentile_images(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    (folder / "tall.png").unlink()
    save_model(gaussian_energy_model(), "energy-unet", tmp_path / "models", "gauss-energy")
    card = str(tmp_path / "models" / "gauss-energy.json")
    assert main([card, "--data", str(folder), "--out", str(tmp_path / "r.json"), "--quiet", "--unit", "nats"]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"]["count"] == 5 and rep["failures"][0]["label"] == "broken.png"
    assert rep["percentiles"]["max"]["value"] == pytest.approx(max(rep["nats"]))
    assert main([card, "--data", str(folder), "--out", str(tmp_path / "r.npz"), "--quiet"]) == 0
    assert "5 images (5 cached" in capsys.readouterr().out
    with np.load(tmp_path / "r.npz") as z:
        assert z["percentile_images"].shape == (len(z["percentile_names"]), 8, 8)


def test_the_cache_keeps_entries_of_items_outside_a_later_call(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = gaussian_energy_model()
    items = [it for it in folder_items(folder) if it.label != "broken.png"][:4]
    first = compute_energies(model, items[:2], "src", progress=False)
    second = compute_energies(model, items[2:], "src", progress=False)
    both = compute_energies(model, items, "src", progress=False)
    assert first.cached == 0 and second.cached == 0 and both.cached == 4
    np.testing.assert_allclose(both.values, np.concatenate([first.values, second.values]))


# --------------------------------------------------------------------------- which quantity, MNIST splits
def dequantized_model_card(tmp_path) -> str:
    """The Gaussian model saved with a card that says it was trained on 8-bit data + U(0, 2^-8) (like energy-mnist)."""
    save_model(gaussian_energy_model(), "energy-unet", tmp_path / "models", "gauss-8bit",
               energy={"dequantize_bits": 8, "log_z": 0.0})
    return str(tmp_path / "models" / "gauss-8bit.json")


def fake_mnist(tmp_path, monkeypatch, n: int = 510) -> np.ndarray:
    """An IDX3 file of n random 28×28 digits at $EXPLORER_MNIST: 10 training digits, then the 500 held out."""
    import struct

    digits = np.random.default_rng(2).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(struct.pack(">4I", 2051, n, 28, 28) + digits.tobytes())
    monkeypatch.setenv("EXPLORER_MNIST", str(path))
    return digits


def test_mnist_sources_follow_the_registry_split(tmp_path, monkeypatch):
    digits = fake_mnist(tmp_path, monkeypatch)
    held, train, every = items_for("mnist:held-out"), items_for("mnist:training"), items_for("mnist")
    assert len(held) == 500 and len(train) == 10 and len(every) == 510
    assert held[0].label == "held-out digit 10" and held[-1].label == "held-out digit 509"
    assert train[0].label == "training digit 0" and every[9].label == "training digit 9" and every[10].label == held[0].label
    np.testing.assert_array_equal(held[0].load()[2:30, 2:30], digits[10] / np.float32(255))  # zero-padded to 32×32
    assert held[0].load().shape == (32, 32) and held[0].key == every[10].key  # the same image, the same cache key
    assert "not comparable with 28×28 MNIST" in data_note("mnist:held-out") and data_note("some/folder") is None


def test_a_dequantized_model_gets_the_discrete_8bit_likelihood(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    (folder / "tall.png").unlink()
    card = dequantized_model_card(tmp_path)
    handle = load(card, device="cpu")
    q = nll_quantity(handle.card)
    assert q == NLLQuantity(8, DEFAULT_DRAWS, 0)
    assert main([card, "--data", str(folder), "--out", str(tmp_path / "d.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "quantity: −log P(x) of the 8-bit image" in out and "−log P(x), 8-bit discrete in bits/dim: mean" in out
    rep = json.loads((tmp_path / "d.json").read_text())
    assert rep["quantity"]["bits"] == 8 and rep["quantity"]["draws"] == DEFAULT_DRAWS and rep["mean_stderr_of_draws"] > 0
    # the numbers are the bound of explorer.energy.discrete_nll on the 8-bit images, not the density at them
    items = [it for it in folder_items(folder) if it.label != "broken.png"]
    x = torch.from_numpy(np.stack([it.load() for it in items]))[:, None]
    bound = discrete_nll(handle.nll, x, 8, DEFAULT_DRAWS, 0).nats.numpy()
    by_label = dict(zip(rep["labels"], rep["nats"]))
    np.testing.assert_allclose([by_label[it.label] for it in items], bound, rtol=1e-12)
    assert main([card, "--data", str(folder), "--out", str(tmp_path / "c.json"), "--quiet", "--continuous"]) == 0
    out = capsys.readouterr().out
    assert "(0 cached" in out and "the continuous density on [0,1]^d at the image itself" in out  # its own cache
    cont = json.loads((tmp_path / "c.json").read_text())
    assert cont["quantity"]["bits"] == 0
    assert [dict(zip(cont["labels"], cont["nats"]))[it.label] for it in items] == pytest.approx(
        [exact_nll(np.asarray(it.load())) for it in items], rel=1e-5)


def test_quantity_travels_with_the_source_and_the_handle_gives_the_same_numbers(folder, tmp_path):
    card = dequantized_model_card(tmp_path)
    handle = load(card, device="cpu")
    q = nll_quantity(handle.card)
    src = source_spec(str(folder), quantity=q)
    assert quantity_of_source(src) == q and quantity_of_source(source_spec(str(folder))) is CONTINUOUS
    assert json.loads(absolute_source(src))["quantity"] == q.spec()
    items = items_for_source(src)  # what a Dask worker lists: the items carry the quantity
    assert all(it.quantity == q for it in items)
    fresh, _ = energies_of(handle.model, items, progress=False)  # the worker's call: no quantity argument
    local = compute_energies(handle, folder_items(folder), src, use_cache=False, progress=False)
    assert local.quantity == q and np.isfinite(local.draw_sd).all()
    np.testing.assert_allclose([fresh[k][0] for k in (it.key for it in folder_items(folder)) if k in fresh], local.values)
    bare = compute_energies(handle.model, folder_items(folder), src, use_cache=False, progress=False)
    np.testing.assert_allclose(bare.values, local.values, rtol=1e-12)
    assert local.mean_stderr("bits/dim") == pytest.approx(
        math.sqrt(np.sum((local.draw_sd / (local.dims * math.log(2))) ** 2 / DEFAULT_DRAWS)) / len(local.values))


def test_write_card_records_the_held_out_nll_with_its_command(tmp_path, monkeypatch, capsys):
    fake_mnist(tmp_path, monkeypatch)
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    card = dequantized_model_card(tmp_path)
    argv = [card, "--data", "mnist:held-out", "--count", "4", "--out", str(tmp_path / "h.json"), "--quiet", "--write-card"]
    assert main(argv) == 0
    assert "not comparable with 28×28 MNIST" in capsys.readouterr().out
    metrics = json.loads(Path(card).read_text())["metrics"]
    entry = metrics["heldout_nll"]
    rep = json.loads((tmp_path / "h.json").read_text())
    assert entry["command"] == "python -m explorer.energies " + " ".join(argv) and entry["images"] == 4
    assert entry["mean_bits_per_dim"] == pytest.approx(rep["summary"]["mean"], abs=1e-5) and entry["dims"] == 1024
    assert metrics["heldout_bits_per_dim_8bit"] == pytest.approx(entry["mean_bits_per_dim"], abs=1e-4)
    assert metrics["heldout_bits_per_dim"] == pytest.approx(entry["mean_bits_per_dim"] - 8, abs=1e-4)
    # the continuous density at the dequantized digits: 8 bits/dim = 80·log10(2) dB/dim less than the 8-bit bound
    assert entry["mean_bits_per_dim_continuous_dequantized"] == pytest.approx(entry["mean_bits_per_dim"] - 8, abs=1e-4)
    assert entry["mean_db_per_dim_continuous_dequantized"] == pytest.approx(
        entry["mean_db_per_dim"] - 80 * math.log10(2), abs=1e-4)
    assert [lab.split()[0] for lab in rep["labels"]] == ["held-out"] * 4


def test_read_cache_lists_what_the_cache_holds_and_a_runner_computes_the_rest(folder, tmp_path, monkeypatch):
    from explorer.energies import cache_path, read_cache

    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = gaussian_energy_model()
    items = [it for it in folder_items(folder) if it.label != "broken.png"]
    assert read_cache(cache_path(model, "src")) == {}
    compute_energies(model, items[:3], "src", progress=False)
    held = read_cache(cache_path(model, "src"))
    assert set(held) == {it.key for it in items[:3]}
    for nats, d, sd in held.values():
        assert math.isfinite(nats) and d == 64 and math.isnan(sd)
    batches = []

    def serial_in_twos(fn, todo, *, most=None, desc="", progress=False):
        batches.extend(len(todo[i:i + 2]) for i in range(0, len(todo), 2))
        return [fn(list(todo[i:i + 2])) for i in range(0, len(todo), 2)]

    serial_in_twos.in_process = True  # it may be handed closures over the model
    rep = compute_energies(model, items, "src", progress=False, runner=serial_in_twos)
    assert rep.cached == 3 and sum(batches) == len(items) - 3 and max(batches) == 2
    reference = compute_energies(model, items, "src", use_cache=False, progress=False)
    np.testing.assert_allclose(rep.values, reference.values, rtol=1e-6)
