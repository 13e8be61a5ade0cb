"""GAHBView without a browser: the grid shows top_singular's vectors, the spectrum and numbers come from
explorer.jacobian, the shrinkage with all terms is A_s y, the σ-curve, paging, downloads."""
from __future__ import annotations

import io
import json

import holoviews as hv
import numpy as np
import pytest
import torch

from explorer import jacobian
from explorer.ui.sources import ImageSource
from explorer.jacobian import partial_shrinkage
from explorer.ui.gahb_state import CURVE_SIGMAS, PER_PAGE, GAHBState, krylov_options, noise_draw
from explorer.ui.gahb_view import GAHBView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def small_source(size: int = 16) -> ImageSource:
    return ImageSource(sizes=[size], source="synthetic", synthetic="discs", seed=1)


@pytest.fixture
def view(tiny_handle):
    return GAHBView(model="tiny-test", image_source=small_source(), k=8, curve=False, sigma=0.1)


def grid_images(view: GAHBView) -> list[hv.Image]:
    layout = view.grid_pane.object
    assert isinstance(layout, hv.Layout)
    return list(layout.values())


def test_grid_shows_the_top_singular_vectors(view, tiny_handle):
    svd = jacobian.harmonic_basis(tiny_handle, view.y, 8, seed=0, **krylov_options(8)).svd
    np.testing.assert_allclose(view.svd.values.numpy(), svd.values.numpy(), rtol=1e-6)
    imgs = grid_images(view)
    assert len(imgs) == 8
    for k, img in enumerate(imgs):
        np.testing.assert_allclose(np.asarray(img.data), svd.U[k, 0].numpy(), rtol=1e-5, atol=1e-7)
    view.vectors = "v (input side)"
    for k, img in enumerate(grid_images(view)):
        np.testing.assert_allclose(np.asarray(img.data), svd.V[k, 0].numpy(), rtol=1e-5, atol=1e-7)
    assert "v₁…v₈" in view.grid_label.object


def test_noisy_image_denoised_and_numbers(view, tiny_handle):
    z = np.random.default_rng(0).standard_normal(view.source.image.shape).astype(np.float32)
    np.testing.assert_allclose(view.y, view.source.image + 0.1 * z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(view.xhat, tiny_handle.denoise(view.y), rtol=1e-5, atol=1e-6)
    tr = jacobian.effective_dim(tiny_handle, view.y, method="exact")
    sym = jacobian.symmetry(tiny_handle, view.y, method="exact")
    assert view.stats["trace"].value == pytest.approx(tr.value, rel=1e-6)
    assert view.stats["symmetry"].value == pytest.approx(sym.value, rel=1e-6)
    text = view.numbers.object
    assert "N = 256" in text and "tr A" in text and "(exact)" in text and "symmetry" in text
    assert f"{tr.value:.3g}" in text
    # the spectrum plot exists, on log axes
    spec = view.spectrum_pane.object
    assert spec.opts.get("plot").kwargs["logx"] and spec.opts.get("plot").kwargs["logy"]


def test_sigma_zero_is_the_clean_image(view):
    view.sigma = 0.0
    np.testing.assert_allclose(view.y, view.source.image)


def test_shrinkage_with_all_terms_reproduces_A_s_y(tiny_handle):
    n = 12 * 12
    v = GAHBView(model="tiny-test", image_source=small_source(12), k=16, curve=False)
    v.k = 256  # clipped to N = 144: every eigenvector of A_s
    assert v.shrink.eigenvalues.shape == (n,) and v.param.terms.bounds == (1, n) and v.terms == n
    y = torch.as_tensor(v.y)[None, None]
    As_y = 0.5 * (jacobian.jvp(tiny_handle, v.y, y[0]) + jacobian.vjp(tiny_handle, v.y, y[0]))[0].numpy()
    full = v.shrinkage_image()
    np.testing.assert_allclose(full, As_y, atol=2e-4 * np.abs(As_y).max())
    np.testing.assert_allclose(full, v.shrink.reconstruction[0].numpy(), atol=1e-5)
    # and the partial sums are what the slider shows
    v.terms = 5
    part = partial_shrinkage(v.shrink.eigenvalues.numpy(), v.shrink.eigenvectors[:, 0].numpy(), v.y, 5)
    np.testing.assert_allclose(v.shrinkage_image(), part, rtol=1e-5, atol=1e-6)
    assert "K = 5" in v.shrink_text.object
    assert not np.allclose(v.shrinkage_image(), full)


def test_paging_through_singular_vectors(tiny_handle):
    v = GAHBView(model="tiny-test", image_source=small_source(), k=32, curve=False)
    assert v.page_slider.visible and v.param.page.bounds == (1, 2)
    first = [np.asarray(i.data) for i in grid_images(v)]
    assert len(first) == PER_PAGE
    v.page = 2
    second = grid_images(v)
    assert len(second) == 32 - PER_PAGE
    np.testing.assert_allclose(np.asarray(second[0].data), v.svd.U[PER_PAGE, 0].numpy(), rtol=1e-6)
    assert [k for k, _ in v.grid_arrays()][0] == PER_PAGE + 1
    v.k = 8
    assert not v.page_slider.visible and len(grid_images(v)) == 8


def test_effective_dimension_curve(tiny_handle):
    v = GAHBView(model="tiny-test", image_source=small_source(), k=4, curve=True)
    z = noise_draw(v.source.image.shape, 0)  # the draw of y itself
    ref = jacobian.effective_dim_curve(tiny_handle, v.source.image, CURVE_SIGMAS, seed=0, method="exact", noise=z)
    order = np.argsort(v.curve_data["sigma"])
    np.testing.assert_allclose(np.asarray(v.curve_data["sigma"])[order], CURVE_SIGMAS)
    np.testing.assert_allclose(np.asarray(v.curve_data["trace"])[order], ref.trace, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(v.curve_data["sum_sq"])[order], ref.sum_sq, rtol=1e-6)
    plot = v.curve_pane.object
    kw = plot.opts.get("plot").kwargs
    assert kw["logx"] and "σ" in kw["xlabel"]
    assert v.progress_bar.value == 100 and "Done" in v.status.object


def test_downloads(view):
    png = view.png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(io.BytesIO(view.npz().getvalue()))
    np.testing.assert_allclose(data["U"], view.svd.U.numpy())
    np.testing.assert_allclose(data["shrinkage_shown"], view.shrinkage_image())
    params = json.loads(str(data["params"]))
    assert params["k"] == 8 and params["model"] == "tiny-test"
    assert params["stats"]["trace"]["method"] == "exact"


def test_unloadable_model_shows_an_alert(tiny_handle):
    v = GAHBView(model="tiny-test", image_source=small_source(), k=4, curve=False)
    v.picker.param.model.objects = [*v.picker.param.model.objects, "no-such-model"]
    v.picker.model = "no-such-model"
    assert v.alert_pane.visible and "no-such-model" in v.alert_pane.object
    v.picker.model = "tiny-test"
    assert not v.alert_pane.visible and v.svd is not None


# --------------------------------------------------------------------------- issue #15 item 4
def test_the_shrinkage_slider_shows_the_K_of_the_result(tiny_handle):
    """The slider showed K = 16 while the result said K = 64 (its value was set with events discarded)."""
    v = GAHBView(model="tiny-test", image_source=small_source(), k=16, curve=False)
    v.k = 64
    assert v.terms == 64 and v.terms_slider.value == 64 and v.terms_slider.end == 64
    assert "K = 64" in v.shrink_text.object
    v.terms_slider.value = 10
    assert v.terms == 10 and "K = 10" in v.shrink_text.object


def test_tr_A_is_the_curve_at_the_marked_sigma(tiny_handle):
    """tr A (305 ± 1.9) and the curve at the marked σ (≈ 230) used different noise draws: now one draw."""
    for size in (16, 24):  # exact, and Hutchinson (N = 576 > 256)
        v = GAHBView(model="tiny-test", image_source=small_source(size), k=4, curve=True, sigma=0.15, probes=8)
        at = v.curve_data["sigma"].index(0.15)
        assert v.curve_data["trace"][at] == v.stats["trace"].value
        assert v.curve_data["sum_sq"][at] == v.stats["sum_sq"].value
        assert "same noise draw" in v.numbers.object
        tr = jacobian.effective_dim(tiny_handle, v.y, method=v.stats["method"], probes=8)
        assert tr.value == pytest.approx(v.stats["trace"].value, rel=1e-5)  # the tr A of the y shown


def test_s1_above_one_is_explained(view):
    text = view.numbers.object
    s1 = float(view.svd.values[0])
    assert ("not a projection" in text) == (s1 > 1)
    from explorer.ui.gahb_view import EXPLANATION
    assert "not a projection" in EXPLANATION


def test_progress_moves_with_the_krylov_steps(tiny_handle):
    state = GAHBState(k=8, curve=False)
    req = state.request(tiny_handle, small_source(24).image)
    seen = []
    from explorer.ui.gahb_state import compute_stages
    compute_stages(req, __import__("threading").Event(), seen.append)
    steps = [m["progress"] for m in seen]
    assert [m["stage"] for m in seen].count("progress") >= 4  # the bar moves inside the SVD and the shrinkage
    assert steps == sorted(steps) and len(set(steps)) >= 6
    for m in seen:
        state.apply(m)
    assert state.svd is not None and state.shrink is not None and state.stats
