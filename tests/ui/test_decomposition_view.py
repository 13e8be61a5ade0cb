"""DecompositionView without a browser: both denoisers' n layers and base are shown and add back up to x, the
energies are plotted on a log axis, a failing denoiser says why, and the downloads hold the arrays."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from explorer.ui.decomposition_view import DecompositionView
from explorer.ui.sources import ImageSource

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GAUSS = "classical: Gaussian smoothing"


def make_view(models: tuple[str, str], **params) -> DecompositionView:
    view = DecompositionView(models=models, image_source=ImageSource(sizes=[32], size=32), **params)
    view.main()
    view.sidebar()
    return view


def exactness(text: str) -> float:
    return float(re.search(r"‖/‖x‖ = ([0-9.e+-]+)", text).group(1))


def test_each_denoiser_shows_n_layers_that_add_back_to_the_image(tiny_handle):
    view = make_view(("tiny-test", GAUSS))
    x = view.source.image
    shown = view.shown
    assert "Decomposed in" in shown.status and shown.alert == "" and shown.progress == (8, 8) and not shown.running
    for row, name in zip(shown.rows, ("tiny-test", GAUSS)):
        assert row.name == name and row.error == ""
        assert len(row.layers) == 4
        assert row.layer_titles[0] == "r₀ = x − f(x)" and row.layer_titles[3] == "r₃ = f³(x) − f⁴(x)"
        top = max(float(np.abs(r).max()) for r in row.layers)
        assert row.clim == pytest.approx((-top, top))  # one symmetric range for the row, centred at 0
        assert row.base_clim == (0.0, 1.0)
        np.testing.assert_allclose(np.sum(row.layers, axis=0, dtype=np.float64) + row.base, x, atol=1e-5)  # float32 panes
        assert exactness(row.exactness) < 1e-12 and "float64" in row.exactness
        assert "blind" in row.text
    curves = shown.energies.curves
    assert set(curves) == {"A: tiny-test", f"B: {GAUSS}"} and shown.energies.logy
    assert shown.energies.xlabel == "layer k" and "‖r_k‖²/N" in shown.energies.ylabel
    ks, energy = curves["A: tiny-test"]
    np.testing.assert_array_equal(ks, np.arange(4))
    np.testing.assert_allclose(energy, [np.mean(r.astype(np.float64) ** 2) for r in shown.rows[0].layers], rtol=1e-5)

    view.n = 2  # a new n recomputes both rows
    assert [len(r.layers) for r in view.shown.rows] == [2, 2] and view.shown.progress == (4, 4)
    assert len(view.shown.energies.curves["A: tiny-test"][0]) == 2


def test_the_downloads_hold_the_layers_the_base_and_the_parameters(tiny_handle):
    view = make_view(("tiny-test", GAUSS), n=3)
    data = np.load(io.BytesIO(view.npz().getvalue()))
    x = data["x"]
    np.testing.assert_array_equal(x, view.source.image)
    for label in ("A", "B"):
        layers, base = data[f"{label}_layers"], data[f"{label}_base"]
        assert layers.shape == (3, 32, 32) and layers.dtype == np.float64
        assert np.abs(layers.sum(axis=0) + base - x).max() < 1e-12  # exact: float64 layers, float64 sum
        np.testing.assert_allclose(data[f"{label}_energies"], np.mean(layers ** 2, axis=(1, 2)))
    params = json.loads(str(data["params"]))
    assert params["n"] == 3 and params["fixed_strength"] is False and params["image"] == "camera"
    assert params["A"]["model"] == "tiny-test" and params["B"]["model"] == GAUSS and params["B"]["sigma_told"] is None
    png = Image.open(io.BytesIO(view.png().getvalue()))
    assert png.width > 4 * 256 and png.height > 2 * 256  # 3 layers + the base, a row per denoiser
    assert view.basename() == "decomposition_camera_n3"


def test_fixed_strength_and_a_non_blind_denoiser_are_told_sigma(tiny_handle):
    own = make_view((GAUSS, "classical: BM3D"), n=1, sigma=0.1)
    assert "told σ = 0.1" in own.shown.rows[1].text and own.shown.rows[1].error == ""
    assert exactness(own.shown.rows[1].exactness) < 1e-12
    blind_energy = own.shown.energies.curves[f"A: {GAUSS}"][1][0]
    own.fixed_strength = True
    row = own.shown.rows[0]
    assert "told σ = 0.1" in row.text and "fixed strength" in row.text
    assert own.shown.energies.curves[f"A: {GAUSS}"][1][0] > 10 * blind_energy  # σ̂ of the clean image is tiny
    network = make_view(("tiny-test", GAUSS), n=1, fixed_strength=True)
    assert "a network without a σ input ignores it" in network.shown.rows[0].text


def test_a_failing_denoiser_says_why_and_the_other_row_is_shown(tiny_handle, monkeypatch):
    from explorer.ui import decomposition_state

    real = decomposition_state.get_handle

    def broken(name):
        if name == GAUSS:
            raise RuntimeError("weights missing")
        return real(name)

    monkeypatch.setattr(decomposition_state, "get_handle", broken)
    view = make_view(("tiny-test", GAUSS), n=2)
    shown = view.shown
    assert "weights missing" in shown.alert and "B (classical: Gaussian smoothing)" in shown.alert
    assert shown.rows[1].error == "RuntimeError: weights missing" and shown.rows[1].layers == []
    assert len(shown.rows[0].layers) == 2 and set(shown.energies.curves) == {"A: tiny-test"}


def test_a_stop_ends_the_work_after_the_application_in_progress(tiny_handle):
    import threading

    from explorer.ui.decomposition_state import compute

    stop, published = threading.Event(), []

    def publish(payload):
        published.append(payload)
        if payload.get("progress") == (2, 6):
            stop.set()  # Stop pressed during the third application

    image = ImageSource(sizes=[32], size=32).image
    compute(dict(image=image, models=["tiny-test", GAUSS], n=3, sigma=0.1, fixed=False), stop, publish)
    assert published == [dict(progress=(1, 6)), dict(progress=(2, 6))]  # no row, no end: nothing half-done is shown
    view = make_view(("tiny-test", GAUSS), n=1)
    view.stop()
    assert view.shown.status == "Stopped." and not view.shown.running
