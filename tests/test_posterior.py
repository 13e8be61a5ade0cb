"""explorer.posterior: Cov[x | y] = σ²∂x̂/∂y, checked where the posterior is known in closed form."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import ModelHandle
from explorer.denoisers.exact import GaussianPriorDenoiser
from explorer.posterior import calibration, jacobian_diagonal, posterior_std, probes


def correlated_prior(h: int = 8, w: int = 8, length: float = 2.0, seed: int = 0):
    """N(μ, Σ) on h×w images with a squared-exponential covariance (neighbouring pixels correlated)."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    p = np.stack([yy.ravel(), xx.ravel()], 1)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    cov = 0.04 * np.exp(-d2 / (2 * length**2)) + 1e-4 * np.eye(h * w)
    mean = np.random.default_rng(seed).uniform(0.3, 0.7, (h, w))
    return mean, cov


def closed_form_std(cov: np.ndarray, sigma: float) -> np.ndarray:
    """√diag(Σ − Σ(Σ + σ²I)⁻¹Σ), the posterior standard deviation of x given y = x + σz."""
    post = cov - cov @ np.linalg.solve(cov + sigma**2 * np.eye(len(cov)), cov)
    return np.sqrt(np.diag(post))


@pytest.fixture(scope="module")
def gaussian():
    mean, cov = correlated_prior()
    handle = ModelHandle(GaussianPriorDenoiser(torch.tensor(mean, dtype=torch.float32), cov), device="cpu", name="gauss")
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(mean.ravel(), cov).reshape(8, 8).astype(np.float32)
    return handle, mean, cov, x


def test_the_probes_partition_the_image_and_carry_the_signs():
    s = torch.where(torch.rand(2, 6, 7) > 0.5, 1.0, -1.0)
    V = probes((2, 6, 7), 3, s)
    assert V.shape == (2 * 9, 2, 6, 7)
    torch.testing.assert_close(V.sum(0), s)
    assert ((V != 0).sum(0) == 1).all()  # every pixel in exactly one probe


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_the_posterior_std_of_the_gaussian_prior_is_the_closed_form(gaussian, sigma):
    handle, mean, cov, x = gaussian
    y = x + sigma * np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    expected = closed_form_std(cov, sigma).reshape(8, 8)
    exact = posterior_std(handle, y, sigma, method="exact")
    np.testing.assert_allclose(exact.std[0].numpy(), expected, rtol=1e-4)
    # probing with a period as large as the image is exact as well (one pixel per colour)
    full = posterior_std(handle, y, sigma, period=8, repeats=1)
    np.testing.assert_allclose(full.std[0].numpy(), expected, rtol=1e-4)
    # a short period leaves zero-mean cross terms: within 5 % (median) with 16 sign draws
    short = posterior_std(handle, y, sigma, period=4, repeats=16)
    rel = np.abs(short.std[0].numpy() - expected) / expected
    assert np.median(rel) < 0.05
    assert short.diagonal.products == 16 * 16
    # its standard error says how far off it is: most entries within 3 standard errors
    d_exact = (expected**2 / sigma**2)
    z = np.abs(short.diagonal.diagonal[0].numpy() - d_exact) / short.diagonal.standard_error[0].numpy()
    assert np.mean(z < 3) > 0.9


def test_a_linear_denoiser_shrinking_by_a_constant_has_diagonal_that_constant():
    class Shrink(torch.nn.Module):
        blind, bias_free, channels, min_size = True, True, 1, 1

        def forward(self, y, sigma=None):
            return 0.3 * y

    handle = ModelHandle(Shrink(), device="cpu", name="shrink")
    y = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    d = jacobian_diagonal(handle, y, period=4, repeats=1)
    torch.testing.assert_close(d.diagonal, torch.full((1, 16, 16), 0.3))


def test_calibration_counts_pixels_within_k_standard_deviations():
    err = np.array([0.1, -0.5, 1.5, 3.0])
    std = np.ones(4)
    assert calibration(err, std) == {1.0: 0.5, 2.0: 0.75}
    # errors drawn from the stated posterior are calibrated
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 1.0, 100_000)
    c = calibration(s * rng.standard_normal(s.shape), s)
    assert abs(c[1.0] - 0.683) < 0.01 and abs(c[2.0] - 0.954) < 0.01


def test_bad_arguments_are_refused():
    class Identity(torch.nn.Module):
        blind, bias_free, channels, min_size = True, True, 1, 1

        def forward(self, y, sigma=None):
            return y

    handle = ModelHandle(Identity(), device="cpu", name="identity")
    y = np.zeros((70, 70), np.float32)
    with pytest.raises(ValueError, match="method='exact' needs"):
        jacobian_diagonal(handle, y, 0.1, method="exact")
    with pytest.raises(ValueError, match="method must be"):
        jacobian_diagonal(handle, y, 0.1, method="hutch")
    with pytest.raises(ValueError, match="period and repeats"):
        jacobian_diagonal(handle, y, 0.1, period=0)


def test_the_reconstruction_std_is_the_diagonal_of_P_A_P(gaussian):
    from explorer import measurements as meas
    from explorer.posterior import map_agreement, null_space_projection, reconstruction_std

    handle, mean, cov, x = gaussian
    sigma = 0.1
    y = x + sigma * np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    A = cov @ np.linalg.inv(cov + sigma**2 * np.eye(64))  # the Gaussian prior's Jacobian (any y)
    for m in (meas.RandomPixels((1, 8, 8), 0.3, seed=1), meas.RandomBasis((1, 8, 8), 0.3, seed=2)):
        M = m.adjoint(torch.eye(m.m, dtype=torch.float32)).reshape(m.m, 64).T.double().numpy()  # N × m
        P = np.eye(64) - M @ M.T
        expected = np.sqrt(np.clip(sigma**2 * np.diag(P @ A @ P), 0, None)).reshape(8, 8)
        exact = reconstruction_std(handle, y, sigma, m, told=sigma, method="exact")
        np.testing.assert_allclose(exact.std[0].numpy(), expected, rtol=1e-4, atol=1e-7)
        probed = reconstruction_std(handle, y, sigma, m, told=sigma, period=8, repeats=1)  # one pixel per colour: exact too
        np.testing.assert_allclose(probed.std[0].numpy(), expected, rtol=1e-4, atol=1e-7)
        v = torch.randn(3, 1, 8, 8)
        Pv = null_space_projection(m)(v)
        torch.testing.assert_close(null_space_projection(m)(Pv), Pv, atol=1e-6, rtol=1e-5)  # a projection
    r, ratio = map_agreement(np.arange(10.0), 2 * np.arange(10.0) + 1)
    assert abs(r - 1) < 1e-12 and abs(ratio - 4.5 / 10) < 1e-12


def test_the_posterior_std_of_the_empirical_denoiser_is_the_spread_of_its_posterior_draws():
    """The MMSE denoiser of n images: p(x_k | y) ∝ exp(−‖y − x_k‖²/2σ²); drawing x from it (Monte Carlo)
    gives each pixel's posterior variance, which σ² diag ∂x̂/∂y must equal (told σ: no σ prior)."""
    from explorer.denoisers.exact import EmpiricalDenoiser

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, 1, 5, 5)).astype(np.float32)
    handle = ModelHandle(EmpiricalDenoiser(torch.tensor(images)), device="cpu", name="empirical")
    sigma = 0.6  # large enough that several images share the posterior
    y = images[0, 0] + sigma * rng.standard_normal((5, 5)).astype(np.float32)
    logw = -((images[:, 0] - y) ** 2).sum((1, 2)).astype(np.float64) / (2 * sigma**2)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    assert w.max() < 0.9  # a genuinely spread posterior
    draws = images[rng.choice(len(images), size=200_000, p=w), 0].astype(np.float64)
    monte_carlo = draws.std(axis=0)
    exact = posterior_std(handle, y, sigma, method="exact").std[0].numpy()
    np.testing.assert_allclose(exact, monte_carlo, rtol=0.02, atol=1e-3)
    weighted = np.sqrt((w[:, None, None] * (images[:, 0] - (w[:, None, None] * images[:, 0]).sum(0)) ** 2).sum(0))
    np.testing.assert_allclose(exact, weighted, rtol=1e-4, atol=1e-6)


def test_check_against_error_on_known_maps():
    from explorer.posterior import check_against_error

    clean = np.zeros((4, 4), np.float32)
    denoised = np.full((4, 4), 0.1, np.float32)
    std = np.where(np.arange(16).reshape(4, 4) < 8, 0.2, 0.06)  # half within 1 std, all within 2 std
    c = check_against_error(std, denoised, clean)
    assert c.calibration == {1.0: 0.5, 2.0: 1.0}
    assert c.rmse == pytest.approx(0.1) and c.predicted_rmse == pytest.approx(np.sqrt((0.04 + 0.0036) / 2))
