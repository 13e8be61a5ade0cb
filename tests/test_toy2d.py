"""The 2-D curve prior, its exact MMSE denoisers, and Algorithm 1 running on them (explorer.toy2d)."""
from __future__ import annotations

import math

import pytest
import torch

from explorer import ModelHandle
from explorer.toy2d import CurveMMSE, CurvePrior, ascent_trajectories, plane_grid

PRIOR = CurvePrior(r0=1.0, a=0.3, lobes=5, n_points=2048)
BLIND = CurveMMSE(PRIOR)
SIGMA_CONDITIONED = CurveMMSE(PRIOR, blind=False)
SPACING = (PRIOR.points - PRIOR.points.roll(-1, 0)).norm(dim=1).max().item()


def ring(radius: float, n: int = 8) -> torch.Tensor:
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n) + 0.13
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def off_curve(delta: float, n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(feet c(θ) on the curve, points c(θ) ± δ·normal) — δ below the smallest radius of curvature (≈ 0.07)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    feet = PRIOR.curve(theta)
    r = PRIOR.radius(theta)
    dr = -PRIOR.r0 * PRIOR.a * PRIOR.lobes * torch.sin(PRIOR.lobes * theta)
    tangent = torch.stack([dr * torch.cos(theta) - r * torch.sin(theta), dr * torch.sin(theta) + r * torch.cos(theta)], 1)
    normal = torch.stack([tangent[:, 1], -tangent[:, 0]], 1) / tangent.norm(dim=1, keepdim=True)
    side = torch.where(torch.rand(n, 1, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    return feet, feet + delta * side * normal


# --------------------------------------------------------------------------- the prior and its density
def test_prior_points_and_samples_lie_on_the_curve():
    theta = torch.atan2(PRIOR.points[:, 1], PRIOR.points[:, 0])
    assert torch.allclose(PRIOR.points.norm(dim=1), PRIOR.radius(theta), atol=1e-12)
    samples = PRIOR.sample(200, torch.Generator().manual_seed(1))
    assert PRIOR.distance(samples).max().item() < 1e-12
    assert PRIOR.log_weights.exp().sum().item() == pytest.approx(1.0)


def test_distance_and_nearest_point():
    feet, y = off_curve(0.03)
    assert torch.allclose(PRIOR.distance(y), torch.full((40,), 0.03, dtype=torch.float64), atol=1e-4)
    assert (PRIOR.nearest(y) - feet).norm(dim=1).max().item() < 1e-3


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_blurred_density_integrates_to_one(sigma):
    # a grid step of σ/1.5 integrates a Gaussian mixture to ~exp(−2π²·1.5²) relative error (Poisson summation)
    prior = CurvePrior(n_points=512)
    resolution = int(2 * 2.6 / (sigma / 1.5)) + 1
    xs, _, grid = plane_grid(extent=2.6, resolution=resolution)
    p = prior.log_density(grid, sigma).exp()
    assert p.shape == (resolution, resolution)
    assert (p.sum() * (xs[1] - xs[0]) ** 2).item() == pytest.approx(1.0, abs=1e-6)


def test_circle_density_at_the_centre_is_known():
    circle = CurvePrior(r0=0.8, a=0.0, lobes=3, n_points=256)
    sigma = 0.5
    expected = -(0.8**2) / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
    assert circle.log_density(torch.zeros(2, dtype=torch.float64), sigma).item() == pytest.approx(expected, abs=1e-10)


def test_bad_curves_are_rejected():
    for kw, match in [(dict(r0=0.0), "r0"), (dict(a=1.0), "amplitude"), (dict(lobes=-1), "lobes"), (dict(n_points=4), "n_points")]:
        with pytest.raises(ValueError, match=match):
            CurvePrior(**kw)
    with pytest.raises(ValueError, match="sigma"):
        PRIOR.log_density(torch.zeros(1, 2), 0.0)


# --------------------------------------------------------------------------- the denoisers
def test_tweedie_for_the_sigma_conditioned_denoiser():
    y = torch.randn(30, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_(True)
    for sigma in (0.05, 0.3):
        (grad,) = torch.autograd.grad(PRIOR.log_density(y, sigma).sum(), y)
        x_hat = SIGMA_CONDITIONED(y.detach(), sigma)
        assert torch.allclose(x_hat, y.detach() + sigma**2 * grad, atol=1e-10)


def test_tiny_sigma_returns_the_nearest_curve_point():
    feet, y = off_curve(0.02)
    x_hat = SIGMA_CONDITIONED(y, 1e-3)
    assert (x_hat - feet).norm(dim=1).max().item() < 0.6 * SPACING  # the nearest of the n curve points


def test_blind_denoiser_approaches_the_nearest_point_near_the_curve():
    errors = []
    for delta in (0.04, 0.02, 0.01):
        feet, y = off_curve(delta, seed=3)
        err = (BLIND(y) - feet).norm(dim=1).max().item()
        assert err < 2 * delta  # an error of order δ: in 2-D the noise level itself is uncertain
        errors.append(err)
    assert errors[0] > errors[1] > errors[2]


def test_shape_conventions():
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = BLIND(y)
    assert out.shape == (5, 2)
    assert torch.equal(BLIND(y.reshape(5, 1, 1, 2)), out.reshape(5, 1, 1, 2))
    handle = ModelHandle(BLIND, "cpu", torch.float64)
    assert torch.allclose(handle.denoise(y.reshape(5, 1, 1, 2)).reshape(5, 2), out)
    with pytest.raises(ValueError, match="points"):
        BLIND(torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma"):
        SIGMA_CONDITIONED(y)


# --------------------------------------------------------------------------- Algorithm 1 in the plane
def test_deterministic_trajectories_converge_onto_the_curve():
    start = torch.cat([ring(1.8), ring(1.0)])
    a = ascent_trajectories(BLIND, start, h0=0.05, beta=1.0, seed=0)
    assert set(a.status) == {"converged"}
    T = a.sigmas.shape[0]
    assert a.paths.shape == (T + 1, 16, 2) and torch.equal(a.paths[0], start)
    assert PRIOR.distance(a.paths[-1]).max().item() < 0.02
    assert PRIOR.distance(a.denoised).max().item() < 0.02
    # every chain moved towards the curve, and β = 1 does not depend on the seed
    assert (PRIOR.distance(a.paths[-1]) < PRIOR.distance(start)).all()
    b = ascent_trajectories(BLIND, start, h0=0.05, beta=1.0, seed=5)
    assert torch.equal(a.paths, b.paths)


def test_stochastic_trajectories_also_reach_the_curve():
    t = ascent_trajectories(BLIND, ring(1.8), h0=0.05, beta=0.5, seed=1)
    assert set(t.status) == {"converged"}
    assert PRIOR.distance(t.paths[-1]).max().item() < 0.03
    # frozen after stopping
    for b, k in enumerate(t.steps.tolist()):
        assert (t.paths[k:, b] == t.paths[-1, b]).all()


def test_random_starts_and_the_sigma_conditioned_denoiser():
    t = ascent_trajectories(SIGMA_CONDITIONED, 64, h0=0.1, beta=1.0, sigma0=1.0, seed=3, max_steps=3)
    assert t.paths.shape == (4, 64, 2) and set(t.status) <= {"max_steps", "converged"}
    assert t.paths[0].mean().item() == pytest.approx(0.0, abs=0.4)  # y₀ ~ N(0, σ₀²I)
    assert t.paths[0].std().item() == pytest.approx(1.0, abs=0.25)
    assert (PRIOR.distance(t.paths[-1]).mean() < PRIOR.distance(t.paths[0]).mean()).item()


# --------------------------------------------------------------------------- pooled chains (issue #15 item 8)
def test_single_chains_stop_on_a_noisy_two_point_estimate():
    """The reason for pooling: one 2-D chain's σ_t = ‖f‖/√2 is so noisy that chains 'converge' in a step."""
    t = ascent_trajectories(BLIND, 8, h0=0.05, beta=0.5, seed=0)
    assert int(t.steps.min()) <= 2 and int(t.steps.max()) > 5 * int(t.steps.min())


def test_pooled_chains_take_more_steps_for_smaller_beta():
    steps = {}
    for beta in (0.1, 0.5, 1.0):
        runs = [ascent_trajectories(SIGMA_CONDITIONED, 8, h0=0.05, beta=beta, seed=s, pooled=True) for s in range(3)]
        for t in runs:
            assert set(t.status) == {"converged"} and len(set(t.steps.tolist())) == 1  # they stop together
            assert int(t.steps[0]) >= 10  # no one-step "convergence"
            assert PRIOR.distance(t.paths[-1]).max().item() < 0.03  # every chain on the curve
            assert torch.equal(t.sigmas[:, 0], t.sigmas[:, -1])  # one shared σ_t
        steps[beta] = sum(int(t.steps[0]) for t in runs)
    assert steps[0.1] > steps[0.5] >= steps[1.0]


def test_pooled_sigma_falls_like_the_design():
    """σ_t of pooled chains falls steadily: never more than 25 % up from one step to the next."""
    t = ascent_trajectories(SIGMA_CONDITIONED, 32, h0=0.05, beta=0.5, seed=1, pooled=True)
    s = t.sigmas[:, 0]
    assert (s[1:] <= 1.25 * s[:-1]).all() and s[-1] <= 0.01 < s[-2]
