"""The shared UI modules without a browser: image source and uploads, run controls, model picker and
model cards, the background runner (latest wins, stop, progress, errors, session end), downloads,
and the ToolView layout."""
from __future__ import annotations

import io
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import panel as pn
import pytest
import torch
from bokeh.document import Document
from panel.io.state import set_curdoc
from PIL import Image

from explorer.ui.controls import RunControls
from explorer.ui.export import downloads, npz_bytes, png_bytes
from explorer.ui.models import ModelPicker, describe_card, get_handle, model_names, sigma_arg
from explorer.ui.sources import SYNTHETIC, ImageSource, decode_upload, synthetic_image
from explorer.ui.tasks import BackgroundWorker, LatestTask
from explorer.ui.toolview import ToolView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ image source
def test_decode_upload_reads_a_png_as_gray_in_unit_range():
    pixels = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    img = decode_upload(png_of(pixels), "ramp.png")
    assert img.dtype == np.float32 and img.shape == (20, 30)
    np.testing.assert_allclose(img, pixels / 255.0, atol=1e-6)


@pytest.mark.parametrize("data", [b"", b"not an image at all", png_of(np.zeros((8, 8), np.uint8))[:40]])
def test_decode_upload_rejects_bad_files_naming_the_file(data):
    with pytest.raises(ValueError) as info:
        decode_upload(data, "holiday.png")
    assert "holiday.png" in str(info.value) and "explorer-upload-" not in str(info.value)


def test_image_source_upload_is_squared_and_a_bad_one_keeps_the_last_image():
    source = ImageSource(sizes=[32], size=32)
    assert source.source == "built-in" and source.image.shape == (32, 32) and source.error == ""
    wide = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    assert source.load_bytes(png_of(wide), "gradient.png")
    assert source.source == "upload" and source.label == "gradient" and source.error == ""
    assert source.image.shape == (32, 32) and source.image.dtype == np.float32
    assert 0.0 <= source.image.min() < source.image.max() <= 1.0
    before = source.image.copy()
    assert not source.load_bytes(b"garbage", "broken.png")
    assert "broken.png" in source.error
    np.testing.assert_array_equal(source.image, before)
    assert source.load_bytes(png_of(wide), "again.png") and source.error == ""  # a good file clears it


def test_image_source_synthetic_follows_generator_seed_and_size():
    source = ImageSource(sizes=[32, 64], size=32, source="synthetic", synthetic="discs", seed=3)
    a = source.image.copy()
    np.testing.assert_array_equal(a, synthetic_image("discs", 32, 3))
    assert source.label == "discs #3"
    source.seed = 4
    assert not np.array_equal(source.image, a)
    source.size = 64
    assert source.image.shape == (64, 64)
    with pytest.raises(ValueError):
        synthetic_image("no such generator", 32, 0)
    assert all(synthetic_image(kind, 16, 0).shape == (16, 16) for kind in SYNTHETIC)


# ------------------------------------------------------------------------------------------ run controls
def test_run_controls_buttons_call_handlers_and_follow_running():
    controls = RunControls()
    calls = []
    for kind in ("step", "play", "pause", "reset"):
        controls.on(kind, lambda k=kind: calls.append(k))
    controls.step_clicks += 1
    controls.play_clicks += 1
    controls.pause_clicks += 1
    controls.reset_clicks += 1
    assert calls == ["step", "play", "pause", "reset"]
    assert not controls.step_button.disabled and controls.pause_button.disabled
    controls.running = True
    assert controls.step_button.disabled and controls.play_button.disabled and not controls.pause_button.disabled
    controls.play_label = "▶ Resume"
    assert controls.play_button.label == "▶ Resume"


def test_run_controls_report_a_failing_handler_in_the_status():
    controls = RunControls()

    def boom() -> None:
        raise RuntimeError("no model")

    controls.on("step", boom)
    controls.step_clicks += 1  # must not raise
    assert "RuntimeError" in controls.status and "no model" in controls.status


# ------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("energy", [{}, {"t_min": None, "t_max": None, "log_z": None}, {"log_z": float("nan")},
                                    "yes"])
def test_describe_card_of_an_energy_model_omits_missing_fields(energy):
    text = describe_card(SimpleNamespace(card={"architecture": "energy-unet", "energy": energy}))
    assert text.startswith("energy-unet: U(y, t)")
    assert "t ∈" not in text and "log Z" not in text and "?" not in text and "nan" not in text


def test_describe_card_of_an_energy_model_shows_the_fields_it_has():
    full = describe_card(SimpleNamespace(card={"architecture": "energy-unet",
                                               "energy": {"t_min": 0.01, "t_max": 1, "log_z": 12.34567}}))
    assert "t ∈ [0.01, 1]" in full and "log Z = 12.346 nats" in full
    only_z = describe_card(SimpleNamespace(card={"energy": {"log_z": np.float32(-3.5)}}))
    assert only_z.startswith("energy model:") and "log Z = -3.500 nats" in only_z and "t ∈" not in only_z
    only_min = describe_card(SimpleNamespace(card={"energy": {"t_min": 0.002}}))
    assert "t ≥ 0.002" in only_min


def test_describe_card_of_denoisers(tiny_handle):
    text = describe_card(tiny_handle)
    assert text.startswith("dncnn") and "bias-free" in text
    classical = describe_card(get_handle("classical: Gaussian smoothing"))
    assert classical.startswith("classical")
    trained = SimpleNamespace(card={"architecture": "unet", "training": {"noise": {"sigma_min": 0, "sigma_max": 0.4}}},
                              bias_free=False, blind=False)
    assert describe_card(trained) == "unet, with biases, needs σ, trained on σ ∈ [0, 0.4]"


def test_model_picker_loads_lazily_and_reports_what_cannot_load(tiny_handle):
    assert "tiny-test" in model_names(include_classical=False)
    assert not any(n.startswith("classical") for n in model_names(include_classical=False))
    assert "classical: Wiener filter" in model_names()
    picker = ModelPicker(model="tiny-test")
    assert picker.handle is tiny_handle and picker.error == ""
    assert "bias-free" in picker.info
    bad = ModelPicker(model="no-such-model")
    assert bad.handle is None and "no-such-model" in bad.error
    assert bad.alert_pane.visible and "no-such-model" in bad.alert_pane.object
    bad.model = "tiny-test"
    assert bad.handle is tiny_handle and bad.error == "" and not bad.alert_pane.visible


def test_sigma_arg_tells_only_non_blind_denoisers():
    assert sigma_arg(SimpleNamespace(blind=True), 0.3) is None
    assert sigma_arg(SimpleNamespace(blind=False), 0.3) == pytest.approx(0.3)
    assert sigma_arg(SimpleNamespace(blind=False), 0.0) > 0


# ------------------------------------------------------------------------------------------ tasks
@pytest.fixture
def served_doc():
    """A bokeh document that looks served and connected; ``pump(doc, until)`` runs its callbacks."""
    doc = Document()
    doc._session_context = lambda: SimpleNamespace(session=None, server_context=None, id="fake")
    pn.state._loaded[doc] = True
    yield doc
    pn.state._loaded.pop(doc, None)


def run_pending(doc: Document) -> list[str]:
    kinds = []
    for cb in list(doc.callbacks.session_callbacks):
        doc.callbacks.remove_session_callback(cb)
        kinds.append(type(cb).__name__)
        cb.callback()
    return kinds


def pump(doc: Document, until, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        run_pending(doc)
        time.sleep(0.005)


def test_latest_task_runs_inline_without_a_server():
    seen, done = [], []
    task = LatestTask(lambda req, stop, publish: publish(req * 2), seen.append, on_done=lambda: done.append(1))
    task.submit(21)
    assert seen == [42] and done == [1] and not task.running


def test_latest_task_publishes_every_stage_in_order():
    seen = []

    def compute(req, stop, publish):
        for stage in ("histogram", "extremes", "bins"):
            publish((req, stage))

    LatestTask(compute, seen.append).submit("a")
    assert seen == [("a", "histogram"), ("a", "extremes"), ("a", "bins")]


def test_latest_task_reports_errors_and_still_finishes():
    errors, done = [], []
    task = LatestTask(lambda req, stop, publish: 1 / 0, lambda x: None, on_error=errors.append,
                      on_done=lambda: done.append(1))
    task.submit(None)
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError) and done == [1] and not task.running


def test_latest_task_newest_request_wins(served_doc):
    started, computed, seen, done = threading.Event(), [], [], []

    def compute(req, stop, publish):
        computed.append(req)
        if req == "slow":
            started.set()
            assert stop.wait(10)  # superseded: told to stop
            publish("slow, too late")  # dropped
            return
        publish(req)

    task = LatestTask(compute, seen.append, on_done=lambda: done.append(1), name="test-latest")
    task.bind(served_doc)
    task.submit("slow")
    assert started.wait(10) and task.running
    first_stop = task.stop_event
    task.submit("queued")  # superseded before it starts: never computed
    task.submit("newest")
    assert first_stop.is_set() and not task.stop_event.is_set()
    pump(served_doc, lambda: done)
    assert computed == ["slow", "newest"] and seen == ["newest"] and done == [1] and not task.running
    assert task.last_seconds >= 0


def test_latest_task_errors_reach_the_loop(served_doc):
    errors = []
    task = LatestTask(lambda req, stop, publish: (_ for _ in ()).throw(KeyError(req)), lambda x: None,
                      on_error=errors.append)
    task.bind(served_doc)
    task.submit("missing")
    pump(served_doc, lambda: errors)
    assert isinstance(errors[0], KeyError)
    pump(served_doc, lambda: not task.running)


def test_latest_task_waits_for_the_page_to_connect_without_spinning():
    """Before the browser connects, a render is retried on a 100 ms timeout, not on every tick (where
    HoloViews' own refreshes would spin and starve the other sessions)."""
    doc = Document()
    doc._session_context = lambda: SimpleNamespace(session=None, server_context=None, id="fake")  # looks served
    seen = []
    task = LatestTask(lambda req, stop, publish: None, seen.append)
    task._call(doc, task._gen, lambda: seen.append("rendered"))
    assert run_pending(doc) == ["NextTickCallback"] and seen == []  # not loaded: nothing drawn
    assert run_pending(doc) == ["TimeoutCallback"]  # retried after a delay
    assert run_pending(doc) == ["NextTickCallback"] and seen == []
    pn.state._loaded[doc] = True
    try:
        assert run_pending(doc) == ["TimeoutCallback"]
        assert run_pending(doc) == ["NextTickCallback"] and seen == ["rendered"]
    finally:
        pn.state._loaded.pop(doc, None)


def test_a_closed_session_stops_the_work_and_ends_the_thread(served_doc):
    started, seen = threading.Event(), []

    def compute(req, stop, publish):
        started.set()
        stop.wait(10)
        publish("after the end")

    task = LatestTask(compute, seen.append, name="test-closed-session")
    with set_curdoc(served_doc):
        task.bind()
    task.submit(1)
    assert started.wait(10)
    for callback in served_doc.session_destroyed_callbacks:
        callback(None)
    assert task.stop_event.is_set() and not task.running
    deadline = time.monotonic() + 10
    while any(t.name == "test-closed-session" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the worker thread did not end"
        time.sleep(0.01)
    run_pending(served_doc)
    assert seen == []


def test_worker_renders_only_the_newest_snapshot():
    seen = []
    w = BackgroundWorker(seen.append)
    for i in range(5):
        w.publish(i)
    assert w.flush() and seen == [4] and w.render_count == 1
    assert not w.flush() and seen == [4]  # nothing new


def test_worker_stop_event_ends_work_and_flush_reports():
    seen, done = [], []
    w = BackgroundWorker(seen.append)

    def work(stop, publish):
        i = 0
        while not stop.is_set():
            publish(i)
            i += 1
            time.sleep(0.001)

    w.start(work, on_done=done.append)
    assert w.running
    with pytest.raises(RuntimeError):
        w.start(work)  # one job at a time
    time.sleep(0.05)
    w.stop(wait=True)
    assert not w.running and done == [None] and seen  # the last snapshot was rendered
    w.start(lambda stop, publish: publish("second run"), on_done=done.append)  # reusable
    w.join(10)
    assert seen[-1] == "second run" and done == [None, None] and not w.running


def test_worker_reports_errors():
    done = []
    w = BackgroundWorker(lambda s: None)

    def work(stop, publish):
        raise RuntimeError("boom")

    w.start(work, on_done=done.append)
    w.join(10)
    assert isinstance(done[0], RuntimeError) and not w.running


# ------------------------------------------------------------------------------------------ export
def test_png_bytes_tiles_titled_upscaled_images():
    gray = np.full((16, 16), 0.5, np.float32)
    signed = np.zeros((16, 16), np.float32)
    signed[0, 0] = -1.0
    im = Image.open(png_bytes([("gray", gray), ("signed", signed, "diverging")], min_size=64))
    pad, text_h, tile = 8, 18, 64
    assert im.size == (pad + 2 * (tile + pad), pad + tile + text_h + pad)
    rgb = np.asarray(im.convert("RGB"))
    y0 = pad + text_h
    assert tuple(rgb[y0 + 30, pad + 30]) == (128, 128, 128)  # 0.5 gray, upscaled ×4 with square pixels
    x1 = pad + tile + pad
    assert tuple(rgb[y0 + 30, x1 + 30]) == (247, 247, 247)  # 0 is white in RdBu_r
    assert rgb[y0 + 1, x1 + 1, 2] > rgb[y0 + 1, x1 + 1, 0]  # −1 is blue


def test_npz_bytes_round_trip_with_parameters():
    arrays = {"clean": np.arange(6, dtype=np.float32).reshape(2, 3), "tensor": torch.ones(2, 2), "absent": None}
    params = {"sigma": np.float32(0.25), "steps": np.int64(7), "shape": (2, 3), "model": "tiny-test", "obj": object}
    with np.load(npz_bytes(arrays, params)) as z:
        assert sorted(z.files) == ["clean", "params", "tensor"]
        np.testing.assert_array_equal(z["clean"], arrays["clean"])
        np.testing.assert_array_equal(z["tensor"], np.ones((2, 2), np.float32))
        back = json.loads(str(z["params"]))
    assert back["sigma"] == pytest.approx(0.25) and back["steps"] == 7 and back["shape"] == [2, 3]
    assert back["model"] == "tiny-test" and isinstance(back["obj"], str)


def test_downloads_name_files_at_click_time():
    state = {"name": "first"}
    row = downloads(lambda: png_bytes([("x", np.zeros((4, 4)))]), lambda: npz_bytes({"x": np.zeros(2)}),
                    basename=lambda: state["name"])
    png, npz = row.objects
    assert png.filename == "first.png" and npz.filename == "first.npz"
    state["name"] = "second"
    assert Image.open(png.callback()).format == "PNG" and png.filename == "second.png"
    with np.load(npz.callback()) as z:
        assert "x" in z.files
    assert npz.filename == "second.npz"


# ------------------------------------------------------------------------------------------ layout
class _Tool(ToolView):
    title = "A test tool"

    def __init__(self, **params):
        super().__init__(**params)
        self.side, self.body = pn.pane.Markdown("controls"), pn.pane.Markdown("figures")

    def sidebar(self):
        return self.side

    def main(self):
        return self.body


def test_tool_view_lays_out_sidebar_beside_main_and_makes_a_page():
    tool = _Tool()
    row = tool.__panel__()  # a wrapping row: the main area goes below the sidebar in a narrow notebook cell
    assert isinstance(row, pn.FlexBox) and row.flex_wrap == "wrap" and row.objects[1].objects == [tool.body]
    assert row.objects[0].width == 330 and row.objects[0].objects == [tool.side]
    page = tool.template()
    assert page.title == "A test tool" and tool.body in page.main.objects and tool.side in page.sidebar.objects
    with pytest.raises(NotImplementedError):
        ToolView().template()


def test_showing_a_tool_view_again_moves_it_and_says_so_where_it_was():
    """Issue #23 item 4: a second display of one view takes its panes; the first output says where they went."""
    from explorer.ui.toolview import MOVED_MESSAGE

    tool = _Tool()
    first, second = tool.__panel__(), tool.__panel__()
    assert len(first.objects) == 1 and isinstance(first.objects[0], pn.pane.Alert)
    assert first.objects[0].object == MOVED_MESSAGE.format(name="_Tool")
    assert second.objects[1].objects == [tool.body] and second.objects[0].objects == [tool.side]


def test_a_bounded_input_states_its_range_and_clamps_out_of_range_values_visibly():
    """Issue #15 item 3: the field never disagrees with the state; out-of-range values are clamped in view."""
    import param

    from explorer.ui.controls import bounded_input

    class State(param.Parameterized):
        seed = param.Integer(default=3, bounds=(0, 99))
        sigma = param.Number(default=0.1, bounds=(0.0, 1.0), label="σ")

    state = State()
    seed = bounded_input(state, "seed")
    assert seed.label == "Seed (0–99)"
    for typed, kept in ((-5, 0), (1000, 99), (42, 42)):
        seed.value = typed
        assert (seed.value, state.seed) == (kept, kept)
    state.seed = 7
    assert seed.value == 7
    sigma = bounded_input(state, "sigma")
    sigma.value = 2.5
    assert (sigma.value, state.sigma) == (1.0, 1.0)
    assert sigma.label == "σ (0–1)"


# ------------------------------------------------------------------------------------------ issue #15 item 10
def _doc_with_socket(ws_connection):
    conn = SimpleNamespace(_socket=SimpleNamespace(ws_connection=ws_connection))
    session = SimpleNamespace(destroyed=False, _subscribed_connections=[conn] if ws_connection != "none" else [])
    return SimpleNamespace(session_context=SimpleNamespace(_session=session))


def test_session_closed_sees_a_closed_websocket_but_not_an_unconnected_page():
    from explorer.ui.tasks import session_closed

    assert not session_closed(Document())  # outside a server
    assert not session_closed(_doc_with_socket("none"))  # served, the page has not connected yet
    assert not session_closed(_doc_with_socket(SimpleNamespace(is_closing=lambda: False)))
    assert session_closed(_doc_with_socket(SimpleNamespace(is_closing=lambda: True)))
    assert session_closed(_doc_with_socket(None))  # tornado drops ws_connection once closed


def test_a_worker_pushes_nothing_to_a_closed_tab_and_stops_its_work():
    """The WebSocketClosedError noise: renders of a session whose tab closed mid-update."""
    rendered = []
    worker = BackgroundWorker(rendered.append)
    worker._doc = _doc_with_socket(None)
    worker.publish("snapshot")
    assert worker.flush() is False and rendered == [] and worker.stop_event.is_set()


def test_bokehs_fixed_sizing_warning_is_silenced_for_frame_sized_figures(caplog):
    import holoviews as hv
    from bokeh.core.validation import check_integrity
    from bokeh.core.validation.check import process_validation_issues

    from explorer.ui import theme  # noqa: F401 - silences W-1005
    from explorer.ui.plots import gray_image

    fig = hv.render(gray_image(np.zeros((8, 8), np.float32)))
    assert fig.sizing_mode == "fixed" and fig.width is None and fig.frame_width  # what bokeh warns about
    issues = check_integrity([fig])
    assert [w.code for w in issues.warning] == [1005]
    with caplog.at_level("WARNING", logger="bokeh"):
        process_validation_issues(issues)  # what the server does when it serializes a page
    assert "W-1005" not in caplog.text


# ------------------------------------------------------------------------------------------ issue #15 item 9
def test_the_overview_shows_cropped_larger_screenshots_and_keeps_acronyms_in_its_labels():
    from explorer.ui.explorer_app import CARD_WIDTH, THUMBNAIL_CROPS, TOOLS, ExplorerApp, open_label, thumbnail_png

    labels = {t.key: open_label(t) for t in TOOLS}
    assert labels["gahb"] == "Open harmonic basis (GAHB) →" and labels["toy2d"] == "Open toy 2-D prior →"
    assert labels["sampler"] == "Open coarse-to-fine sampler →"
    for tool in TOOLS:
        shot = thumbnail_png(tool.key)
        if shot is None:
            continue
        data, w, h = shot
        left, top, right, bottom = THUMBNAIL_CROPS[tool.key]
        assert Image.open(io.BytesIO(data)).size == (w, h) and w <= right - left and h <= bottom - top
        assert w < 1500 and top > 0  # not the whole window: no browser header, no sidebar
    page = ExplorerApp().overview()
    cards = [c for c in page.objects[1].objects]
    assert len(cards) == len(TOOLS) and all(c.width == CARD_WIDTH >= 500 for c in cards)  # two a row, not four
    pictures = [o for c in cards for o in c.objects if isinstance(o, pn.pane.PNG)]
    assert pictures and all(p.width >= 480 for p in pictures)
    buttons = [o.label for c in cards for o in c.objects if isinstance(o, pn.widgets.Button)]
    assert "Open harmonic basis (GAHB) →" in buttons and not any("(gahb)" in b or "2-d" in b for b in buttons)


@pytest.mark.parametrize("logger", ["bokeh.server.views.ws", "panel.io.document"])
def test_the_closed_socket_line_is_kept_out_of_the_server_log(caplog, logger):
    """bokeh's websocket handler and Panel's write futures both log it when a tab closes mid-update."""
    import logging

    import explorer.ui.tasks  # noqa: F401 - installs the filter

    log = logging.getLogger(logger)
    with caplog.at_level("WARNING", logger=logger):
        log.warning("Failed sending message as connection was closed")
        log.warning("something else")
    assert "connection was closed" not in caplog.text and "something else" in caplog.text


def test_loop_calls_run_in_order_even_when_the_first_waits_for_the_page(monkeypatch):
    """A message held back until the page connects must not land after a later one (the Energies status
    stuck at 'Computing… 500/500' after 'Done': #15 item 5, fixed for every tool in tasks.LatestTask)."""
    import panel as pn
    from bokeh.document import Document

    from explorer.ui import tasks

    ran: list[str] = []
    timeouts: list = []
    loaded = {"value": False}
    monkeypatch.setattr(type(pn.state), "loaded", property(lambda self: loaded["value"]))
    monkeypatch.setattr(pn.state, "execute", lambda fn, schedule=True: fn())
    doc = Document()
    monkeypatch.setattr(doc, "add_timeout_callback", lambda cb, ms: timeouts.append(cb))
    task = tasks.LatestTask(lambda *a: None, render=ran.append)
    gen = task._gen
    task._call(doc, gen, lambda: ran.append("progress 500/500"))  # the page is not connected yet: waits
    assert ran == [] and len(timeouts) == 1
    loaded["value"] = True
    task._call(doc, gen, lambda: ran.append("done"))  # connected now, but must queue behind the first
    assert ran == []
    timeouts.pop()()
    assert ran == ["progress 500/500", "done"]


def test_closed_tab_reports_of_the_framework_are_kept_out_of_the_log_and_nothing_else():
    """#15 item 10: a tab closed mid-update or mid-handshake makes bokeh, asyncio and tornado log framework
    noise; those three records are dropped, any other error (even one naming a websocket) is kept."""
    import logging
    import sys

    from explorer.ui.tasks import CLOSED_SOCKET_FILTER

    def record(name, message, error=None):
        exc_info = None
        if error is not None:
            try:
                raise error
            except AssertionError:
                exc_info = sys.exc_info()
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)

    closing = [
        record("bokeh.server.views.ws", "Failed sending message as connection was closed"),
        record("asyncio", "Task exception was never retrieved\nfuture: <Task finished coro=<WebSocketProtocol13."
                          "write_message.<locals>.wrapper() done> exception=WebSocketClosedError()>"),
    ]
    assert not any(CLOSED_SOCKET_FILTER.filter(r) for r in closing)
    kept = [record("tornado.application", "Uncaught exception GET /sampler/ws", AssertionError("something else")),
            record("asyncio", "Task exception was never retrieved: ValueError in a render"),
            record("bokeh.server.views.ws", "WebSocketClosedError while reading")]
    assert all(CLOSED_SOCKET_FILTER.filter(r) for r in kept)
