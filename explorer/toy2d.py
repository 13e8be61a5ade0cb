"""A 2-D teaching simulation: a prior concentrated on a closed curve, its exact MMSE denoiser, and
Algorithm 1 running on it so every iterate y_t can be drawn in the plane.

The curve is r(θ) = r₀(1 + a·cos(kθ)) (k lobes), represented by n points x_i = c(θ_i) at equally spaced
θ_i with weights w_i ∝ ‖c'(θ_i)‖ = √(r² + r'²), i.e. the uniform (arc-length) distribution on the curve.

Shape convention: a batch of points is a (B, 2) tensor. The denoiser also accepts (B, 1, 1, 2), a
one-channel 1 × 2 "image" per point, and (1, 1, B, 2), all B points as one 1 × 2B "image", so
:class:`~explorer.sampling.Sampler` and :class:`~explorer.handle.ModelHandle` drive it unchanged; it
returns the shape it was given.

Noise levels in 2-D. Algorithm 1 estimates the noise level of y_t from the residual, σ_t² = ‖f(y_t)‖²/N,
and stops a chain once σ_t ≤ σ_L. With N = 2 that estimate is one point's squared distance to the curve
(2 degrees of freedom): a chain that happens to land near the curve — or a blind denoiser that cannot tell
the noise level of a single point and barely moves it — "converges" after one step, and the step count
then measures luck, not β (β = 0.1 gave 1–30 steps, β = 0.5 1–42). :func:`ascent_trajectories` can
run the B chains as one 2B-dimensional image instead (``pooled=True``, the toy-2D view's choice: the
product prior p(x)^B, whose MMSE denoiser acts point by point): σ_t then averages ‖f‖² over all chains,
falls like (1 − βh_t)σ_t, and every chain takes the same number of steps — more for smaller β. Pooled
chains want the σ-conditioned denoiser (told the tracked level s_t): the blind one still guesses each
point's noise level alone and leaves points inside the curve almost unmoved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .denoisers.base import Denoiser, SigmaLike
from .handle import ModelHandle
from .sampling import Sampler


class CurvePrior:
    """The uniform distribution on the closed curve r(θ) = r₀(1 + a·cos(kθ)), on ``n_points`` points (float64)."""

    def __init__(self, r0: float = 1.0, a: float = 0.3, lobes: int = 5, n_points: int = 2048):
        if not r0 > 0:
            raise ValueError(f"r0 must be positive, got {r0!r}")
        if not 0 <= a < 1:
            raise ValueError(f"the lobe amplitude a must be in [0, 1) for a simple closed curve, got {a!r}")
        if isinstance(lobes, bool) or not isinstance(lobes, int) or lobes < 0:
            raise ValueError(f"lobes must be a non-negative integer, got {lobes!r}")
        if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 16:
            raise ValueError(f"n_points must be an integer ≥ 16, got {n_points!r}")
        self.r0, self.a, self.lobes, self.n_points = float(r0), float(a), lobes, n_points
        self.theta = torch.arange(n_points, dtype=torch.float64) * (2 * math.pi / n_points)
        self.points = self.curve(self.theta)
        r = self.radius(self.theta)
        dr = -self.r0 * self.a * self.lobes * torch.sin(self.lobes * self.theta)
        speed = torch.sqrt(r**2 + dr**2)
        self.log_weights = torch.log(speed / speed.sum())

    def radius(self, theta: Tensor) -> Tensor:
        """r(θ) = r₀(1 + a·cos(kθ))."""
        return self.r0 * (1 + self.a * torch.cos(self.lobes * theta))

    def curve(self, theta: Tensor) -> Tensor:
        """c(θ) = r(θ)(cos θ, sin θ), shape (..., 2)."""
        return self.radius(theta)[..., None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points drawn from the prior, (n, 2)."""
        idx = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        return self.points[idx]

    def nearest(self, points: Tensor) -> Tensor:
        """The nearest point of the curve (the closed polyline through the n points), shape (..., 2)."""
        p = points.to(torch.float64).reshape(-1, 1, 2)
        a, b = self.points, self.points.roll(-1, dims=0)
        ab = b - a
        s = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
        foot = a + s[..., None] * ab  # (P, n, 2)
        best = (p - foot).norm(dim=-1).argmin(dim=1)
        return foot[torch.arange(p.shape[0]), best].reshape(points.shape)

    def distance(self, points: Tensor) -> Tensor:
        """Euclidean distance from each point to the curve, shape (...)."""
        return (points.to(torch.float64) - self.nearest(points)).norm(dim=-1)

    def log_density(self, points: Tensor, sigma: float, chunk: int = 1024) -> Tensor:
        """log p_σ(y) = log Σ_i w_i N(y; x_i, σ²I): the prior blurred by Gaussian noise, for (..., 2) points."""
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        flat = points.reshape(-1, 2)
        out = [
            torch.logsumexp(self.log_weights - _sq_dist(part, self.points) / (2 * sigma**2), dim=1)
            for part in flat.split(chunk)
        ]
        return (torch.cat(out) - math.log(2 * math.pi * sigma**2)).reshape(points.shape[:-1])


def _sq_dist(y: Tensor, x: Tensor) -> Tensor:
    """‖y_b − x_i‖², shape (B, n), in float64."""
    y, x = y.to(torch.float64), x.to(torch.float64)
    return ((y * y).sum(1, keepdim=True) - 2 * y @ x.T + (x * x).sum(1)).clamp_min(0)


def plane_grid(extent: float = 2.0, resolution: int = 201) -> tuple[Tensor, Tensor, Tensor]:
    """A square grid on [−extent, extent]²: (xs (R,), ys (R,), points (R, R, 2) with points[i, j] = (xs[j], ys[i]))."""
    xs = torch.linspace(-extent, extent, resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    return xs, xs.clone(), torch.stack([gx, gy], dim=-1)


class CurveMMSE(Denoiser):
    """The exact MMSE denoiser of a :class:`CurvePrior`: x̂(y) = E[x | y] for y = x + σz.

    σ-conditioned (``blind=False``): x̂(y) = Σ_i π_i(y) x_i with π = softmax_i(log w_i − ‖y − x_i‖²/(2σ²)),
    which equals y + σ²∇log p_σ(y) (Tweedie). Blind (default): σ has a log-uniform prior on
    ``grid_size`` geometric values in [``sigma_min``, ``sigma_max``], p(k | y) ∝ p_{σ_k}(y), and
    x̂(y) = Σ_k p(k | y) x̂_{σ_k}(y) exactly. Points are (B, 2) or (B, 1, 1, 2) (module docstring).
    """

    channels = 1
    bias_free = False
    chunk = 64  # points per block in blind mode, whose posterior is a (block, grid_size, n_points) array

    def __init__(self, prior: CurvePrior, blind: bool = True, sigma_min: float = 1e-3, sigma_max: float = 3.0,
                 grid_size: int = 32):
        super().__init__()
        if not 0 < sigma_min < sigma_max or grid_size < 2:
            raise ValueError(f"need 0 < sigma_min < sigma_max and grid_size ≥ 2, got {sigma_min}, {sigma_max}, {grid_size}")
        self.prior = prior
        self.blind = blind
        self.register_buffer("points", prior.points.clone())
        self.register_buffer("log_weights", prior.log_weights.clone())
        self.register_buffer("sigmas", torch.logspace(math.log10(sigma_min), math.log10(sigma_max), grid_size,
                                                      dtype=torch.float64))

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        flat = _as_points(y)
        if self.blind:
            out = torch.cat([self._blind_mean(_sq_dist(part, self.points)) for part in flat.split(self.chunk)])
        else:
            s = self._require_sigma(y, sigma).to(torch.float64).reshape(-1, 1)
            logits = self.log_weights.to(torch.float64) - _sq_dist(flat, self.points) / (2 * s**2)
            out = torch.softmax(logits, dim=1) @ self.points.to(torch.float64)
        return out.to(y.dtype).reshape(y.shape)

    def _blind_mean(self, d2: Tensor) -> Tensor:
        """Σ_{i,k} p(i, k | y) x_i with p(i, k | y) ∝ w_i N(y; x_i, σ_k²I) ∝ w_i σ_k⁻² exp(−‖y − x_i‖²/(2σ_k²))."""
        s2 = self.sigmas.to(torch.float64) ** 2
        logits = self.log_weights.to(torch.float64) - d2[:, None, :] / (2 * s2[:, None]) - torch.log(s2)[:, None]
        p_i = torch.softmax(logits.flatten(1), dim=1).reshape(logits.shape).sum(1)  # (B, n)
        return p_i @ self.points.to(torch.float64)


def _as_points(y: Tensor) -> Tensor:
    if (y.ndim == 2 and y.shape[1] == 2 or y.ndim == 4 and tuple(y.shape[1:]) == (1, 1, 2)
            or y.ndim == 4 and y.shape[:2] == (1, 1) and y.shape[3] == 2):
        return y.reshape(-1, 2)
    raise ValueError(f"points must be (B, 2), (B, 1, 1, 2) or (1, 1, B, 2), got shape {tuple(y.shape)}")


@dataclass
class Trajectories:
    """Algorithm 1 in the plane: ``paths`` (T + 1, B, 2) holds every y_t (frozen after a chain stops),
    ``denoised`` (B, 2) the final x̂(y_T); ``sigmas`` (T, B), ``steps`` (B,), ``status`` as in SampleResult
    (pooled chains share one σ_t, repeated in every column, and one step count)."""

    paths: Tensor
    denoised: Tensor
    sigmas: Tensor
    steps: Tensor
    status: list[str]


def ascent_trajectories(
    denoiser: CurveMMSE | ModelHandle,
    initial: Tensor | int,
    h0: float = 0.05,
    beta: float = 1.0,
    sigma0: float = 1.0,
    sigma_L: float = 0.01,
    seed: int = 0,
    max_steps: int = 2000,
    pooled: bool = False,
) -> Trajectories:
    """Run Algorithm 1 (:class:`~explorer.sampling.Sampler`) on 2-D points and record every iterate.

    ``initial`` is a (B, 2) tensor of starting points, or a number of chains started at
    y₀ ~ N(0, σ₀²I) from ``seed``. A bare denoiser is wrapped in a CPU float64 :class:`ModelHandle`.
    ``pooled``: the chains are one 2B-dimensional image (module docstring), so σ_t is estimated from all
    of them and they stop together; otherwise each chain is its own 2-D image with its own noisy σ_t.
    A σ-conditioned denoiser is told the sampler's tracked noise level (per chain, or shared if pooled).
    """
    handle = denoiser if isinstance(denoiser, ModelHandle) else ModelHandle(denoiser, "cpu", torch.float64)
    batch = _as_points(initial).shape[0] if isinstance(initial, Tensor) else initial
    shape = (1, 1, batch, 2) if pooled else (batch, 1, 1, 2)
    init = _as_points(initial).reshape(shape) if isinstance(initial, Tensor) else None
    sampler = Sampler(handle, shape, beta=beta, h0=h0, sigma0=sigma0, sigma_L=sigma_L, seed=seed,
                      max_steps=max_steps, mean=0.0, snapshot_every=1, init=init)
    result = sampler.run()
    sigmas, steps, status = result.sigmas, result.steps, result.status
    if pooled:
        sigmas, steps, status = sigmas.expand(-1, batch), steps.expand(batch).clone(), status * batch
    return Trajectories(
        paths=torch.stack([y.reshape(batch, 2) for _, y, _ in result.snapshots]),
        denoised=result.image.reshape(batch, 2),
        sigmas=sigmas,
        steps=steps,
        status=status,
    )
