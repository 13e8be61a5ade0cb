"""EnergyView without a browser, on a tiny random-weight EnergyUNet (log Z set) and a folder of 16×16 PNGs:
the energies shown are compute_energies', units convert, a tapped bin holds exactly its images, the
extremes are argmin/argmax, an upload's energy is model.nll of it, failures are listed, the cache."""
from __future__ import annotations

import io
import json
import math

import holoviews as hv
import numpy as np
import pytest
import torch
from PIL import Image

from explorer import energies
from explorer.energy import EnergyUNet
from explorer.handle import ModelHandle
from explorer.ui import energy_view
from explorer.ui.models import register_handle
from explorer.ui.energy_view import EnergyView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAME = "tiny-energy"
N_GOOD = 14
SIDE = 16


@pytest.fixture(scope="module")
def energy_model() -> EnergyUNet:
    torch.manual_seed(0)
    model = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8, t_min=1e-4, t_max=10.0)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)  # away from the plain Gaussian
        model.set_data_stats(torch.rand(32, 1, SIDE, SIDE))
        model.log_z.fill_(3.25)
    handle = ModelHandle(model, device="cpu", name=NAME, card={"name": NAME, "architecture": "energy-unet"})
    register_handle(NAME, handle)
    return handle.model


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """14 varied 16×16 gray PNGs and one broken file; the energy cache in tmp_path."""
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIDE, :SIDE] / SIDE
    for i in range(N_GOOD):
        base = 0.5 + 0.4 * np.sin(2 * np.pi * (i % 4 + 1) * xx) * np.cos(2 * np.pi * (i % 3) * yy)
        a = (i / N_GOOD) * base + (1 - i / N_GOOD) * rng.uniform(0, 1, (SIDE, SIDE)) * (0.2 + 0.05 * i)
        (d / f"img{i:02d}.png").write_bytes(_png(a))
    (d / "broken.png").write_bytes(b"this is not a PNG at all")
    return d


@pytest.fixture
def view(energy_model, folder):
    return EnergyView(model=NAME, dataset="image folder", folder=str(folder))


def library_report(model, folder) -> energies.EnergyReport:
    items = energies.items_for(str(folder))
    return energies.compute_energies(model, items, energies.source_spec(str(folder)), use_cache=False, progress=False)


def layers(overlay: hv.Overlay, kind: type) -> list:
    return [el for el in overlay if type(el) is kind]


def test_shown_energies_are_the_librarys(view, energy_model, folder):
    ref = library_report(energy_model, folder)
    assert view.report.labels == ref.labels and len(ref.labels) == N_GOOD
    np.testing.assert_allclose(view.report.values, ref.values, rtol=1e-12)
    np.testing.assert_allclose(view.values(), ref.in_unit("bits/dim"), rtol=1e-12)
    fig = view._hist_pane.object
    hist = layers(fig, hv.Histogram)[0]
    counts, edges = np.histogram(ref.in_unit("bits/dim"), bins="auto")
    np.testing.assert_array_equal(hist.dimension_values("images"), counts)
    np.testing.assert_allclose(hist.edges, edges)
    assert hist.kdims[0].label == "−log p(x), density on [0,1]^d (bits/dim)" and hist.vdims[0].label == "images"
    # the Gumbel curve is the library's ML fit scaled to counts; references are labelled markers
    g = energies.gumbel_fit(ref.in_unit("bits/dim"))
    curve = layers(fig, hv.Curve)[0]
    x = curve.dimension_values(0)
    np.testing.assert_allclose(curve.dimension_values(1),
                               energies.gumbel_pdf(x, g) * N_GOOD * np.diff(edges).mean(), rtol=1e-9)
    labels = " ".join(str(t.text) for t in [*layers(fig, hv.Text), *layers(fig, hv.Arrow)])
    assert "constant black" in labels and "uniform noise" in labels
    refs = energies.reference_energies(energy_model, (SIDE, SIDE))
    assert dict(view.reference_markers())["uniform noise (mean)"] == pytest.approx(
        refs["uniform_noise_mean"] / (SIDE * SIDE * math.log(2)), rel=1e-9)
    assert f"| mean | {energy_view.fmt_number(ref.in_unit('bits/dim').mean(), 4)} |" in view._summary.object
    assert "Done: 14 energies" in view._status.object and view._progress.value == 100


UNIT_FACTORS = {"nats": 1.0, "nats/dim": 1 / SIDE**2, "bits/dim": 1 / (SIDE**2 * math.log(2)),
                "dB/dim": 10 / (SIDE**2 * math.log(10))}


def test_unit_switch_converts_without_recomputing(view, monkeypatch):
    nats = view.report.values.copy()
    monkeypatch.setattr(energies, "compute_energies", lambda *a, **k: pytest.fail("recomputed"))
    for unit, factor in UNIT_FACTORS.items():
        view.unit = unit
        np.testing.assert_allclose(view.values(), nats * factor, rtol=1e-12)
        hist = layers(view._hist_pane.object, hv.Histogram)[0]
        assert unit in hist.kdims[0].label
        np.testing.assert_array_equal(hist.dimension_values("images"), np.histogram(nats * factor, bins="auto")[0])
        assert f"| minimum | {energy_view.fmt_number((nats * factor).min(), 4)} |" in view._summary.object
        assert (f"in {unit} |" if unit != "nats" else "in nats per image |") in view._summary.object


def test_tapping_a_bin_shows_exactly_its_images(view):
    v, e = view.values(), view.edges()
    counts = np.histogram(v, bins=e)[0]
    i = int(np.argmax(counts))
    view._tap.event(x=float((e[i] + e[i + 1]) / 2), y=0.5)  # what a click on the bar sends
    assert view.selected_bin == i
    sel = view.selected_indices()
    inside = np.nonzero((v >= e[i]) & ((v < e[i + 1]) if i < len(e) - 2 else (v <= e[i + 1])))[0]
    assert sorted(sel.tolist()) == inside.tolist() and len(sel) == counts[i]
    assert np.all(np.diff(v[sel]) >= 0)
    grid = list(view._bin_pane.object.values())
    assert len(grid) == len(sel)
    for k, img in zip(sel, grid):
        np.testing.assert_allclose(img.data, view.items[k].load())
        assert img.opts.get("plot").kwargs["title"] == energy_view.fmt_number(v[k])
        assert img.opts.get("plot").kwargs["clim"] == (0.0, 1.0)
    assert f"{len(sel)} image" in view._bin_title.object
    # the bar is highlighted; a click outside the bars changes nothing
    assert len(layers(view._hist_pane.object, hv.Histogram)) == 2
    view._tap.event(x=float(e[-1] + 10 * (e[-1] - e[0])), y=0.5)
    assert view.selected_bin == i


def test_lowest_and_highest_images(view):
    v = view.values()
    low, high = list(view._low_pane.object.values()), list(view._high_pane.object.values())
    assert len(low) == len(high) == energy_view.EXTREMES
    np.testing.assert_allclose(low[0].data, view.items[int(np.argmin(v))].load())
    np.testing.assert_allclose(high[0].data, view.items[int(np.argmax(v))].load())
    order = np.argsort(v)
    assert [img.opts.get("plot").kwargs["title"] for img in high] == [energy_view.fmt_number(v[k])
                                                                     for k in order[::-1][:energy_view.EXTREMES]]


def test_uploaded_png_energy_is_model_nll(view, energy_model):
    a = np.random.default_rng(5).uniform(0, 1, (SIDE, SIDE))
    data = _png(a)
    assert view.load_upload(data, "mine.png")
    x = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255
    with torch.no_grad():
        nll = float(energy_model.nll(torch.from_numpy(x)[None, None])[0])
    assert view.probe == energy_view.PROBE_UPLOAD and view.probe_label == "mine"
    assert view.probe_nats == pytest.approx(nll, rel=1e-6)
    bits = nll / (SIDE**2 * math.log(2))
    assert view.probe_value() == pytest.approx(bits, rel=1e-6)
    fig = view._hist_pane.object
    assert any(float(vl.data) == pytest.approx(bits, rel=1e-6) for vl in layers(fig, hv.VLine))
    assert "mine" in " ".join(str(t.text) for t in layers(fig, hv.Text))
    assert "mine" in view._summary.object
    # a large colour image is converted to gray, centre-cropped and resized to the data set's 16×16
    rgb = (np.random.default_rng(1).uniform(0, 1, (40, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    assert view.load_upload(buf.getvalue(), "big.png")
    assert view.probe_image.shape == (SIDE, SIDE)
    with torch.no_grad():
        nll = float(energy_model.nll(torch.from_numpy(view.probe_image)[None, None])[0])
    assert view.probe_nats == pytest.approx(nll, rel=1e-6)


def test_bad_upload_shows_an_error(view):
    assert view.load_upload(b"\x89PNG garbage", "bad.png") is False
    assert view._probe_alert.visible and "bad.png" in view._probe_alert.object
    assert view.probe_nats is None
    view.probe = "camera"  # the page stays usable
    assert view.probe_nats is not None and not view._probe_alert.visible


def test_unreadable_file_is_listed(view):
    assert [a for a, _ in view.report.failures] == ["broken.png"]
    assert view._failures.visible and "broken.png" in view._failures.object
    assert "1 image could not be used" in view._failures.object
    assert "broken.png" not in view.report.labels and view.counts().sum() == N_GOOD


def test_cache_chunks_and_second_run(view, energy_model, folder, tmp_path, monkeypatch):
    assert view.report.cached == 0
    view.compute()
    assert view.report.cached == N_GOOD and "all 14 from the cache" in view._status.object
    assert list((tmp_path / "cache").glob("*.npz"))
    # chunked computation of a subset keeps the other cached entries (the cache is not pruned)
    monkeypatch.setattr(energy_view, "CHUNK", 3)
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache2"))
    v = EnergyView(model=NAME, dataset="image folder", folder=str(folder), count=7)
    assert v.report.cached == 0 and len(v.report.values) == 6  # 7 first files: broken.png + 6 images
    v.count = 15
    assert v.report.cached == 6 and len(v.report.values) == N_GOOD
    v.count = 7
    assert v.report.cached == 6
    v.count = 15
    assert v.report.cached == N_GOOD
    np.testing.assert_allclose(v.report.values, library_report(energy_model, folder).values, rtol=1e-12)


def test_missing_mnist_is_a_clear_message(energy_model, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_MNIST", str(tmp_path / "nope" / "t10k-images-idx3-ubyte.gz"))
    v = EnergyView(model=NAME)
    assert v.dataset == energy_view.MNIST_HELD_OUT
    assert v._alert.visible and "MNIST is not available" in v._alert.object and "EXPLORER_MNIST" in v._alert.object
    assert v.report is None


def test_only_energy_models_are_offered(view):
    names = view.picker.param.model.objects
    assert NAME in names and not any(n.startswith("classical") for n in names)
    assert "bf-natural-gray" not in names


def test_downloads(view):
    view.select_at(float(view.edges()[0]))
    png = view._png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(io.BytesIO(view._npz().getvalue()))
    np.testing.assert_allclose(data["nats"], view.report.values)
    np.testing.assert_allclose(data["values"], view.values())
    np.testing.assert_array_equal(data["selected"], view.selected_indices())
    params = json.loads(str(data["params"]))
    assert params["model"] == NAME and params["unit"] == "bits/dim" and params["failures"][0][0] == "broken.png"
    assert params["gumbel"]["scale"] > 0


# --------------------------------------------------------------------------- units agree; the handle's lock
def test_units_agree_between_the_cli_the_tool_and_the_training_log(folder, tmp_path, monkeypatch, capsys):
    """The same 8-bit images under the same dequantized model (card: dequantize_bits = 8): the CLI's mean, the
    tool's summary and the trainer's log formula, bits_per_dim(mean NLL of x + u, d, 8), give one number."""
    from explorer.checkpoints import load, save_model
    from explorer.energy import DEFAULT_DRAWS, bits_per_dim, dequantization_noise, quantize

    torch.manual_seed(1)
    model = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8, t_min=1e-4, t_max=10.0)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)
        model.set_data_stats(torch.rand(32, 1, SIDE, SIDE))
        model.log_z.fill_(-20.0)
    save_model(model.eval(), "energy-unet", tmp_path / "models", "tiny-8bit",
               energy={"log_z": -20.0, "t_min": 1e-4, "t_max": 10.0, "dequantize_bits": 8})  # as train_energy writes it
    card = str(tmp_path / "models" / "tiny-8bit.json")
    handle = load(card, device="cpu")
    register_handle("tiny-8bit", handle)

    assert energies.main([card, "--data", str(folder), "--out", str(tmp_path / "r.json"), "--quiet", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    cli = json.loads((tmp_path / "r.json").read_text())["summary"]["mean"]
    view = EnergyView(model="tiny-8bit", dataset="image folder", folder=str(folder), use_cache=False)
    tool = view.summary_stats()["mean"]
    # the trainer's log: heldout_bits_per_dim_8bit = bits_per_dim(mean of model.nll(x + u), d, 8)
    x = torch.from_numpy(np.stack([it.load() for it in view.items]))[:, None]
    u = dequantization_noise(quantize(x, 8), 8, DEFAULT_DRAWS)
    with torch.no_grad():
        nll = torch.stack([handle.model.nll(quantize(x, 8) + u[k]) for k in range(DEFAULT_DRAWS)]).double().mean().item()
    trainer = bits_per_dim(nll, SIDE * SIDE, 8)
    assert cli == pytest.approx(trainer, rel=1e-9) and tool == pytest.approx(trainer, rel=1e-9)
    assert f"mean {trainer:.4f}" in printed and "8-bit discrete in bits/dim" in printed
    assert f"| mean | {energy_view.fmt_number(trainer, 4)} |" in view._summary.object
    assert "−log P(x), 8-bit discrete" in view._summary.object and "8 seeded draws" in view._summary.object
    assert view.figure().opts.get().kwargs["xlabel"] == "−log P(x), 8-bit discrete (bits/dim)"
    assert "standard error of the mean" in view._summary.object


def test_every_model_call_of_the_tool_holds_the_handle_lock(energy_model, folder, monkeypatch):
    import threading

    from explorer.ui.models import get_handle

    handle = get_handle(NAME)
    calls = []
    real_nll, real_energy = type(energy_model).nll, type(energy_model).energy

    def watch(real):
        def method(self, *a, **k):
            calls.append(handle.lock._owner == threading.get_ident())
            return real(self, *a, **k)
        return method

    monkeypatch.setattr(energy_model, "nll", watch(real_nll).__get__(energy_model))
    monkeypatch.setattr(energy_model, "energy", watch(real_energy).__get__(energy_model))
    view = EnergyView(model=NAME, dataset="image folder", folder=str(folder), use_cache=False)
    view.probe = "camera"
    assert view.report is not None and view.probe_nats is not None
    assert len(calls) >= 3 and all(calls)  # the data set, the references, the probe: all under the lock


def test_the_view_renders(view):
    import panel as pn

    pn.panel(view).get_root()  # the whole view renders to bokeh models
    view.template()
    assert energy_view.DATASETS[:3] == (energy_view.MNIST_HELD_OUT, energy_view.MNIST_TRAINING, energy_view.MNIST_ALL)
    assert "held-out" in energy_view.MNIST_HELD_OUT and "training" in energy_view.MNIST_TRAINING
