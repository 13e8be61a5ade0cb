"""Data-set jobs on a 2-worker local Dask cluster give the single-machine numbers, cache and failures."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.checkpoints import save_model
from explorer.data.files import list_images
from explorer.denoisers import DnCNN
from explorer.distributed import DaskRunner, client_for, effective_dims, runner_for, split
from explorer.energies import compute_energies, items_for, items_for_source, source_spec
from explorer.energies import main as energies_main
from explorer.energy import EnergyUNet
from explorer.evaluate import Lineup, benchmark
from explorer.evaluate import main as evaluate_main

torch.set_num_threads(1)

GOOD = 12  # readable images in the folder; one more file is broken


@pytest.fixture(scope="module")
def client():
    """One 2-process local cluster for the whole module, shut down at the end."""
    with client_for(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def dask(client):
    """The runner hook on that cluster."""
    return DaskRunner(client)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 small gray PNGs (two shapes) and a file that is not an image."""
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        shape = (16, 16) if i % 4 else (16, 24)
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(d / f"im{i:02d}.png")
    (d / "broken.png").write_bytes(b"not a png at all")
    return d


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny normalized EnergyUNet and a tiny DnCNN, saved so that workers load them by path."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    energy = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8)
    with torch.no_grad():
        energy.head.weight.mul_(5.0)  # a network far from the Gaussian start
        energy.data_mean.fill_(0.5)
        energy.data_var.fill_(0.08)
        energy.log_z.fill_(1.5)
    torch.manual_seed(1)
    cnn = DnCNN(depth=3, width=4).eval()
    return (str(save_model(energy.eval(), "energy-unet", d, "tiny-energy").with_suffix(".safetensors")),
            str(save_model(cnn, "dncnn", d, "tiny-cnn").with_suffix(".safetensors")))


def test_split_covers_the_sequence_in_order(client):
    batches = split(list(range(37)), client)
    assert [x for b in batches for x in b] == list(range(37))
    assert len(batches) == 8  # 4 per worker thread, 2 threads
    assert max(map(len, split(list(range(37)), client, most=3))) == 3


def test_energies_match_local_and_share_the_cache(client, dask, folder, models, tmp_path, monkeypatch):
    from explorer import load

    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = load(models[0], device="cpu").model
    source = source_spec(str(folder))
    local = compute_energies(model, items_for(str(folder)), source, batch=5, use_cache=False, progress=False)
    remote = compute_energies(model, items_for_source(source), source, batch=5, progress=False,
                              runner=dask, model_ref=models[0])
    assert remote.cached == 0 and len(remote.labels) == GOOD
    order = [remote.labels.index(label) for label in local.labels]
    np.testing.assert_allclose(remote.values[order], local.values, rtol=1e-6)
    np.testing.assert_array_equal(remote.dims[order], local.dims)
    again = compute_energies(model, items_for(str(folder)), source, batch=5, progress=False)
    assert again.cached == GOOD and again.labels == remote.labels
    np.testing.assert_array_equal(again.values, remote.values)
    for report in (local, remote, again):  # the broken file: reported, not dropped
        assert [label for label, _ in report.failures] == ["broken.png"]
    opened = client.run(lambda: [key[0] for key in __import__("explorer.runner").runner._OPENED])
    assert len(opened) == 2 and all("energy" in kinds for kinds in opened.values())  # both workers took batches
    with pytest.raises(ValueError, match="model_ref"):
        compute_energies(model, items_for(str(folder)), source, use_cache=False, progress=False, runner=dask)


def test_workers_refuse_other_weights(dask, folder, models, tmp_path, monkeypatch):
    from explorer import load

    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    model = load(models[0], device="cpu").model
    other = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.log_z.fill_(0.0)
    with pytest.raises(RuntimeError, match="other weights"):
        compute_energies(other.eval(), items_for(str(folder)), source_spec(str(folder)), progress=False,
                         runner=dask, model_ref=models[0])
    assert not (tmp_path / "cache").exists()


def test_energies_cli_on_a_scheduler(client, folder, models, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "dask.json", tmp_path / "local.json"
    common = [models[0], "--data", str(folder), "--unit", "nats", "--quiet"]
    assert energies_main([*common, "--out", str(a), "--scheduler", client.scheduler.address]) == 0
    assert energies_main([*common, "--out", str(b), "--no-cache"]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["labels"] == rb["labels"] and ra["cached"] == 0
    np.testing.assert_allclose(ra["nats"], rb["nats"], rtol=1e-6)
    assert ra["failures"] == rb["failures"] == [{"label": "broken.png", "reason": rb["failures"][0]["reason"]}]


def test_evaluation_table_matches_local(dask, folder, models):
    lineup = Lineup((models[1],), classical=True)
    files = list_images(folder)
    sigmas = [15 / 255, 50 / 255]
    local = benchmark(lineup, files, sigmas, seed=3, progress=False)
    remote = benchmark(lineup, files, sigmas, seed=3, runner=dask, progress=False)
    assert remote.results == local.results  # bit for bit: same noise per image, same summation order
    assert set(remote.results) == {"tiny-cnn", "gaussian", "wiener", "haar"}
    assert all(math.isfinite(c["psnr"]) for row in remote.results.values() for c in row.values())
    assert remote.images == local.images == GOOD
    assert [n for n, _ in remote.failures] == [n for n, _ in local.failures] == ["broken.png"]


def test_evaluate_cli_on_a_scheduler(client, folder, models, tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    for f in list_images(folder)[1:5]:
        (good / f.name).write_bytes(f.read_bytes())
    a, b = tmp_path / "dask.json", tmp_path / "local.json"
    common = [models[1], "--data", str(good), "--sigma", "25", "--quiet"]
    assert evaluate_main([*common, "--json", str(a), "--scheduler", client.scheduler.address]) == 0
    assert evaluate_main([*common, "--json", str(b)]) == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    capsys.readouterr()
    for where in (["--scheduler", client.scheduler.address], []):
        assert evaluate_main([models[1], "--data", str(folder), "--sigma", "25", "--quiet", *where]) == 1
        err = capsys.readouterr().err
        assert "broken.png" in err and "1 of 13 images unusable" in err


def test_effective_dims_match_local(dask, folder, models):
    local = effective_dims(models[1], folder, 25 / 255, seed=1, progress=False)
    remote = effective_dims(models[1], folder, 25 / 255, seed=1, runner=dask, progress=False)
    assert remote.labels == local.labels and len(local.labels) == GOOD
    assert {e.method for e in remote.estimates} == {"exact"}  # 16×16 and 16×24 images: dense Jacobians
    np.testing.assert_allclose(remote.values, local.values, rtol=1e-6)
    assert np.all((local.values > 0) & (local.values < 16 * 24))
    assert [n for n, _ in remote.failures] == [n for n, _ in local.failures] == ["broken.png"]


def test_client_for_needs_one_place():
    with client_for() as c:
        assert c is None
    with runner_for() as r:
        assert r is None  # the library's serial default
    with pytest.raises(ValueError, match="not both"), client_for("tcp://127.0.0.1:1", 2):
        pass


def test_client_argument_is_a_deprecated_alias_of_the_dask_runner(client, folder, models, tmp_path, monkeypatch):
    from explorer import load

    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    lineup = Lineup((models[1],))
    files = list_images(folder)
    with pytest.warns(DeprecationWarning, match="runner="):
        old = benchmark(lineup, files, [25 / 255], seed=3, client=client, progress=False)
    assert old.results == benchmark(lineup, files, [25 / 255], seed=3, progress=False).results
    with pytest.warns(DeprecationWarning):
        dims = effective_dims(models[1], folder, 25 / 255, seed=1, client=client, progress=False)
    assert dims.labels == effective_dims(models[1], folder, 25 / 255, seed=1, progress=False).labels
    model = load(models[0], device="cpu").model
    source = source_spec(str(folder))
    with pytest.warns(DeprecationWarning):
        rep = compute_energies(model, items_for(str(folder)), source, use_cache=False, progress=False,
                               client=client, model_ref=models[0])
    assert len(rep.labels) == GOOD
    with pytest.raises(ValueError, match="not both"), pytest.warns(DeprecationWarning):
        benchmark(lineup, files, [25 / 255], client=client, runner=DaskRunner(client), progress=False)
