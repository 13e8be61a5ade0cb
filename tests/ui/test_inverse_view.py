"""InverseView without a browser: drawn strokes → the operator's mask, measurements, Algorithm 2 runs."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from explorer import measurements as meas
from explorer.ui.sources import ImageSource
from explorer.ui.inverse_view import MEASUREMENTS, InverseView
from explorer.ui.mask import MaskDrawing, Rect, Stroke, plot_to_pixel, rect_mask, replay, stroke_mask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def view(tiny_handle):
    v = InverseView(model="tiny-test", size=32, source="synthetic", samples=2, beta=0.5, h0=0.05, sigma_L=0.05)
    yield v
    v.worker.stop(wait=True)


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
    assert torch.equal(view.x_c, m.forward(x))
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
    view.kind = kind
    assert view.measurement is not None and view.baseline.shape == (32, 32)
    assert "pseudo-inverse" in view.metrics
    view.step()
    assert view.sampler.t == 1 and view.sampler.measurement is view.measurement
    assert {"sample 1", "sample 2", "mean of samples"} <= set(view.metrics)


def test_fraction_flows_into_the_operator(view):
    view.kind = "random pixels"
    view.fraction = 0.25
    assert view.measurement.m == int(0.25 * 32 * 32)
    view.kind = "super-resolution"
    view.factor = 8
    assert view.measurement.m == 16


def test_run_to_the_end_and_stop(view):
    view.kind = "super-resolution"
    view.factor = 2
    view.controls.play_clicks += 1
    view.worker.join(120)
    assert view.sampler.done and "Finished" in view.controls.status
    assert view.controls.progress == 100 and "sample 2" in view._metrics_md.object
    assert np.isfinite(view.sampler.state.x_hat.numpy()).all()
    # a long run is stopped by Pause
    view.beta, view.h0, view.sigma_L = 0.05, 0.001, 0.002
    view.play()
    assert view.worker.running
    view.controls.pause_clicks += 1
    assert not view.worker.running and not view.controls.running
    t = view.sampler.t
    assert view.sampler.t == t and "Paused" in view.controls.status


def test_mask_edit_during_a_run_stops_it(view):
    view.beta, view.h0, view.sigma_L = 0.05, 0.001, 0.002
    view.play()
    view.preset("centre square")
    assert not view.worker.running and view.sampler is None


def test_bad_upload_is_shown_not_raised(view):
    ok = view.source.load_bytes(b"this is not a PNG", "holiday.png")
    assert not ok and "holiday.png" in view.source.error and view.source._alert.visible
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
    assert view._png().getvalue()[:4] == b"\x89PNG"
    z = np.load(io.BytesIO(view._npz().getvalue()))
    assert z["samples"].shape == (2, 32, 32) and z["observed_mask"].dtype == bool
    params = json.loads(str(z["params"]))
    assert params["measurement"] == MEASUREMENTS[0] and "pseudo-inverse" in params["metrics"]


@pytest.mark.parametrize("hidden, note", [(False, "nothing is hidden"), (True, "everything is hidden")])
def test_a_mask_hiding_nothing_or_everything_is_explained_and_still_runs(hidden, note):
    v = InverseView()
    v.drawing.set(np.full_like(v.drawing.holes, hidden))
    v._update_measurement()
    assert note in v._describe.object and v.error == ""
    sampler = v.build_sampler()
    assert sampler is not None
    assert sampler.measurement.m == (0 if hidden else v.size ** 2)
