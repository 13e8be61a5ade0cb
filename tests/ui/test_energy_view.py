"""The Energies tool without a browser, on a tiny random-weight EnergyUNet (log Z set) and a folder of 16×16
PNGs: the energies shown are compute_energies', units convert, a tapped bin holds exactly its images, the
extremes are argmin/argmax, an upload's energy is model.nll of it, failures are listed, the cache; the
state (EnergyState) driven without widgets, and the first-contact defects of issue #15 (a late progress
message, the count field's range, empty / transparent / tiny uploads, non-finite energies)."""
from __future__ import annotations

import io
import json
import math
import threading
import time

import holoviews as hv
import numpy as np
import panel as pn
import pytest
import torch
from PIL import Image

from explorer import energies
from explorer.energy import EnergyUNet
from explorer.handle import ModelHandle
from explorer.ui import energy_data, energy_plots, energy_state
from explorer.ui.energy_state import EnergyState
from explorer.ui.energy_view import EnergyView
from explorer.ui.models import get_handle, register_handle
from explorer.ui.text import fmt_number

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


def _png(a: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), mode).save(buf, format="PNG")
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


def make_state(folder, task_factory=energy_state.InlineTask, **kw) -> EnergyState:
    """An EnergyState on the tiny model and the folder, computed (no widgets anywhere)."""
    s = EnergyState(task_factory=task_factory, handle=get_handle(NAME), model_name=NAME, dataset="image folder",
                    folder=str(folder), **kw)
    s.compute()
    return s


def library_report(model, folder) -> energies.EnergyReport:
    items = energies.items_for(str(folder))
    return energies.compute_energies(model, items, energies.source_spec(str(folder)), use_cache=False, progress=False)


def layers(overlay: hv.Overlay, kind: type) -> list:
    return [el for el in overlay if type(el) is kind]


def texts(overlay: hv.Overlay) -> str:
    return " ".join(str(t.text) for t in layers(overlay, hv.Text))


def test_shown_energies_are_the_librarys(view, energy_model, folder):
    s = view.state
    ref = library_report(energy_model, folder)
    assert s.report.labels == ref.labels and len(ref.labels) == N_GOOD
    np.testing.assert_allclose(s.report.values, ref.values, rtol=1e-12)
    np.testing.assert_allclose(s.values(), ref.in_unit("bits/dim"), rtol=1e-12)
    fig = view.histogram.object
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
    assert "constant black" in texts(fig) and "uniform noise" in texts(fig)
    refs = energies.reference_energies(energy_model, (SIDE, SIDE))
    assert dict(s.reference_markers())["uniform noise (mean)"] == pytest.approx(
        refs["uniform_noise_mean"] / (SIDE * SIDE * math.log(2)), rel=1e-9)
    assert f"| mean | {fmt_number(ref.in_unit('bits/dim').mean(), 4)} |" in view.summary.object
    assert "Done: 14 energies" in view.status.object and view.progress.value == 100
    assert view.run_button.disabled is False and view.stop_button.disabled is True


UNIT_FACTORS = {"nats": 1.0, "nats/dim": 1 / SIDE**2, "bits/dim": 1 / (SIDE**2 * math.log(2)),
                "dB/dim": 10 / (SIDE**2 * math.log(10))}


def test_unit_switch_converts_without_recomputing(view, monkeypatch):
    s = view.state
    nats = s.report.values.copy()
    monkeypatch.setattr(energies, "compute_energies", lambda *a, **k: pytest.fail("recomputed"))
    for unit, factor in UNIT_FACTORS.items():
        s.unit = unit
        np.testing.assert_allclose(s.values(), nats * factor, rtol=1e-12)
        hist = layers(view.histogram.object, hv.Histogram)[0]
        assert unit in hist.kdims[0].label
        np.testing.assert_array_equal(hist.dimension_values("images"), np.histogram(nats * factor, bins="auto")[0])
        assert f"| minimum | {fmt_number((nats * factor).min(), 4)} |" in view.summary.object
        assert (f"in {unit} |" if unit != "nats" else "in nats per image |") in view.summary.object


def test_tapping_a_bin_shows_exactly_its_images(view):
    s = view.state
    v, e = s.values(), s.edges()
    counts = np.histogram(v, bins=e)[0]
    i = int(np.argmax(counts))
    view.tap.event(x=float((e[i] + e[i + 1]) / 2), y=0.5)  # what a click on the bar sends
    assert s.selected_bin == i
    sel = s.selected_indices()
    inside = np.nonzero((v >= e[i]) & ((v < e[i + 1]) if i < len(e) - 2 else (v <= e[i + 1])))[0]
    assert sorted(sel.tolist()) == inside.tolist() and len(sel) == counts[i]
    assert np.all(np.diff(v[sel]) >= 0)
    grid = list(view.bin_images.object.values())
    assert len(grid) == len(sel)
    for k, img in zip(sel, grid):
        np.testing.assert_allclose(img.data, s.items[k].load())
        assert img.opts.get("plot").kwargs["title"] == fmt_number(v[k])
        assert img.opts.get("plot").kwargs["clim"] == (0.0, 1.0)
    assert f"{len(sel)} image" in view.bin_title.object
    # the bar is highlighted; a click outside the bars changes nothing
    assert len(layers(view.histogram.object, hv.Histogram)) == 2
    view.tap.event(x=float(e[-1] + 10 * (e[-1] - e[0])), y=0.5)
    assert s.selected_bin == i


def test_lowest_and_highest_images(view):
    s = view.state
    v = s.values()
    low, high = list(view.lowest.object.values()), list(view.highest.object.values())
    assert len(low) == len(high) == energy_state.EXTREMES
    np.testing.assert_allclose(low[0].data, s.items[int(np.argmin(v))].load())
    np.testing.assert_allclose(high[0].data, s.items[int(np.argmax(v))].load())
    order = np.argsort(v)
    assert [img.opts.get("plot").kwargs["title"] for img in high] == [fmt_number(v[k])
                                                                     for k in order[::-1][:energy_state.EXTREMES]]


def test_uploaded_png_energy_is_model_nll(view, energy_model):
    s = view.state
    a = np.random.default_rng(5).uniform(0, 1, (SIDE, SIDE))
    data = _png(a)
    assert s.load_upload(data, "mine.png")
    x = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255
    with torch.no_grad():
        nll = float(energy_model.nll(torch.from_numpy(x)[None, None])[0])
    assert s.probe == energy_state.PROBE_UPLOAD and s.probe_label == "mine"
    assert s.probe_nats == pytest.approx(nll, rel=1e-6)
    bits = nll / (SIDE**2 * math.log(2))
    assert s.probe_value() == pytest.approx(bits, rel=1e-6)
    fig = view.histogram.object
    assert any(float(vl.data) == pytest.approx(bits, rel=1e-6) for vl in layers(fig, hv.VLine))
    assert "mine" in texts(fig) and "mine" in view.summary.object
    rank = float(np.mean(s.values() < bits))
    assert f"{100 * rank:.1f} % of the data set has a lower energy" in view.probe_text.object
    assert not view.probe_note.visible  # an opaque, varied image: nothing to say about its conversion
    # a large colour image is converted to gray, centre-cropped and resized to the data set's 16×16
    rgb = (np.random.default_rng(1).uniform(0, 1, (40, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    assert s.load_upload(buf.getvalue(), "big.png")
    assert s.probe_image.shape == (SIDE, SIDE)
    with torch.no_grad():
        nll = float(energy_model.nll(torch.from_numpy(s.probe_image)[None, None])[0])
    assert s.probe_nats == pytest.approx(nll, rel=1e-6)


def test_bad_upload_shows_an_error(view):
    s = view.state
    assert s.load_upload(b"\x89PNG garbage", "bad.png") is False
    assert view.probe_alert.visible and "bad.png" in view.probe_alert.object
    assert s.probe_nats is None
    s.probe = "camera"  # the page stays usable
    assert s.probe_nats is not None and not view.probe_alert.visible


def test_unreadable_file_is_listed(view):
    s = view.state
    assert [a for a, _ in s.report.failures] == ["broken.png"]
    assert view.failures.visible and "broken.png" in view.failures.object
    assert "1 image could not be used" in view.failures.object
    assert "broken.png" not in s.report.labels and s.counts().sum() == N_GOOD


def test_cache_chunks_and_second_run(energy_model, folder, tmp_path, monkeypatch):
    s = make_state(folder)
    assert s.report.cached == 0
    s.compute()
    assert s.report.cached == N_GOOD and "all 14 from the cache" in s.status
    assert list((tmp_path / "cache").glob("*.npz"))
    # chunked computation of a subset keeps the other cached entries (the cache is not pruned)
    monkeypatch.setattr(energy_state, "CHUNK", 3)
    monkeypatch.setenv("EXPLORER_ENERGY_CACHE", str(tmp_path / "cache2"))
    v = make_state(folder, count=7)
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
    assert v.state.dataset == energy_data.MNIST_HELD_OUT
    assert v.alert.visible and "MNIST is not available" in v.alert.object and "EXPLORER_MNIST" in v.alert.object
    assert v.state.report is None and v.state.status == "Failed."


def test_only_energy_models_are_offered(view):
    names = view.picker.param.model.objects
    assert NAME in names and not any(n.startswith("classical") for n in names)
    assert "bf-natural-gray" not in names


def test_downloads(view):
    s = view.state
    s.select_at(float(s.edges()[0]))
    png = energy_plots.png_export(s).getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(io.BytesIO(energy_plots.npz_export(s).getvalue()))
    np.testing.assert_allclose(data["nats"], s.report.values)
    np.testing.assert_allclose(data["values"], s.values())
    np.testing.assert_array_equal(data["selected"], s.selected_indices())
    params = json.loads(str(data["params"]))
    assert params["model"] == NAME and params["unit"] == "bits/dim" and params["failures"][0][0] == "broken.png"
    assert params["gumbel"]["scale"] > 0
    assert energy_plots.basename(s) == "energy_tiny-energy_images_bits-per-dim"


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
    tool = view.state.summary_stats()["mean"]
    # the trainer's log: heldout_bits_per_dim_8bit = bits_per_dim(mean of model.nll(x + u), d, 8)
    x = torch.from_numpy(np.stack([it.load() for it in view.state.items]))[:, None]
    u = dequantization_noise(quantize(x, 8), 8, DEFAULT_DRAWS)
    with torch.no_grad():
        nll = torch.stack([handle.model.nll(quantize(x, 8) + u[k]) for k in range(DEFAULT_DRAWS)]).double().mean().item()
    trainer = bits_per_dim(nll, SIDE * SIDE, 8)
    assert cli == pytest.approx(trainer, rel=1e-9) and tool == pytest.approx(trainer, rel=1e-9)
    assert f"mean {trainer:.4f}" in printed and "8-bit discrete in bits/dim" in printed
    assert f"| mean | {fmt_number(trainer, 4)} |" in view.summary.object
    assert "−log P(x), 8-bit discrete" in view.summary.object and "8 seeded draws" in view.summary.object
    assert view.histogram.object.opts.get().kwargs["xlabel"] == "−log P(x), 8-bit discrete (bits/dim)"
    assert "standard error of the mean" in view.summary.object


def test_every_model_call_of_the_tool_holds_the_handle_lock(energy_model, folder, monkeypatch):
    handle = get_handle(NAME)
    calls = []
    real_nll, real_energy = type(energy_model).nll, type(energy_model).energy

    def watch(real):
        def method(self, *a, **k):
            calls.append(handle.lock.held_by_me())
            return real(self, *a, **k)
        return method

    monkeypatch.setattr(energy_model, "nll", watch(real_nll).__get__(energy_model))
    monkeypatch.setattr(energy_model, "energy", watch(real_energy).__get__(energy_model))
    view = EnergyView(model=NAME, dataset="image folder", folder=str(folder), use_cache=False)
    view.state.probe = "camera"
    assert view.state.report is not None and view.state.probe_nats is not None
    assert len(calls) >= 3 and all(calls)  # the data set, the references, the probe: all under the lock


def test_the_view_renders(view):
    pn.panel(view).get_root()  # the whole view renders to bokeh models
    view.template()
    assert energy_data.DATASETS[:3] == (energy_data.MNIST_HELD_OUT, energy_data.MNIST_TRAINING, energy_data.MNIST_ALL)
    assert "held-out" in energy_data.MNIST_HELD_OUT and "training" in energy_data.MNIST_TRAINING


# --------------------------------------------------------------------------- the state alone
def test_the_state_computes_without_widgets(energy_model, folder):
    s = make_state(folder, use_cache=False)
    ref = library_report(energy_model, folder)
    np.testing.assert_allclose(s.values(), ref.in_unit("bits/dim"), rtol=1e-12)
    assert s.running is False and s.progress == 100 and s.status.startswith("Done: 14 energies of 15 images")
    low, high = s.extremes(3)
    assert s.values()[low].tolist() == sorted(s.values())[:3] and s.values()[high].tolist() == sorted(s.values())[::-1][:3]
    st = s.summary_stats()
    assert st["count"] == N_GOOD and st["mean"] == pytest.approx(ref.in_unit("bits/dim").mean(), rel=1e-12)
    assert math.isnan(st["mean_stderr"])  # a continuous density: no dequantization draws
    s.bins = 10
    assert len(s.edges()) == 11 and s.counts().sum() == N_GOOD
    assert s.select_at(float(s.edges()[-1])) == 9 and len(s.selected_indices()) == s.counts()[9]
    s.bins = "auto"
    assert s.selected_bin is None or s.selected_bin < len(s.edges()) - 1


def test_a_runner_hook_computes_the_energies(energy_model, folder):
    """compute_runner is compute_energies' runner=: the uncached images go through it."""
    from explorer.runner import SerialRunner

    class Counting(SerialRunner):
        def __init__(self):
            self.items = []

        def __call__(self, fn, items, **kw):
            self.items += list(items)
            return super().__call__(fn, items, **kw)

    runner = Counting()
    s = make_state(folder, use_cache=False, compute_runner=runner)
    assert len(runner.items) == N_GOOD + 1 and len(s.report.values) == N_GOOD  # every file, the broken one too
    np.testing.assert_allclose(s.report.values, library_report(energy_model, folder).values, rtol=1e-12)


# --------------------------------------------------------------------------- issue #15
@pytest.fixture
def page_not_loaded_yet(monkeypatch):
    """A served page that connects while the first message of a run waits: the first loop call LatestTask
    schedules waits (a 100 ms timeout callback, collected here) and the page is loaded from then on, so
    later calls could run at once; ``connect()`` runs the waiting callbacks (the 100 ms passing)."""
    import panel as pn
    from bokeh.document import Document

    loaded, timeouts = {"value": False}, []
    monkeypatch.setattr(type(pn.state), "loaded", property(lambda self: loaded["value"]))
    monkeypatch.setattr(pn.state, "execute", lambda fn, schedule=True: fn())
    doc = Document()

    def add_timeout_callback(callback, ms) -> None:
        timeouts.append(callback)
        loaded["value"] = True  # the page connects while the callback waits

    monkeypatch.setattr(doc, "add_timeout_callback", add_timeout_callback)

    def connect() -> None:
        while timeouts:
            timeouts.pop(0)()

    return doc, connect


def served_state(folder, doc) -> EnergyState:
    """An EnergyState on the view's runner (LatestTask, worker thread) bound to ``doc``; nothing computed yet."""
    from explorer.ui.tasks import LatestTask

    s = EnergyState(task_factory=LatestTask, handle=get_handle(NAME), model_name=NAME, dataset="image folder",
                    folder=str(folder), use_cache=False)
    s.task.bind(doc)
    return s


def wait_for_worker(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while any(t.name == "energy" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the energy worker did not finish"
        time.sleep(0.02)


def test_the_final_status_wins_over_a_late_progress_message(energy_model, folder, page_not_loaded_yet):
    """#15 item 5: 'Computing energies… 500/500' stayed after the results were shown: the progress
    messages sent before the page had connected landed after the result. Through the view's runner
    they now arrive in order, so the final status wins."""
    doc, connect = page_not_loaded_yet
    s = served_state(folder, doc)
    s.compute()
    wait_for_worker()  # every message (progress, then the result) was sent before the page connected
    connect()
    assert s.status.startswith("Done: 14 energies") and s.progress == 100 and not s.running
    # a failed run stays failed
    s.folder = str(folder / "nope")
    wait_for_worker()
    connect()
    assert s.status == "Failed." and "no such folder" in s.error
    # a newer run drops what an older one sends (setting the folder starts a run, compute() supersedes it)
    s.folder = str(folder)
    s.compute()
    wait_for_worker()
    connect()
    assert s.status.startswith("Done: 14 energies")


def test_stop_is_final_too(energy_model, folder, page_not_loaded_yet):
    doc, connect = page_not_loaded_yet
    s = served_state(folder, doc)
    s.compute()
    s.stop()
    wait_for_worker()
    connect()
    assert s.status == "Stopped." and not s.running


def test_the_count_field_states_its_range_and_clamps(view):
    """#15 item 3: the number of images shows 3–10000; an out-of-range value is clamped where it shows."""
    field = next(w for w in view.sidebar().select(pn.widgets.IntInput) if w.name.startswith("Number of images"))
    assert field.name == "Number of images (the first N) (3–10000)"
    field.value = 1
    assert view.state.count == 3 and field.value == 3 and len(view.state.report.values) == 2  # broken.png + 2
    field.value = 20000
    assert view.state.count == 10000 and field.value == 10000 and len(view.state.report.values) == N_GOOD
    view.state.count = 7
    assert field.value == 7


def test_an_empty_file_replaces_the_previous_error(view):
    """#15 item 6: a 0-byte file gets its own message, which replaces the previous file's."""
    view.upload.upload(b"not an image", "bad.png")  # what the drop area does with a file
    assert view.probe_alert.visible and "bad.png" in view.probe_alert.object
    view.upload.upload(b"", "empty.png")
    assert view.probe_alert.visible and "empty.png" in view.probe_alert.object and "empty" in view.probe_alert.object
    assert "bad.png" not in view.probe_alert.object
    assert view.state.probe_nats is None and view.state.probe != energy_state.PROBE_UPLOAD
    view.upload.upload(_png(np.random.default_rng(3).uniform(0, 1, (SIDE, SIDE))), "good.png")
    assert not view.probe_alert.visible and view.state.probe_label == "good"


def test_a_transparent_upload_is_converted_with_a_note(view, energy_model):
    """#15 item 6: a flat RGBA square is not scored silently; the note says how it was converted."""
    s = view.state
    clear = np.zeros((SIDE, SIDE, 4))  # black, fully transparent: composited over white
    assert view.upload.upload(_png(clear, "RGBA"), "clear.png")
    assert view.probe_note.visible and view.probe_note.object == s.probe_note
    assert "composited over white" in s.probe_note and "100%" in s.probe_note and "constant" in s.probe_note
    np.testing.assert_array_equal(s.probe_image, np.ones((SIDE, SIDE), np.float32))
    with torch.no_grad():
        nll = float(energy_model.nll(torch.ones(1, 1, SIDE, SIDE))[0])
    assert s.probe_nats == pytest.approx(nll, rel=1e-6)  # scored as what is seen: white
    # half-transparent noise: not constant, composited over white
    rgba = np.random.default_rng(2).uniform(0, 1, (SIDE, SIDE, 4))
    rgba[..., 3] = 0.5
    assert s.load_upload(_png(rgba, "RGBA"), "half.png")
    assert "composited over white" in s.probe_note and "constant" not in s.probe_note
    a = np.round(0.5 * 255) / 255
    luma = (np.round(rgba[..., :3] * 255) / 255) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(s.probe_image, a * luma + (1 - a), atol=1e-5)
    s.probe = "camera"  # a built-in photograph: the upload's note goes
    assert not view.probe_note.visible


def test_a_tiny_upload_is_refused(view):
    """#15 item 6: a 1×1 image is refused with a message (it would be scored as a constant image)."""
    s = view.state
    assert s.load_upload(_png(np.full((1, 1), 0.3)), "dot.png") is False
    assert view.probe_alert.visible and "dot.png" in view.probe_alert.object and "1×1" in view.probe_alert.object
    assert s.probe_nats is None and s.probe_value() is None


def test_non_finite_energies_are_never_shown_as_numbers(view, monkeypatch):
    """A diverged model: a NaN energy of the chosen image and of references is said, not drawn."""
    s = view.state
    monkeypatch.setattr(energies, "image_energies", lambda *a, **k: np.array([np.nan]))
    s.probe = "camera"
    assert s.probe_nats is None and s.probe_value() is None
    assert view.probe_alert.visible and "no finite energy" in view.probe_alert.object and "'camera'" in view.probe_alert.object
    real = energies.reference_energies

    def diverged(*a, **k):
        r = real(*a, **k)
        return {**r, "constant": [math.inf] * len(r["constant"]), "uniform_noise_mean": math.nan}

    monkeypatch.setattr(energies, "reference_energies", diverged)
    s.compute()
    fig = view.histogram.object
    assert layers(fig, hv.VLine) == [] and "constant" not in texts(fig) and "noise" not in texts(fig)
    assert "| constant black | no finite energy |" in view.summary.object
    for shown in (texts(fig), view.summary.object, view.probe_text.object):
        assert not any(w in shown.lower() for w in ("nan", "inf", "∞"))
    assert s.reference_markers() == [] and len(s.reference_energies()) == 4
