"""Algorithms 1 and 2 (explorer.sampling) against denoisers whose answers are known exactly."""
from __future__ import annotations

import math
import threading

import pytest
import scipy.stats
import torch

from explorer import ModelHandle, Sampler, sample, solve_inverse
from explorer.denoisers.base import Denoiser
from explorer.denoisers.exact import EmpiricalDenoiser
from explorer.measurements import Inpainting, RandomBasis, SuperResolution
from explorer.sampling import (injected_noise_scale, predicted_sigmas, predicted_steps, step_size,
                               tracked_noise_level)


class IsotropicGaussian(Denoiser):
    """Blind MMSE denoiser of the prior N(μ, cI): x̂ = μ + c/(c + σ̂²)(y − μ), σ̂² = max(‖y − μ‖²/N − c, 0).

    With c = 0 (a point mass at μ) x̂ = μ, so the residual is exactly the noise y − μ.
    """

    blind = True

    def __init__(self, mu: float, c: float):
        super().__init__()
        self.mu, self.c = mu, c

    def forward(self, y, sigma=None):
        dy = y - self.mu
        s2 = (dy.flatten(1).pow(2).mean(1) - self.c).clamp(min=0).view(-1, 1, 1, 1)
        return self.mu + self.c / (self.c + s2).clamp(min=1e-300) * dy


class Recording(Denoiser):
    """Wraps a denoiser and records the batch size and σ of every call."""

    def __init__(self, inner: Denoiser, blind: bool = True):
        super().__init__()
        self.inner, self.blind, self.calls = inner, blind, []

    def forward(self, y, sigma=None):
        self.calls.append((y.shape[0], None if sigma is None else sigma.detach().clone()))
        return self.inner(y)


class Scaling(Denoiser):
    """x̂ = k·y: for k > 1 the 'noise' grows every step (a diverging denoiser)."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, y, sigma=None):
        return self.k * y


class NaNAfter(Denoiser):
    """A point-mass denoiser that returns NaN from its ``n``-th call on."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.count = n, 0

    def forward(self, y, sigma=None):
        self.count += 1
        return torch.full_like(y, float("nan") if self.count >= self.n else 0.5)


def handle(model: Denoiser) -> ModelHandle:
    return ModelHandle(model, device="cpu", dtype=torch.float64)


def point_noise(r, t: int, beta: float, h0: float) -> torch.Tensor:
    """The injected z_t of a point-mass-prior run, recovered from y_t = y_{t−1} + h d + γz with snapshots every step."""
    (_, y0, x0), (_, y1, _) = r.snapshots[t - 1], r.snapshots[t]
    h = step_size(t, h0)
    gamma = injected_noise_scale(r.sigmas[t - 1], h, beta).view(-1, 1, 1, 1)
    return (y1 - y0 - h * (x0 - y0)) / gamma


# --------------------------------------------------------------------------- schedule functions
def test_step_size_and_prediction_formulas():
    assert step_size(1, 0.01) == pytest.approx(0.01)
    assert step_size(10**6, 0.01) == pytest.approx(1.0, abs=1e-3)
    p = predicted_sigmas(2.0, 0.1, 0.5, 3)
    hs = [step_size(t, 0.1) for t in (1, 2, 3)]
    expected = [2.0, 2.0 * (1 - 0.05), 2.0 * (1 - 0.05) * (1 - 0.5 * hs[1]), 2.0 * (1 - 0.05) * (1 - 0.5 * hs[1]) * (1 - 0.5 * hs[2])]
    assert p.tolist() == pytest.approx(expected)
    assert predicted_sigmas(1.0, 0.1, 0.5, 2, fixed_h=0.2).tolist() == pytest.approx([1.0, 0.9, 0.81])
    # γ makes the total noise (1 − βh)σ: (1 − h)²σ² + γ² = (1 − βh)²σ²
    s, h, b = torch.tensor([0.7]), 0.3, 0.4
    assert ((1 - h) ** 2 * s**2 + injected_noise_scale(s, h, b) ** 2).item() == pytest.approx(((1 - b * h) * 0.7) ** 2)
    assert injected_noise_scale(s, h, 1.0).item() == 0.0


@pytest.mark.parametrize("sigma0, h0, beta, sigma_L", [(1.0, 0.01, 0.5, 0.01), (1.0, 0.05, 0.8, 0.05),
                                                        (2.0, 0.001, 0.05, 0.002), (0.7, 0.5, 1.0, 0.1)])
def test_predicted_steps_is_the_first_step_of_the_recursion_below_sigma_L(sigma0, h0, beta, sigma_L):
    # direct simulation of σ_{t+1} = (1 − βh_{t+1})σ_t from σ₀, counting steps until σ ≤ σ_L
    sig, steps = sigma0, 0
    while sig > sigma_L:
        steps += 1
        sig = (1 - beta * h0 * steps / (1 + h0 * (steps - 1))) * sig
    assert predicted_steps(sigma0, h0, beta, sigma_L) == steps
    curve = predicted_sigmas(sigma0, h0, beta, steps)
    assert curve[steps] <= sigma_L < curve[steps - 1]  # the same schedule as predicted_sigmas


def test_predicted_steps_edge_cases():
    assert predicted_steps(0.05, 0.01, 0.5, 0.1) == 0  # σ₀ ≤ σ_L: nothing to do
    assert predicted_steps(1.0, 0.001, 0.01, 0.002, cap=50) == 50  # capped
    # a fixed step: σ₀(1 − βh)^T ≤ σ_L
    assert predicted_steps(1.0, 0.01, 0.5, 0.1, fixed_h=0.2) == math.ceil(math.log(0.1) / math.log(0.9))


# --------------------------------------------------------------------------- (a) prior moments
def test_samples_of_a_gaussian_prior_have_its_mean_and_variance():
    mu, c = 0.5, 0.04
    r = sample(handle(IsotropicGaussian(mu, c)), (24, 1, 16, 16), beta=0.5, h0=0.05, sigma_L=1e-3, seed=1)
    assert set(r.status) == {"converged"}
    x = r.image
    n = x.numel()
    assert abs(x.mean().item() - mu) < 4 * math.sqrt(c / n)
    # stopping at σ_L leaves x̂ = shrinkage with variance ≈ c(1 − σ_L/√c); MC error ~ √(2/n)
    assert x.var().item() == pytest.approx(c, rel=0.05)
    # the pixels are Gaussian
    assert scipy.stats.kstest(((x - mu) / math.sqrt(c)).flatten().numpy(), "norm").pvalue > 1e-3


def test_memorising_denoiser_samples_are_training_images():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
    model = EmpiricalDenoiser(images, sigma_min=1e-3, sigma_max=2.0)
    r = sample(handle(model), (6, 1, 4, 4), beta=0.5, h0=0.05, sigma_L=0.005, seed=0)
    assert set(r.status) == {"converged"}
    nearest = torch.cdist(r.image.flatten(1), images.flatten(1)).min(dim=1).values
    assert nearest.max().item() < 0.02


# --------------------------------------------------------------------------- (b) β = 1
def test_beta_one_is_deterministic_given_the_start():
    model = handle(IsotropicGaussian(0.5, 0.01))
    init = 0.5 + torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a = Sampler(model, (3, 1, 8, 8), beta=1.0, h0=0.05, seed=1, init=init).run()
    b = Sampler(model, (3, 1, 8, 8), beta=1.0, h0=0.05, seed=2, init=init).run()
    assert torch.equal(a.image, b.image) and a.steps.tolist() == b.steps.tolist()
    assert (a.gammas == 0).all()
    c = Sampler(model, (3, 1, 8, 8), beta=0.5, h0=0.05, seed=1, init=init).run()
    d = Sampler(model, (3, 1, 8, 8), beta=0.5, h0=0.05, seed=2, init=init).run()
    assert not torch.allclose(c.image, d.image)


# --------------------------------------------------------------------------- (c) the σ schedule
@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_sigmas_follow_the_predicted_schedule(beta):
    # point-mass prior: the residual is exactly the noise, so σ_{t+1} estimates σ₀Π_{s≤t}(1 − βh_s)
    h0 = 0.02
    r = sample(handle(IsotropicGaussian(0.5, 0.0)), (8, 1, 32, 32), beta=beta, h0=h0, sigma0=1.0, sigma_L=0.01)
    T = r.sigmas.shape[0]
    predicted = predicted_sigmas(1.0, h0, beta, T)[:T]
    # each step removes the designed fraction βh_t of the noise: σ_{t+1} ≈ (1 − βh_t)σ_t (MC error ~ 1/√(2N))
    shrink = r.sigmas[1:] / r.sigmas[:-1] / (1 - beta * r.hs[:-1, None])
    assert torch.nanmean(shrink).item() == pytest.approx(1.0, abs=0.01)
    assert (shrink[~shrink.isnan()] - 1).abs().max().item() < 6 / math.sqrt(2 * 32 * 32)
    # over the whole run: exact in expectation for β = 1; a random walk in log σ of the chains for β < 1
    log_ratio = torch.nanmean((r.sigmas / predicted[:, None]).log(), dim=1)
    assert log_ratio.abs().max().item() < (0.02 if beta == 1 else 0.2)
    first_below = int((predicted <= 0.01).nonzero()[0])  # σ_{t+1} ≤ σ_L is reached at iteration t + 1
    assert (r.steps - (first_below + 1)).float().abs().mean().item() <= (0.5 if beta == 1 else 2)


def test_tracked_noise_level_formula():
    s, h, b = torch.tensor([0.7]), 0.3, 0.4
    # a residual that is all of the noise (σ_t = s): the design, (1 − βh)s
    assert tracked_noise_level(s, s, injected_noise_scale(s, h, b), h).item() == pytest.approx((1 - b * h) * 0.7)
    # one that sees part of it: (1 − 2h)s² + h²σ_t² + γ_t², larger than the old (1 − βh)σ_t
    sig = torch.tensor([0.35])
    g = injected_noise_scale(sig, h, b)
    level = tracked_noise_level(s, sig, g, h).item()
    assert level**2 == pytest.approx((1 - 2 * h) * 0.49 + h * h * 0.35**2 + g.item() ** 2)
    assert level > (1 - b * h) * 0.35
    # h > ½ and little of the noise detected: never below the fresh noise γ_t
    sig, h = torch.tensor([0.05]), 0.9
    g = injected_noise_scale(sig, h, b)
    assert tracked_noise_level(s, sig, g, h).item() == pytest.approx(g.item())


def test_non_blind_denoiser_gets_the_tracked_noise_level():
    rec = Recording(IsotropicGaussian(0.5, 0.0), blind=False)
    s = Sampler(handle(rec), (2, 1, 8, 8), beta=0.5, h0=0.1, sigma0=0.8, seed=4, max_steps=5)
    assert rec.calls[0][1].tolist() == [0.8, 0.8] and s.state.level.tolist() == [0.8, 0.8]
    level = torch.full((2,), 0.8, dtype=torch.float64)
    while not s.done:
        st = s.step()
        level = tracked_noise_level(level, st.sigma, st.gamma, st.h)
        assert rec.calls[-1][1].tolist() == pytest.approx(level.tolist()) and torch.allclose(st.level, level)


def test_tracked_level_is_the_noise_level_of_a_point_mass_prior():
    # x̂ = μ: y_t − μ is exactly the noise, so its RMS over 500 chains is the true level of y_t
    s = Sampler(handle(IsotropicGaussian(0.5, 0.0)), (500, 1, 8, 8), beta=0.5, h0=0.05, sigma0=1.0, seed=6)
    while not s.done and s.t < 40:
        st = s.step()
        true = (st.y - 0.5).pow(2).mean().sqrt().item()
        assert st.level.pow(2).mean().sqrt().item() == pytest.approx(true, rel=0.015)


# --------------------------------------------------------------------------- (d) inverse problems
def test_inpainting_matches_the_measurements():
    shape = (1, 16, 16)
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.5
    M = Inpainting(mask)
    x = 0.5 + 0.2 * torch.randn(3, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_c = M.forward(x)
    sigma_L = 0.01
    r = solve_inverse(handle(IsotropicGaussian(0.5, 0.04)), M, x_c, beta=0.1, h0=0.05, sigma_L=sigma_L)
    assert set(r.status) == {"converged"}
    err = (M.forward(r.image) - x_c).norm(dim=1) / math.sqrt(M.m)
    assert err.max().item() <= 2 * sigma_L
    # the measured pixels are the data (up to the final σ_L-level noise)
    assert torch.allclose(r.image[:, mask], x[:, mask], atol=0.05)


@pytest.mark.parametrize("make", [lambda s: SuperResolution(s, 2), lambda s: RandomBasis(s, 0.3, seed=2)])
def test_other_measurements_are_matched(make):
    shape = (1, 8, 8)
    M = make(shape)
    x = 0.5 + 0.2 * torch.randn(1, *shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x_c = M.forward(x)[0]  # an (m,) measurement shared by two chains
    r = solve_inverse(handle(IsotropicGaussian(0.5, 0.04)), M, x_c, shape=(2, *shape), beta=0.2, h0=0.05)
    assert set(r.status) == {"converged"}
    assert ((M.forward(r.image) - x_c).norm(dim=1) / math.sqrt(M.m)).max().item() <= 2 * 0.01


def test_initial_state_of_an_inverse_problem():
    shape = (1, 8, 8)
    M = Inpainting(torch.rand(shape, generator=torch.Generator().manual_seed(2)) < 0.3)
    x_c = torch.full((M.m,), 0.9, dtype=torch.float64)
    s = Sampler(handle(IsotropicGaussian(0.5, 0.0)), (400, *shape), measurement=M, x_c=x_c, sigma0=0.1, mean=0.2)
    y0 = s.state.y
    assert y0[:, M.mask].mean().item() == pytest.approx(0.9, abs=0.01)
    assert y0[:, ~M.mask].mean().item() == pytest.approx(0.2, abs=0.01)
    assert y0.std(dim=0).mean().item() == pytest.approx(0.1, rel=0.05)


# --------------------------------------------------------------------------- (e) seeds
def test_seeds_reproduce_and_differ():
    model = handle(IsotropicGaussian(0.5, 0.01))
    a, b, c = (sample(model, (2, 1, 8, 8), h0=0.05, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.image, b.image) and torch.allclose(a.sigmas, b.sigmas, rtol=0, atol=0, equal_nan=True) and a.steps.tolist() == b.steps.tolist()
    assert not torch.allclose(a.image, c.image)


def test_two_models_see_the_same_noise_for_the_same_seed():
    kw = dict(shape=(2, 1, 8, 8), beta=0.5, h0=0.1, seed=11, snapshot_every=1, max_steps=3)
    a = sample(handle(IsotropicGaussian(0.5, 0.0)), **kw)
    b = sample(handle(IsotropicGaussian(0.3, 0.0)), **kw)
    assert torch.equal(a.snapshots[0][1], b.snapshots[0][1])  # y₀
    for t in (1, 2, 3):
        assert torch.allclose(point_noise(a, t, 0.5, 0.1), point_noise(b, t, 0.5, 0.1), atol=1e-9)


# --------------------------------------------------------------------------- (f) divergence
def test_diverging_denoiser_is_stopped_with_a_finite_state():
    s = Sampler(handle(Scaling(10.0)), (2, 1, 8, 8), h0=0.01, divergence_factor=10.0)
    r = s.run()
    assert r.status == ["diverged", "diverged"] and s.done
    assert torch.isfinite(r.image).all() and torch.isfinite(r.y).all()
    assert (r.steps < r.sigmas.shape[0]).all()  # the diverging iteration was not applied
    last = r.sigmas[r.steps, torch.arange(2)]
    assert (last > 10 * r.sigmas[0]).all()


def test_nan_denoiser_keeps_the_last_good_state():
    s = Sampler(handle(NaNAfter(4)), (1, 1, 8, 8), h0=0.1, snapshot_every=1)
    r = s.run()
    assert r.status == ["diverged"] and r.steps.item() == 2
    assert torch.equal(r.y, r.snapshots[2][1]) and torch.isfinite(r.image).all()


def test_max_steps_cap():
    r = sample(handle(IsotropicGaussian(0.5, 0.0)), (2, 1, 8, 8), max_steps=4)
    assert r.status == ["max_steps", "max_steps"] and r.steps.tolist() == [4, 4] and r.sigmas.shape == (4, 2)


# --------------------------------------------------------------------------- (g) validation
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(beta=0.0), "beta"), (dict(beta=1.5), "beta"), (dict(h0=0.0), "h0"), (dict(h0=1.01), "h0"),
        (dict(fixed_h=2.0), "fixed_h"), (dict(sigma_L=1.0), "sigma_L"), (dict(sigma_L=2.0, sigma0=1.0), "sigma_L"),
        (dict(sigma0=-1.0), "sigma0"), (dict(max_steps=0), "max_steps"), (dict(snapshot_every=0), "snapshot_every"),
        (dict(divergence_factor=1.0), "divergence_factor"), (dict(shape=(1, 3, 8, 8)), "channel"),
        (dict(shape=(1, 8, 8)), "shape"), (dict(init=torch.zeros(1, 1, 4, 4)), "init"),
        (dict(x_c=torch.zeros(3)), "x_c"), (dict(seed=1.5), "seed"),
    ],
)
def test_bad_parameters_are_rejected(kw, match):
    kw = {"shape": (1, 1, 8, 8), **kw}
    with pytest.raises(ValueError, match=match):
        Sampler(handle(IsotropicGaussian(0.5, 0.0)), **kw)


def test_bad_measurements_are_rejected():
    model = handle(IsotropicGaussian(0.5, 0.0))
    M = Inpainting(torch.ones(1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="x_c"):
        Sampler(model, (1, 1, 8, 8), measurement=M)
    with pytest.raises(ValueError, match="x_c must have shape"):
        Sampler(model, (2, 1, 8, 8), measurement=M, x_c=torch.zeros(3, 64))
    with pytest.raises(ValueError, match="built for images"):
        Sampler(model, (1, 1, 4, 4), measurement=M, x_c=torch.zeros(64))


# --------------------------------------------------------------------------- (h) noise and steps
def test_more_injected_noise_takes_more_steps():
    model = handle(IsotropicGaussian(0.5, 0.01))
    steps = [sample(model, (4, 1, 16, 16), beta=b, h0=0.02, seed=3).steps.float().mean().item() for b in (1.0, 0.5, 0.1)]
    assert steps[0] < steps[1] < steps[2]


# --------------------------------------------------------------------------- batching, records, control
def test_chains_stop_independently_and_only_running_chains_are_denoised():
    rec = Recording(IsotropicGaussian(0.5, 0.0))
    init = 0.5 + torch.tensor([0.02, 0.3, 1.0], dtype=torch.float64).view(3, 1, 1, 1) * torch.randn(
        3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = Sampler(handle(rec), (3, 1, 8, 8), beta=0.5, h0=0.05, init=init, snapshot_every=1)
    r = s.run()
    assert set(r.status) == {"converged"}
    steps = r.steps.tolist()
    assert steps[0] < steps[1] < steps[2]
    assert len(rec.calls) == 1 + r.sigmas.shape[0]  # one denoiser call per iteration (+ y₀)
    sizes = [n for n, _ in rec.calls]
    assert sizes == [3] + [sum(k >= t for k in steps) for t in range(1, len(sizes))]
    for b, k in enumerate(steps):  # frozen after stopping; records NaN
        assert all(torch.equal(y[b], r.y[b]) for t, y, _ in r.snapshots if t >= k)
        assert torch.isnan(r.sigmas[k:, b]).all() and not torch.isnan(r.sigmas[:k, b]).any()
    assert r.sigmas[torch.tensor(steps) - 1, torch.arange(3)].le(0.01).all()


def test_state_callback_snapshots_and_history():
    model = handle(IsotropicGaussian(0.5, 0.01))
    seen = []
    s = Sampler(model, (2, 1, 8, 8), h0=0.05, snapshot_every=5)
    assert s.state.t == 0 and s.state.h == 0 and s.state.sigma.tolist() == [1.0, 1.0] and not s.done
    r = s.run(callback=lambda st: seen.append((st.t, st.h, st.status)))
    T = r.sigmas.shape[0]
    assert [t for t, _, _ in seen] == list(range(1, T + 1))
    assert [h for _, h, _ in seen] == pytest.approx([step_size(t, 0.05) for t in range(1, T + 1)])
    assert seen[-1][2] == ["converged", "converged"] and s.done
    assert [t for t, _, _ in r.snapshots] == sorted({*range(0, T + 1, 5), T})
    assert torch.equal(r.snapshots[-1][2], r.image)
    hist = r.history
    assert hist["sigma"].shape == hist["gamma"].shape == (T, 2) and hist["t"].tolist() == list(range(1, T + 1))
    assert s.step().t == T  # stepping a finished sampler is a no-op


def test_fixed_step_size():
    r = sample(handle(IsotropicGaussian(0.5, 0.0)), (1, 1, 8, 8), fixed_h=0.5, beta=1.0)
    assert (r.hs == 0.5).all()
    # β = 1, point prior: σ halves every step, from ≈ 1 to below 0.01 in about log2(100) ≈ 7 steps
    assert 6 <= r.steps.item() <= 9


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_run_can_be_cancelled(kind):
    s = Sampler(handle(IsotropicGaussian(0.5, 0.01)), (1, 1, 8, 8), h0=0.01)
    event = threading.Event()
    stop = event if kind == "event" else event.is_set
    r = s.run(callback=lambda st: event.set() if st.t == 3 else None, stop=stop)
    assert s.t == 3 and r.status == ["running"] and r.steps.tolist() == [3]
    assert s.run().status == ["converged"]  # and it can be resumed
