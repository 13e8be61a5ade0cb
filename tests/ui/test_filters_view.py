"""FiltersView without a browser: a Tap shows the Jacobian row of the clicked pixel, σ and seed drive the
noisy image, three denoisers side by side, crops, downloads, bad models."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from explorer import jacobian
from explorer.ui.filters_view import FiltersView
from explorer.ui.pixels import centred_crop, pixel_centre, plot_to_pixel_index
from explorer.ui.models import get_handle
from explorer.ui.sources import ImageSource

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GAUSS = "classical: Gaussian smoothing"
WIENER = "classical: Wiener filter"


@pytest.fixture
def view(tiny_handle):
    return FiltersView(models=["tiny-test", GAUSS, WIENER], image_source=ImageSource(sizes=[32], size=32), sigma=0.1)


def tap(view: FiltersView, pixel: tuple[int, int]) -> None:
    """Fire the HoloViews Tap stream of the noisy image at the centre of ``pixel`` (row, col)."""
    x, y = pixel_centre(pixel, view.noisy.shape)
    view.tap.event(x=x, y=y)


def shown_filter(view: FiltersView, name: str) -> np.ndarray:
    return view.filters[name].filter


def test_tap_shows_the_jacobian_row_of_that_pixel(view, tiny_handle):
    pixel = (5, 20)  # row ≠ col: a transposed convention would pick (20, 5)
    tap(view, pixel)
    assert view.pixel == pixel
    expected = jacobian.row(tiny_handle, view.noisy, pixel)[0].numpy()
    shown = shown_filter(view, "tiny-test")
    assert shown.shape == (32, 32)
    np.testing.assert_allclose(shown, expected, rtol=1e-5, atol=1e-7)
    transposed = jacobian.row(tiny_handle, view.noisy, (20, 5))[0].numpy()
    assert not np.allclose(shown, transposed)
    # the filter peaks near the clicked pixel
    peak = np.unravel_index(np.abs(shown).argmax(), shown.shape)
    assert abs(peak[0] - 5) <= 2 and abs(peak[1] - 20) <= 2
    # the marker sits on the clicked pixel
    assert view.marker_pixel == pixel
    assert all(view.filters[name].marker_pixel == pixel for name in view.models)


def test_row_sum_shown_is_the_sum_of_the_shown_filter(view):
    tap(view, (7, 25))
    for name in view.models:
        r = view.results[name]
        total = float(shown_filter(view, name).sum(dtype=np.float64))
        assert r["row_sum"] == pytest.approx(total, rel=1e-6, abs=1e-9)
        assert f"{total:.4f}" in view.filters[name].text
    # bias-free: x̂_i = ⟨a_i, y⟩
    r = view.results["tiny-test"]
    assert r["inner"] == pytest.approx(r["xhat_i"], rel=1e-3, abs=1e-4)
    assert "J(y)y = x̂(y)" in view.filters["tiny-test"].text


def test_clicking_the_denoised_image_also_selects(view):
    x, y = pixel_centre((30, 2), (32, 32))
    view.filters[GAUSS].tap.event(x=x, y=y)
    assert view.pixel == (30, 2)


def test_sigma_and_seed_change_the_noisy_image(view):
    y1 = view.noisy.copy()
    f1 = shown_filter(view, "tiny-test").copy()
    view.sigma = 0.3
    y2 = view.noisy.copy()
    assert not np.allclose(y1, y2)
    np.testing.assert_allclose(view.shown_noisy, y2)
    # the same z at both σ: y − x scales with σ
    np.testing.assert_allclose((y2 - view.clean) / 0.3, (y1 - view.clean) / 0.1, rtol=1e-4, atol=1e-4)
    assert not np.allclose(shown_filter(view, "tiny-test"), f1)
    view.seed = 3
    assert not np.allclose(view.noisy, y2)
    view.sigma = 0.0
    np.testing.assert_allclose(view.noisy, view.clean)


def test_three_denoisers_side_by_side(view):
    tap(view, (16, 9))
    assert list(view.filters) == ["tiny-test", GAUSS, WIENER]
    with pytest.raises(TypeError):  # read-only
        view.filters[GAUSS] = None
    filters = [shown_filter(view, n) for n in view.models]
    assert all(f.shape == (32, 32) for f in filters)
    assert not np.allclose(filters[0], filters[1]) and not np.allclose(filters[1], filters[2])
    for name, f in zip(view.models, filters):
        expected = jacobian.row(get_handle(name), view.noisy, (16, 9))[0].numpy()
        np.testing.assert_allclose(f, expected, rtol=1e-4, atol=1e-6)
    assert view.results[GAUSS]["row_sum"] == pytest.approx(1.0, abs=0.05)  # a normalised blur
    assert len(view.columns) == 3
    view.models = ["tiny-test", GAUSS, WIENER, "classical: Haar shrinkage"]
    assert len(view.models) == 3  # at most three
    view.models = [GAUSS]
    assert list(view.results) == [GAUSS] and len(view.columns) == 1


def test_crop_is_centred_on_the_pixel_and_nan_outside(view):
    tap(view, (1, 30))
    half = view.crop
    c = view.filters["tiny-test"].crop
    f = shown_filter(view, "tiny-test")
    assert c.shape == (2 * half + 1, 2 * half + 1)
    assert c[half, half] == f[1, 30]
    assert np.isnan(c[0, half]) and np.isnan(c[half, -1])  # above row 0, right of the last column
    assert c[half + 1, half - 1] == f[2, 29]
    view.crop = 3
    assert view.filters["tiny-test"].crop.shape == (7, 7)


def test_plot_coordinates_map_to_pixels_both_ways():
    shape = (6, 9)
    for i in range(6):
        for j in range(9):
            assert plot_to_pixel_index(*pixel_centre((i, j), shape), shape) == (i, j)
    assert plot_to_pixel_index(0.01, 5.99, shape) == (0, 0)  # top-left corner
    assert plot_to_pixel_index(100, -4, shape) == (5, 8)  # clipped
    a = np.arange(25.0).reshape(5, 5)
    assert np.array_equal(centred_crop(a, (2, 2), 2), a)


def test_size_change_keeps_a_valid_pixel(view):
    tap(view, (31, 31))
    src = view.source
    src.param.size.objects = [16, 32]
    src.size = 16
    assert view.noisy.shape == (16, 16)
    assert 0 <= view.row < 16 and 0 <= view.col < 16
    assert shown_filter(view, "tiny-test").shape == (16, 16)


def test_downloads(view):
    tap(view, (4, 11))
    png = view.png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(io.BytesIO(view.npz().getvalue()))
    params = json.loads(str(data["params"]))
    assert params["pixel"] == [4, 11] and params["sigma"] == pytest.approx(0.1)
    np.testing.assert_allclose(data["model0_filter"], shown_filter(view, "tiny-test"))
    assert params["numbers"]["tiny-test"]["row_sum"] == pytest.approx(view.results["tiny-test"]["row_sum"])
    assert "r4c11" in view.basename()


def test_a_model_that_cannot_load_is_reported_and_the_others_still_work(tiny_handle):
    v = FiltersView(models=["no-such-model", "tiny-test"], image_source=ImageSource(sizes=[32], size=32))
    assert "no-such-model" in v.errors and "tiny-test" in v.results
    assert v.alert_pane.visible and "no-such-model" in v.alert_pane.object
    assert "failed" in v.filters["no-such-model"].text
    tap(v, (3, 4))
    assert v.results["tiny-test"]["filter"].shape == (32, 32)


# --------------------------------------------------------------------------- issue #15 items 3 and 7
def test_classical_denoisers_are_analysed_at_a_fixed_sigma(view):
    from explorer.ui.filters_view import EXPLANATION

    assert "fixed σ" in EXPLANATION and "held constant" in EXPLANATION
    tap(view, (16, 9))
    assert "held fixed" in view.filters[GAUSS].text and "held fixed" not in view.filters["tiny-test"].text
    f = view.results[GAUSS]["filter"]
    assert np.unravel_index(np.argmax(f), f.shape) == (16, 9)  # the Gaussian kernel peaks at the clicked pixel


def test_pixel_fields_state_their_range_and_clamp(view):
    row, col = view.pixel_inputs
    assert "(0–31)" in row.name and "(0–31)" in col.name
    row.value = 99
    assert view.row == 31 and row.value == 31  # clamped visibly
    view.source.param.size.objects = [16, 32]
    view.source.size = 16
    row, col = view.pixel_inputs
    assert "(0–15)" in row.name


# ------------------------------------------------------------------ posterior uncertainty (issue #20)
@pytest.fixture(scope="module")
def gaussian_prior_32():
    """N(μ, Σ) on 32×32 images (squared-exponential Σ, length 1 pixel): its posterior std is known in closed form."""
    import torch

    from explorer import ModelHandle
    from explorer.denoisers.exact import GaussianPriorDenoiser
    from explorer.ui.models import register_handle

    n = 32
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    p = np.stack([yy.ravel(), xx.ravel()], 1)
    cov = 0.04 * np.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 2.0) + 1e-4 * np.eye(n * n)
    mean = np.full((n, n), 0.5)
    handle = ModelHandle(GaussianPriorDenoiser(torch.tensor(mean, dtype=torch.float32), cov), device="cpu", name="gauss-prior-32")
    register_handle("gauss-prior-32", handle)
    return "gauss-prior-32", mean, cov


def test_the_posterior_map_is_the_closed_form_and_calibrated_on_the_gaussian_prior(gaussian_prior_32):
    name, mean, cov = gaussian_prior_32
    sigma = 0.1
    view = FiltersView(models=[name], image_source=ImageSource(sizes=[32], size=32), sigma=sigma)
    x = np.random.default_rng(3).multivariate_normal(mean.ravel(), cov).reshape(32, 32).astype(np.float32)
    view.source.image = x  # a draw from the prior: its errors follow the posterior exactly
    post = view.results[name]["posterior"]
    expected = np.sqrt(np.diag(cov - cov @ np.linalg.solve(cov + sigma**2 * np.eye(len(cov)), cov))).reshape(32, 32)
    rel = np.abs(post["std"] - expected) / expected
    assert np.median(rel) < 0.05
    np.testing.assert_allclose(post["error"], np.abs(view.results[name]["denoised"] - x), atol=1e-6)
    # x̂ − x ~ N(0, posterior covariance): the fractions within 1 and 2 std are the Gaussian ones
    assert abs(post["calibration"][1.0] - 0.683) < 0.06 and abs(post["calibration"][2.0] - 0.954) < 0.03
    shown = view.filters[name].posterior
    np.testing.assert_allclose(shown.std, post["std"], rtol=1e-6)
    np.testing.assert_allclose(shown.error, post["error"], rtol=1e-6)
    assert "within 1σ" in shown.text and "0.683" in shown.text
    data = np.load(io.BytesIO(view.npz().getvalue()), allow_pickle=False)
    np.testing.assert_allclose(data["model0_posterior_std"], post["std"])


def test_the_posterior_map_is_cached_per_noisy_image_and_can_be_turned_off(view):
    first = {n: r["posterior"] for n, r in view.results.items()}
    assert all("std" in p for p in first.values())
    tap(view, (3, 4))  # a click does not recompute the maps
    assert all(view.results[n]["posterior"] is first[n] for n in first)
    view.seed = 5  # new noise: new maps
    assert all(view.results[n]["posterior"] is not first[n] for n in first)
    view.posterior = False
    assert all(f.posterior is None for f in view.filters.values())
    view.sigma = 0.2
    assert all("posterior" not in r for r in view.results.values())


def test_at_sigma_zero_the_posterior_row_says_why_it_is_empty(tiny_handle):
    v = FiltersView(models=["tiny-test"], image_source=ImageSource(sizes=[32], size=32), sigma=0.0)
    assert "failed" in v.results["tiny-test"]["posterior"]
    assert "σ = 0" in v.filters["tiny-test"].posterior.text
