"""InverseView without a browser: drawn strokes → the operator's mask, measurements, Algorithm 2 runs."""
from __future__ import annotations

import io
import json

from types import SimpleNamespace

import numpy as np
import panel as pn
import pytest
import torch

from explorer import measurements as meas
from explorer.ui.sources import ImageSource
from explorer.ui.inverse_state import InverseRun
from explorer.ui.inverse_view import MEASUREMENTS, InverseView
from explorer.ui.models import register_handle
from explorer.ui.mask import MaskDrawing, Rect, Stroke, plot_to_pixel, rect_mask, replay, stroke_mask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def view(tiny_handle):
    v = InverseView(model="tiny-test", size=32, source="synthetic", chains=2, beta=0.5, h0=0.05, sigma_L=0.05)
    yield v
    v.pause()


# ---------------------------------------------------------------- pure rasterisation
def test_stroke_mask_is_the_pixels_within_the_radius():
    m = stroke_mask((8, 8), [1.5, 5.5], [2.5, 2.5], 0.5)  # horizontal segment through row 2 centres
    expected = np.zeros((8, 8), bool)
    expected[2, 1:6] = True
    assert np.array_equal(m, expected)
    disc = stroke_mask((9, 9), [4.5], [4.5], 2.0)  # a click: a disc of radius 2
    i, j = np.mgrid[0:9, 0:9]
    assert np.array_equal(disc, (i - 4) ** 2 + (j - 4) ** 2 <= 4)
    assert not stroke_mask((5, 5), [], [], 3).any()
    assert not stroke_mask((5, 5), [50.0], [50.0], 3).any()  # off the image


def test_rect_mask_and_plot_coordinates():
    r = rect_mask((6, 6), 1.0, 2.0, 4.0, 3.0)  # columns 1..3, row 2
    assert np.argwhere(r).tolist() == [[2, 1], [2, 2], [2, 3]]
    cols, rows = plot_to_pixel([0.5, 3.2], [5.5, 0.1], 6)  # y up in the plot, row down in the array
    assert cols.tolist() == [0.5, 3.2] and rows.tolist() == [0.5, pytest.approx(5.9)]


def test_drawing_paint_erase_invert_replay():
    d = MaskDrawing((8, 8))
    d.add(Rect(0, 0, 8, 4))
    d.add(Stroke([0.5, 7.5], [1.5, 1.5], 0.5, mode="erase"))
    assert d.holes[:4].sum() == 8 * 4 - 8 and not d.holes[1].any()
    assert np.array_equal(replay((8, 8), d.ops), d.holes)
    inv = d.invert()
    assert np.array_equal(inv, ~replay((8, 8), [Rect(0, 0, 8, 4), Stroke([0.5, 7.5], [1.5, 1.5], 0.5, "erase")]))
    assert not d.clear().any()


# ---------------------------------------------------------------- the view
def test_drawn_stroke_is_exactly_the_operators_mask(view):
    view.clear_mask()
    view.brush_radius = 2.0
    xs, ys = [3.0, 20.0, 25.0], [30.0, 16.0, 16.0]  # plot coordinates, as FreehandDraw reports them
    view.freehand.event(data={"xs": [xs], "ys": [ys]})
    cols, rows = plot_to_pixel(xs, ys, 32)
    expected_holes = stroke_mask((32, 32), cols, rows, 2.0)
    assert expected_holes.sum() > 20
    assert np.array_equal(view.holes, expected_holes)
    m = view.measurement
    assert isinstance(m, meas.Inpainting)
    assert torch.equal(m.mask[0], torch.from_numpy(~expected_holes))
    x = torch.from_numpy(view.image)[None, None]
    assert torch.equal(view.run.x_c, m.forward(x))
    # the sampler is built with that very operator
    view.step()
    assert view.sampler.measurement is m and view.sampler.t == 1


def test_erase_mode_rectangle_tool_and_buttons(view):
    view.clear_mask()
    view.tool = "rectangle"
    view.box.event(bounds=(0.0, 0.0, 32.0, 16.0))  # bottom half of the plot = rows 16..31
    holes = view.holes
    assert holes[16:].all() and not holes[:16].any()
    view.paint_mode = "restore pixels"
    view.box.event(bounds=(0.0, 0.0, 32.0, 8.0))  # restore rows 24..31
    assert view.holes[16:24].all() and not view.holes[24:].any()
    view.invert_mask()
    assert view.holes[:16].all() and view.holes[24:].all() and not view.holes[16:24].any()
    assert view.measurement.m == 8 * 32
    view.clear_mask()
    assert not view.holes.any() and view.measurement.m == 32 * 32


@pytest.mark.parametrize("kind", MEASUREMENTS[1:])
def test_each_measurement_builds_and_runs(view, kind):
    view.run.kind = kind
    assert view.measurement is not None and view.run.baseline.shape == (32, 32)
    assert "pseudo-inverse" in view.run.metrics
    view.step()
    assert view.sampler.t == 1 and view.sampler.measurement is view.measurement
    assert {"sample 1", "sample 2", "mean of samples"} <= set(view.run.metrics)


def test_fraction_flows_into_the_operator(view):
    view.run.kind = "random pixels"
    view.run.fraction = 0.25
    assert view.measurement.m == int(0.25 * 32 * 32)
    view.run.kind = "super-resolution"
    view.run.factor = 8
    assert view.measurement.m == 16


def test_run_to_the_end_and_stop(view):
    view.run.kind = "super-resolution"
    view.run.factor = 2
    view.controls.play_clicks += 1
    view.worker.join(120)
    assert view.sampler.done and "Finished" in view.controls.status
    assert view.controls.progress == 100 and "sample 2" in view.metrics_table.object
    assert np.isfinite(view.sampler.state.x_hat.numpy()).all()
    # a long run is stopped by Pause
    view.run.param.update(beta=0.05, h0=0.001, sigma_L=0.002)
    view.play()
    assert view.worker.running
    view.controls.pause_clicks += 1
    assert not view.worker.running and not view.controls.running
    t = view.sampler.t
    assert view.sampler.t == t and "Paused" in view.controls.status


def test_mask_edit_during_a_run_stops_it(view):
    view.run.param.update(beta=0.05, h0=0.001, sigma_L=0.002)
    view.play()
    view.preset("centre square")
    assert not view.worker.running and view.sampler is None


def test_bad_upload_is_shown_not_raised(view):
    ok = view.source.load_bytes(b"this is not a PNG", "holiday.png")
    assert not ok and "holiday.png" in view.source.error
    assert view.image.shape == (32, 32)  # the session keeps working
    view.step()
    assert view.sampler.t == 1


def test_good_upload_replaces_the_image(view, tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.arange(40 * 50).reshape(40, 50) % 256).astype(np.uint8)).save(buf, format="PNG")
    assert view.source.load_bytes(buf.getvalue(), "ramp.png")
    assert view.source.source == "upload" and view.image.shape == (32, 32) and view.source.error == ""


def test_image_source_generators():
    src = ImageSource(size=32, source="synthetic")
    for kind in ("dead leaves", "discs", "C^α contour"):
        src.synthetic = kind
        assert src.image.shape == (32, 32) and src.image.dtype == np.float32
        assert 0 <= src.image.min() and src.image.max() <= 1


def test_downloads(view):
    view.step()
    assert view.png().getvalue()[:4] == b"\x89PNG"
    z = np.load(io.BytesIO(view.npz().getvalue()))
    assert z["samples"].shape == (2, 32, 32) and z["observed_mask"].dtype == bool
    params = json.loads(str(z["params"]))
    assert params["measurement"] == MEASUREMENTS[0] and "pseudo-inverse" in params["metrics"]
    assert params["chains"] == 2
    pn.panel(view).get_root()  # the whole view renders to bokeh models


@pytest.mark.parametrize("hidden, note", [(False, "nothing is hidden"), (True, "everything is hidden")])
def test_a_mask_hiding_nothing_or_everything_is_explained_and_still_runs(hidden, note):
    v = InverseView()
    v.run.drawing.set(np.full_like(v.holes, hidden))
    v.invalidate()
    assert note in v.description.object and v.error == ""
    sampler = v.run.build_for(v.picker.handle)
    assert sampler is not None
    assert sampler.measurement.m == (0 if hidden else v.size ** 2)


# ---------------------------------------------------------------- issue #15
def patch_handle(name: str, patch: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, card={"name": name, "training": {"patch": patch}}, channels=1, blind=True,
                           device="cpu", dtype=torch.float32, denoise=lambda y, sigma=None: 0.5 + 0.0 * y)


def test_the_image_size_defaults_to_the_models_training_size_and_other_sizes_warn():
    """#15 item 2, in the inverse tool: the image size is the model's training size; another one warns."""
    register_handle("inverse-mnist-like", patch_handle("inverse-mnist-like", 32))
    register_handle("inverse-patch-40", patch_handle("inverse-patch-40", 40))
    v = InverseView(model="inverse-mnist-like")
    assert v.size == 32 and not v.size_alert.visible
    v.step()
    assert v.sampler.shape == (3, 1, 32, 32)
    v.source.size = 64
    assert v.size == 64 and v.size_alert.visible and "trained on 32×32" in v.size_alert.object
    v.source.size = 32
    v.picker.model = "inverse-patch-40"
    assert v.size == 40 and 40 in v.source.param.size.objects and not v.size_alert.visible


def test_numeric_inputs_state_their_range_and_clamp(view):
    """#15 item 3: chains (one name in both tools), seed and measurement seed state their range and clamp."""
    view.run.kind = "random pixels"
    fields = {w.name.split(" (")[0]: w for w in view.sidebar().select(pn.widgets.IntInput)}
    assert {"Chains", "Seed", "Measurement seed"} <= set(fields) and "Samples" not in fields
    assert fields["Chains"].name == "Chains (1–6)"
    fields["Chains"].value = 40
    assert fields["Chains"].value == 6 and view.run.chains == 6
    view.step()
    assert view.sampler.shape[0] == 6 and len(view.sample_images) == 6
    fields["Seed"].value = -1
    assert view.run.seed == 0 and fields["Seed"].value == 0
    assert InverseView(model="tiny-test", size=32, samples=2).run.chains == 2  # the old name still works


def test_the_statistics_line_is_cleared_when_the_problem_changes(view):
    """#15 item 11: the step / time / σ line of the last run went stale after the measurement changed."""
    view.step()
    view.step()
    assert "step t = 2" in view.stats.object
    view.run.kind = "super-resolution"
    assert "step t = 2" not in view.stats.object and view.sampler is None
    view.step()
    assert "step t = 1" in view.stats.object
    view.clear_mask()  # a mask edit does not matter for super-resolution, changing the kind back does
    view.run.kind = MEASUREMENTS[0]
    assert view.stats.object == "" and set(view.run.metrics) == {"pseudo-inverse"}


def test_compressive_sensing_is_named_both_ways(view):
    """#15 item 11: 'random basis' is what the papers call compressive sensing."""
    [kind] = [k for k in MEASUREMENTS if "compressive sensing" in k]
    assert "random basis" in kind
    view.run.kind = kind
    assert isinstance(view.measurement, meas.RandomBasis)


def test_the_expected_time_is_shown_before_the_run(view):
    """#15 item 11: 256×256 inpainting took 74.6 s without warning: show ≈ steps × measured step time first."""
    text = view.controls.status
    assert f"≈ {view.run.predicted_steps} steps ×" in text and "expected" in text and view.sampler is None
    assert view.run.expected_time() in text


def test_the_state_runs_algorithm_2_without_panel(tiny_handle):
    run = InverseRun(np.full((16, 16), 0.5, np.float32), chains=2, beta=0.5, h0=0.05, sigma_L=0.05, kind="super-resolution")
    assert run.measurement.m == 16 and run.build_for(tiny_handle) is not None
    assert run.play()
    run.join(60)
    assert run.done and run.history()["sigma"].shape[1] == 2
    run.score(run.sampler.state)
    assert {"pseudo-inverse", "sample 1", "sample 2", "mean of samples"} == set(run.metrics)


@pytest.mark.parametrize("kind", MEASUREMENTS)
def test_panel_titles_fit_the_panel(view, kind):
    """#15 item 11: "log₁₀|DCT coefficient| kept" / "Low-resolution image (16×16)" were cut off at 190 px
    (bokeh titles do not wrap; about 22 characters of 11 pt text fit)."""
    view.run.kind = kind
    style, image, title = view.run.measurement_picture()
    assert image.ndim == 2 and 0 < len(title) <= 22, title


def test_panels_are_native_wrapping_rows_not_a_flexbox(view):
    """A pn.FlexBox (a ReactiveHTML) of figures, nested as in apps/main.py?page=inverse, never finished rendering:
    the page never reported ready and Panel dropped later sidebar updates (tests/ui/test_browser_inverse_page.py)."""
    assert not view.main().select(pn.FlexBox)
    assert len(view.sample_images) == 2 and view.mean_image is not None  # 2 samples and their mean, rows of at most 3
    assert all(im.figure.width < 400 for im in view.sample_images)  # not bokeh's default 600 px each in the Row
    assert not view.main().select(pn.FlexBox)


def test_after_a_run_the_samples_spread_is_shown_beside_the_jacobian_map(view):
    view.run.chains = 3
    view.preset("centre square")
    view.controls.play_clicks += 1
    view.worker.join(120)
    assert view.sampler.done
    shown = view.uncertainty.shown
    assert shown.visible and "r = " in shown.text and "3 samples" in shown.text
    u = view.uncertainty.result
    xh = view.sampler.state.x_hat.numpy()[:, 0].astype(np.float64)
    np.testing.assert_allclose(u["spread"], xh.std(axis=0, ddof=1), rtol=1e-5, atol=1e-7)
    observed = view.measurement.mask[0].numpy()
    assert np.all(u["jacobian"][observed] == 0)  # P = I − MMᵀ: no uncertainty where the pixel is measured
    assert u["jacobian"][~observed].mean() > 0
    np.testing.assert_allclose(shown.jacobian, u["jacobian"], rtol=1e-6)
    data = np.load(io.BytesIO(view.npz().getvalue()), allow_pickle=False)
    np.testing.assert_allclose(data["samples_spread"], u["spread"])
    view.run.chains = 1  # a new problem: the maps are gone; one chain has no spread to show
    assert not view.uncertainty.shown.visible and "samples_spread" not in np.load(io.BytesIO(view.npz().getvalue()))
