"""The multiscale decomposition x = fⁿ(x) + Σ r_k, r_k = f^k(x) − f^{k+1}(x) (explorer.decomposition): exact
for any denoiser, the bands G^k(I − G)x of a linear filter, and the σ each application is told."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.data import builtin_image
from explorer.decomposition import from_iterates, iterates, multiscale_decomposition, sigma_told
from explorer.denoisers import BM3D, GaussianSmoothing, NonLocalMeans, TotalVariation
from explorer.handle import ModelHandle

CAMERA = builtin_image("camera", 32).astype(np.float32)


def handle(model: torch.nn.Module) -> ModelHandle:
    return ModelHandle(model, device="cpu", name=type(model).__name__)


class Recorder:
    """A denoiser that halves its input and records the σ it is told (blind or not)."""

    def __init__(self, blind: bool):
        self.blind, self.name, self.told = blind, "recorder", []

    def denoise(self, y, sigma=None):
        self.told.append(sigma)
        return y * np.float32(0.5)


def bm3d_handle() -> ModelHandle:
    pytest.importorskip("bm3d")
    return handle(BM3D())


#: name → (denoiser (the tiny network: None), σ told, fixed strength, n)
CASES = {"tiny network": (None, None, False, 5),
         "Gaussian smoothing (blind)": (GaussianSmoothing, None, False, 4),
         "non-local means (blind)": (NonLocalMeans, None, False, 3),
         "total variation (fixed strength)": (TotalVariation, 0.1, True, 4),
         "BM3D (non-blind)": (BM3D, 0.1, False, 2)}


@pytest.mark.parametrize("kind", list(CASES))
def test_the_layers_and_the_base_sum_back_to_x_exactly(kind, tiny_bf_cnn):
    cls, sigma, fixed, n = CASES[kind]
    h = handle(tiny_bf_cnn) if cls is None else bm3d_handle() if cls is BM3D else handle(cls())
    x = CAMERA + 0.05 * np.random.default_rng(0).standard_normal(CAMERA.shape).astype(np.float32)
    d = multiscale_decomposition(h, x, n, sigma, fixed_strength=fixed)
    assert d.n == n and d.layers.shape == (n, 32, 32) and d.layers.dtype == np.float64
    assert d.error < 1e-13 and d.relative_error < 1e-14  # float64 rounding, far below float32's 6e-8
    np.testing.assert_array_equal(d.image, x.astype(np.float64))
    # the base is fⁿ(x), the denoiser applied n times to its own output
    u = x
    for _ in range(n):
        u = h.denoise(u, sigma if (fixed or not h.blind) else None)
    # BM3D (compiled, multithreaded aggregation) differs from run to run: 4e-4 after two applications was seen
    np.testing.assert_allclose(d.base, u, atol=2e-3 if cls is BM3D else 2e-6)
    assert d.sigma == (sigma if (fixed or not h.blind) else None)
    np.testing.assert_allclose(d.energies, [np.mean(r ** 2) for r in d.layers], rtol=1e-12)
    assert math.isclose(d.base_energy, float(np.mean(d.base ** 2)), rel_tol=1e-12)
    assert d.energies[0] > 0  # the first application removes something (the noise)


def test_a_batch_of_tensors_decomposes_each_image(tiny_bf_cnn):
    h = handle(tiny_bf_cnn)
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    d = multiscale_decomposition(h, x, 3)
    assert d.layers.shape == (3, 2, 1, 24, 24) and d.relative_error < 1e-14
    alone = multiscale_decomposition(h, x[1:], 3)
    np.testing.assert_allclose(d.layers[:, 1:], alone.layers, atol=1e-6)


def dense(h: ModelHandle, side: int, sigma: float | None) -> np.ndarray:
    """The matrix of a linear denoiser on side × side images, column j = f(e_j), in float64."""
    basis = np.eye(side * side, dtype=np.float32).reshape(-1, side, side)
    return np.stack([h.denoise(e, sigma).astype(np.float64).ravel() for e in basis], axis=1)


@pytest.mark.parametrize("model, sigma, fixed", [(GaussianSmoothing(width=1.2), None, False),
                                                 (GaussianSmoothing(), 0.1, True)],
                         ids=["fixed width", "σ-rule width at a told σ"])
def test_a_linear_filter_gives_the_bands_g_to_the_k_of_i_minus_g(model, sigma, fixed):
    h, side, n = handle(model), 12, 5
    x = builtin_image("camera", side).astype(np.float32)
    d = multiscale_decomposition(h, x, n, sigma, fixed_strength=fixed)
    band = x - h.denoise(x, sigma)  # (I − G)x, then G applied k times
    for k in range(n):
        np.testing.assert_allclose(d.layers[k], band, atol=2e-6)
        band = h.denoise(band, sigma)
    g = dense(h, side, sigma)  # the same bands from the filter's matrix, G^k (I − G) x
    for k in range(n):
        expected = np.linalg.matrix_power(g, k) @ (np.eye(side * side) - g) @ x.ravel().astype(np.float64)
        np.testing.assert_allclose(d.layers[k].ravel(), expected, atol=2e-6)
    assert np.all(np.diff(d.energies) < 0)  # a gain in [0, 1]: each band has less energy than the one before


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3"])
def test_a_count_below_one_or_not_an_integer_is_refused(n):
    with pytest.raises(ValueError, match="n .*integer ≥ 1"):
        multiscale_decomposition(Recorder(blind=True), CAMERA, n)
    with pytest.raises(ValueError, match="n .*integer ≥ 1"):
        iterates(Recorder(blind=True), CAMERA, n)  # checked on the call, before any application


def test_a_non_blind_denoiser_needs_sigma_and_is_told_it_at_every_application():
    fake = Recorder(blind=False)
    with pytest.raises(ValueError, match="sigma is required"):
        iterates(fake, CAMERA, 3)
    assert fake.told == []  # refused before any application
    for bad in (-0.1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="sigma must be a finite number ≥ 0"):
            multiscale_decomposition(fake, CAMERA, 2, bad)
    d = multiscale_decomposition(fake, CAMERA, 3, np.float32(0.2))
    assert fake.told == [pytest.approx(0.2)] * 3 and d.sigma == pytest.approx(0.2)
    np.testing.assert_allclose(d.base, CAMERA / 8, rtol=1e-7)
    np.testing.assert_allclose(d.energies, [np.mean((CAMERA / 2 ** (k + 1)) ** 2) for k in range(3)], rtol=1e-6)


def test_bm3d_without_sigma_says_it_is_not_blind():
    with pytest.raises(ValueError, match="sigma is required: BM3D is not blind"):
        multiscale_decomposition(bm3d_handle(), CAMERA, 2)


def test_a_blind_denoiser_is_told_nothing_unless_the_strength_is_fixed():
    blind = Recorder(blind=True)
    assert multiscale_decomposition(blind, CAMERA, 3, sigma=0.3).sigma is None
    assert blind.told == [None] * 3
    assert sigma_told(blind) is None and sigma_told(blind, 0.3, fixed_strength=True) == 0.3
    with pytest.raises(ValueError, match="sigma is required: fixed_strength"):
        sigma_told(blind, None, fixed_strength=True)
    h = handle(GaussianSmoothing())  # a blind classical denoiser re-estimates σ̂ of each iterate by default
    x = builtin_image("camera", 32).astype(np.float32)
    own, fixed = multiscale_decomposition(h, x, 3), multiscale_decomposition(h, x, 3, 0.1, fixed_strength=True)
    assert fixed.energies[2] > 10 * own.energies[2]  # a fixed width keeps smoothing; σ̂ of a smooth image is tiny


def test_from_iterates_checks_what_it_is_given():
    with pytest.raises(ValueError, match="at least one iterate"):
        from_iterates(CAMERA, [])
    with pytest.raises(ValueError, match="shape"):
        from_iterates(CAMERA, [CAMERA[:8]])
    zero = from_iterates(np.zeros((4, 4)), [np.zeros((4, 4))])
    assert zero.error == 0 and zero.relative_error == 0 and zero.base_energy == 0
