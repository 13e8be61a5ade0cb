"""Exact MMSE denoisers: Gaussian prior (dense and stationary) and the empirical (memorising) prior."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import multivariate_normal
from torch.func import jvp

from explorer import ModelHandle
from explorer.checkpoints import load_denoiser, save_model
from explorer.denoisers import (
    ARCHITECTURES,
    EmpiricalDenoiser,
    GaussianPriorDenoiser,
    StationaryGaussianDenoiser,
    build,
    estimate_noise_sigma,
    power_law,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_gaussian_prior(shape=(1, 2, 2), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    d = math.prod(shape)
    g = gen(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    cov = a @ a.T / d + 0.05 * torch.eye(d, dtype=F64)
    mean = torch.rand(shape, generator=g, dtype=F64)
    return mean, cov


def tweedie(denoiser, y: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """y + σ² ∇_y log p_σ(y) by autograd."""
    y = y.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(denoiser.log_prob(y, sigma).sum(), y)
    s = torch.as_tensor(sigma, dtype=y.dtype).reshape(-1, 1, 1, 1)
    return y.detach() + s**2 * grad


# ------------------------------------------------------------------------------------------ dense Gaussian
def test_gaussian_prior_matches_importance_sampled_posterior_mean():
    mean, cov = random_gaussian_prior()
    den = GaussianPriorDenoiser(mean, cov)
    sigma = 0.5
    x = den.sample(200_000, generator=gen(1)).flatten(1)
    y = (mean + torch.tensor([[0.3, -0.2], [0.5, 0.1]], dtype=F64))[None]
    logw = -((x - y.flatten(1)) ** 2).sum(1) / (2 * sigma**2)
    w = torch.softmax(logw, 0)
    mc = w @ x
    stderr = torch.sqrt((w[:, None] ** 2 * (x - mc) ** 2).sum(0))  # self-normalised IS error
    exact = den(y, sigma).flatten()
    assert torch.all((exact - mc).abs() < 5 * stderr + 1e-4), (exact, mc, stderr)


def test_gaussian_prior_sample_has_the_prior_moments():
    mean, cov = random_gaussian_prior(seed=2)
    x = GaussianPriorDenoiser(mean, cov).sample(100_000, generator=gen(3)).flatten(1)
    assert torch.allclose(x.mean(0), mean.flatten(), atol=0.02)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)


def test_gaussian_prior_log_prob_is_the_noisy_marginal_density():
    mean, cov = random_gaussian_prior(seed=4)
    den = GaussianPriorDenoiser(mean, cov)
    y = torch.randn(3, 1, 2, 2, generator=gen(5), dtype=F64)
    sigma = 0.3
    ref = multivariate_normal(mean.flatten().numpy(), (cov + sigma**2 * torch.eye(4, dtype=F64)).numpy()).logpdf(y.flatten(1).numpy())
    assert np.allclose(den.log_prob(y, sigma).numpy(), ref, rtol=1e-10)


def test_gaussian_prior_tweedie_identity_per_image_sigma():
    mean, cov = random_gaussian_prior((1, 3, 3), seed=6)
    den = GaussianPriorDenoiser(mean, cov)
    y = torch.randn(4, 1, 3, 3, generator=gen(7), dtype=F64)
    sigma = torch.tensor([0.05, 0.2, 0.7, 2.0], dtype=F64)
    assert torch.allclose(den(y, sigma), tweedie(den, y, sigma), rtol=1e-5, atol=1e-10)


def test_gaussian_prior_limits_and_blind_mode():
    mean, cov = random_gaussian_prior((1, 4, 4), seed=8)
    den = GaussianPriorDenoiser(mean, cov)
    y = torch.randn(2, 1, 4, 4, generator=gen(9), dtype=F64)
    assert torch.allclose(den(y, 0.0), y, atol=1e-10)  # full-rank Σ: no noise, no change
    assert torch.allclose(den(y, 1e4), mean.expand_as(y), atol=1e-6)  # overwhelming noise: the prior mean
    assert torch.allclose(den(y), den(y, den.noise_variance(y).sqrt()))  # blind: the ML σ̂


def brute_force_mle(c2: np.ndarray, lam: np.ndarray) -> float:
    """argmax_{s ≥ 0} −½ Σ [c²/(λ + s) + log(λ + s)] by a dense log grid and a bounded refinement."""
    def loglik(s: float) -> float:
        return -0.5 * float(np.sum(c2 / (lam + s) + np.log(lam + s)))

    grid = np.concatenate([[0.0], np.logspace(-12, 2, 2801)])
    j = int(np.argmax([loglik(s) for s in grid]))
    if j == 0:
        return 0.0
    lo, hi = math.log(grid[max(j - 1, 1)]), math.log(grid[min(j + 1, grid.size - 1)])
    return math.exp(minimize_scalar(lambda u: -loglik(math.exp(u)), bounds=(lo, hi), method="bounded",
                                    options=dict(xatol=1e-12)).x)


def correlated_prior(seed: int = 25) -> GaussianPriorDenoiser:
    """8×8 images, eigenvalues 10⁻¹ … 10⁻³ (log-spaced) on random orthonormal eigenvectors."""
    q, _ = torch.linalg.qr(torch.randn(64, 64, generator=gen(seed), dtype=F64))
    return GaussianPriorDenoiser(torch.full((1, 8, 8), 0.5, dtype=F64), q @ torch.diag(torch.logspace(-1, -3, 64, dtype=F64)) @ q.T)


def test_gaussian_prior_blind_sigma_is_the_maximum_likelihood_one():
    den = correlated_prior()
    lam = den.eigenvalues.numpy()
    x = den.sample(12, generator=gen(26))
    sigma = torch.tensor([1.0, 0.1, 0.03, 0.003] * 3, dtype=F64).view(-1, 1, 1, 1)
    y = x + sigma * torch.randn(x.shape, generator=gen(27), dtype=F64)
    s2 = den.noise_variance(y)
    c2 = ((y - den.mean).flatten(1) @ den.eigenvectors).pow(2).numpy()
    for b in range(12):
        best = brute_force_mle(c2[b], lam)
        assert float(s2[b]) == pytest.approx(best, rel=1e-6, abs=1e-15)
        if best > 0:  # a maximum of the denoiser's own log p_σ(y): σ̂ ± 1 % does no better
            trial = (s2[b] * torch.tensor([0.99, 1.0, 1.01], dtype=F64)).sqrt()
            lp = den.log_prob(y[b:b + 1].expand(3, -1, -1, -1), trial)
            assert lp[1] >= lp.max() - 1e-9
    # at y = μ nothing is noise
    assert den.noise_variance(den.mean[None]).item() == 0.0


def test_gaussian_prior_blind_sigma_is_consistent_where_haar_mad_is_not():
    # median σ̂/σ over 2000 images (MC error < 1 %) down to σ² ≈ λ_min; the Haar-MAD rule counts the
    # correlated prior's own fine-scale variance as noise (σ̂/σ = 1.7 at σ = 0.1, 4.8 at σ = 0.03)
    den = correlated_prior()
    x = den.sample(2000, generator=gen(28))
    for sigma in (1.0, 0.1, 0.03):
        y = x + sigma * torch.randn(x.shape, generator=gen(29), dtype=F64)
        assert den.noise_variance(y).sqrt().median().item() / sigma == pytest.approx(1.0, abs=0.03)
        if sigma <= 0.1:
            assert estimate_noise_sigma(y).mean().item() / sigma > 1.5


def test_gaussian_prior_rejects_bad_covariances_and_shapes():
    mean, cov = random_gaussian_prior()
    with pytest.raises(ValueError, match="semi-definite"):
        GaussianPriorDenoiser(mean, cov - 10 * torch.eye(4, dtype=F64))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianPriorDenoiser(mean, cov + torch.triu(torch.ones(4, 4, dtype=F64), 1))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        GaussianPriorDenoiser(mean, torch.eye(5, dtype=F64))
    den = GaussianPriorDenoiser(mean, cov)
    with pytest.raises(ValueError, match="shape"):
        den(torch.zeros(1, 1, 3, 3, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        den.log_prob(torch.zeros(1, 1, 2, 2, dtype=F64), None)


# ------------------------------------------------------------------------------------------ stationary
def circulant_covariance(spectrum: torch.Tensor) -> torch.Tensor:
    """Dense Σ[i, j] = c(i − j mod N) with autocovariance c = DFT⁻¹(P), for (H, W) images."""
    h, w = spectrum.shape
    c = torch.fft.ifft2(spectrum).real
    iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    iy, ix = iy.flatten(), ix.flatten()
    return c[(iy[:, None] - iy[None, :]) % h, (ix[:, None] - ix[None, :]) % w]


@pytest.mark.parametrize("as_array", [False, True])
def test_stationary_equals_dense_with_circulant_covariance(as_array):
    fn = power_law(2e-3, exponent=1.5)
    fy, fx = torch.fft.fftfreq(8, dtype=F64)[:, None], torch.fft.fftfreq(8, dtype=F64)[None, :]
    p = fn(fy, fx)
    stationary = StationaryGaussianDenoiser(p if as_array else fn, mean=0.4)
    dense = GaussianPriorDenoiser(torch.full((8, 8), 0.4, dtype=F64), circulant_covariance(p))
    y = 0.4 + 0.3 * torch.randn(3, 1, 8, 8, generator=gen(10), dtype=F64)
    sigma = torch.tensor([0.02, 0.1, 0.5], dtype=F64)
    assert torch.allclose(stationary(y, sigma), dense(y, sigma), atol=1e-10)
    assert torch.allclose(stationary.log_prob(y, sigma), dense.log_prob(y, sigma), rtol=1e-10)
    # blind: the same maximum-likelihood σ̂ in the Fourier basis as in the eigenbasis
    assert torch.allclose(stationary.noise_variance(y), dense.noise_variance(y), rtol=1e-8)
    assert torch.allclose(stationary(y), dense(y), atol=1e-8)


def test_stationary_tweedie_sampling_and_any_size():
    den = StationaryGaussianDenoiser(power_law(1e-3), mean=0.5)
    y = den.sample(2, (2, 12, 20), generator=gen(11), dtype=F64)
    assert y.shape == (2, 2, 12, 20)
    y = y + 0.1 * torch.randn(y.shape, generator=gen(12), dtype=F64)
    assert torch.allclose(den(y, 0.1), tweedie(den, y, 0.1), rtol=1e-5, atol=1e-10)
    # per-pixel variance of samples = mean of P over the frequency grid
    p = den.power(32, 32, y)
    x = den.sample(400, (32, 32), generator=gen(13), dtype=F64)
    assert abs(float(x.var()) / float(p.mean()) - 1) < 0.1


def test_stationary_rejects_odd_spectrum_and_wrong_size():
    p = torch.rand(6, 6, generator=gen(14), dtype=F64)
    with pytest.raises(ValueError, match="even"):
        StationaryGaussianDenoiser(p)
    den = StationaryGaussianDenoiser(torch.ones(6, 6, dtype=F64))
    with pytest.raises(ValueError, match="6×6|\\(6, 6\\)"):
        den(torch.zeros(1, 1, 8, 8, dtype=F64), 0.1)


# ------------------------------------------------------------------------------------------ empirical
def training_set(n=5, shape=(1, 4, 4), seed=15) -> torch.Tensor:
    return torch.rand(n, *shape, generator=gen(seed), dtype=F64)


def brute_force_posterior_mean(images: np.ndarray, y: np.ndarray, sigmas: list[float]) -> np.ndarray:
    """Σ_{i,k} p(i, k | y) x_i by enumerating every (image, σ) pair with Python floats (equal σ prior)."""
    logs, pairs = [], []
    dim = y.size
    for k, s in enumerate(sigmas):
        for i, x in enumerate(images):
            d2 = float(((y - x) ** 2).sum())
            logs.append(-d2 / (2 * s * s) - dim * math.log(s))
            pairs.append(i)
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    out = np.zeros_like(y)
    for w, i in zip(weights, pairs):
        out += w / total * images[i]
    return out


def test_empirical_matches_enumeration_known_and_blind_sigma():
    images = training_set()
    den = EmpiricalDenoiser(images, sigma_min=0.01, sigma_max=2.0, grid_size=7)
    y = torch.rand(3, 1, 4, 4, generator=gen(16), dtype=F64)
    for b in range(3):
        yb = y[b].numpy()
        known = brute_force_posterior_mean(images.numpy(), yb, [0.3])
        assert np.allclose(den(y[b : b + 1], 0.3)[0].numpy(), known, atol=1e-12)
        blind = brute_force_posterior_mean(images.numpy(), yb, den.sigma_grid().tolist())
        assert np.allclose(den(y[b : b + 1])[0].numpy(), blind, atol=1e-12)


def test_empirical_limits_nearest_image_and_mean_image():
    images = training_set(n=6)
    den = EmpiricalDenoiser(images)
    y = images[[2, 4]] + 0.02 * torch.randn(2, 1, 4, 4, generator=gen(17), dtype=F64)
    assert torch.allclose(den(y, 1e-3), images[[2, 4]], atol=1e-12)
    assert torch.allclose(den(y, 1e3), images.mean(0).expand_as(y), atol=1e-5)


def test_empirical_tweedie_identity_and_log_prob():
    images = training_set(n=7, shape=(2, 3, 3))
    den = EmpiricalDenoiser(images)
    y = images[:3] + 0.3 * torch.randn(3, 2, 3, 3, generator=gen(18), dtype=F64)
    sigma = torch.tensor([0.1, 0.3, 1.0], dtype=F64)
    assert torch.allclose(den(y, sigma), tweedie(den, y, sigma), rtol=1e-5, atol=1e-10)
    # log p_σ(y) = log (1/n) Σ N(y; x_i, σ²I), each Gaussian from scipy
    s = 0.3
    dens = [multivariate_normal(x.flatten().numpy(), s**2 * np.eye(18)).logpdf(y[0].flatten().numpy()) for x in images]
    ref = np.logaddexp.reduce(dens) - math.log(len(images))
    assert math.isclose(float(den.log_prob(y[:1], s)), ref, rel_tol=1e-10)


def test_empirical_sigma_posterior_concentrates_near_true_noise():
    images = torch.rand(20, 1, 16, 16, generator=gen(19), dtype=F64)
    den = EmpiricalDenoiser(images, sigma_min=1e-3, sigma_max=1.0, grid_size=64)
    for sigma in (0.03, 0.3):
        y = images[5:6] + sigma * torch.randn(1, 1, 16, 16, generator=gen(20), dtype=F64)
        grid, post = den.sigma_posterior(y)
        assert torch.isclose(post.sum(), torch.tensor(1.0, dtype=F64))
        log_mean = float((post[0] * grid.log()).sum())
        assert abs(log_mean - math.log(sigma)) < 0.15
        assert torch.allclose(den(y), images[5:6], atol=0.05)


# ------------------------------------------------------------------------------------------ protocol
def exact_denoisers():
    mean, cov = random_gaussian_prior((1, 4, 4), seed=21)
    return {
        "gaussian-prior": GaussianPriorDenoiser(mean, cov),
        "stationary": StationaryGaussianDenoiser(power_law(1e-3), mean=0.5),
        "empirical": EmpiricalDenoiser(training_set(n=4)),
    }


@pytest.mark.parametrize("name", ["gaussian-prior", "stationary", "empirical"])
@pytest.mark.parametrize("sigma", [None, 0.2])
def test_jvp_matches_finite_difference(name, sigma):
    den = exact_denoisers()[name]
    y = 0.5 + 0.2 * torch.randn(2, 1, 4, 4, generator=gen(22), dtype=F64)
    t = torch.randn(y.shape, generator=gen(23), dtype=F64)
    _, jt = jvp(lambda z: den(z, sigma), (y,), (t,))
    eps = 1e-6
    fd = (den(y + eps * t, sigma) - den(y - eps * t, sigma)) / (2 * eps)
    assert (jt - fd).norm() <= 1e-3 * fd.norm()


@pytest.mark.parametrize("name", ["gaussian-prior", "empirical"])
def test_card_round_trip_and_handle(name, tmp_path):
    den = exact_denoisers()[name]
    assert ARCHITECTURES[name] is type(den)
    placeholder = build(name, den.config)
    model, card = load_denoiser(save_model(den, name, tmp_path, f"exact-{name}"))
    y = torch.rand(2, 1, 4, 4, generator=gen(24), dtype=F64)
    assert type(placeholder) is type(den)
    assert torch.allclose(model.double()(y, 0.1), den(y, 0.1), atol=1e-6)
    h = ModelHandle(den, device="cpu")
    out = h.denoise(np.random.default_rng(0).random((4, 4)).astype(np.float32), 0.1)
    assert out.shape == (4, 4) and out.dtype == np.float32 and card["bias_free"] is False


def test_empirical_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sigma_min"):
        EmpiricalDenoiser(training_set(), sigma_min=1.0, sigma_max=0.1)
    with pytest.raises(ValueError, match="images"):
        EmpiricalDenoiser(torch.zeros(3))
    den = EmpiricalDenoiser(training_set())
    with pytest.raises(ValueError, match="sigma > 0"):
        den(torch.zeros(1, 1, 4, 4, dtype=F64), 0.0)
