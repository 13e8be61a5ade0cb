"""Variational and diffusion denoisers: Tikhonov with a gradient prior, Perona–Malik diffusion, total variation.

The first three steps of the arc from Tikhonov to deep networks, in the ``Denoiser`` protocol: pure
torch, differentiable in y, batched over (B, C, H, W) with every channel processed on its own.

Discrete gradient (all three). Forward differences with Neumann (reflecting) boundaries,
(∇u)_i,j = (u_i+1,j − u_i,j, u_i,j+1 − u_i,j), the difference across the last row / column being 0;
its negative adjoint is the divergence (div p)_i,j = p¹_i,j − p¹_i−1,j + p²_i,j − p²_i,j−1 (p⁰ at the
first and the last difference at the far border count as 0), so −div ∇ is the Neumann Laplacian.

Noise level: the given σ, or with ``sigma=None`` Donoho's σ̂ held fixed in derivatives
(:func:`~explorer.denoisers.classical.noise_level`, as for the other classical filters). Each
parameter follows σ by a rule whose constants were fitted on BSD400 training crops by
``OMP_NUM_THREADS=1 python scripts/fit_classical_rules.py`` (σ in [0, 1] units).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Denoiser, SigmaLike
from .checks import real, whole
from .classical import check_batch, fourier_filter, noise_level

#: λ = TIKHONOV_SCALE · σ^TIKHONOV_POWER, fitted by ``python scripts/fit_classical_rules.py``.
TIKHONOV_SCALE, TIKHONOV_POWER = 74.0, 1.718
#: κ = PM_EDGE · σ and K = PM_STEPS steps of Δt = 1/4, fitted by ``python scripts/fit_classical_rules.py``.
PM_EDGE, PM_STEPS = 0.6, 16
#: ROF weight λ = TV_WEIGHT · σ, fitted by ``python scripts/fit_classical_rules.py``.
TV_WEIGHT = 0.9


def gradient(u: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences (∂₁u, ∂₂u) along H and W, 0 across the far border (Neumann)."""
    zero_row = torch.zeros_like(u[..., :1, :])
    zero_col = torch.zeros_like(u[..., :, :1])
    return (torch.cat([u[..., 1:, :] - u[..., :-1, :], zero_row], dim=-2),
            torch.cat([u[..., :, 1:] - u[..., :, :-1], zero_col], dim=-1))


def divergence(p1: Tensor, p2: Tensor) -> Tensor:
    """div p = −∇ᵀp for fields whose last row (p1) / column (p2) is 0, as :func:`gradient` makes them."""
    d1 = p1 - torch.cat([torch.zeros_like(p1[..., :1, :]), p1[..., :-1, :]], dim=-2)
    d2 = p2 - torch.cat([torch.zeros_like(p2[..., :, :1]), p2[..., :, :-1]], dim=-1)
    return d1 + d2


# ---------------------------------------------------------------------------------------- Tikhonov
class TikhonovGradient(Denoiser):
    """Tikhonov regularisation with a gradient prior (the heat-equation ancestor of every other method):

        x̂ = argmin_x ½‖x − y‖² + ½λ‖∇x‖² = (I + λ∇ᵀ∇)⁻¹ y,   λ = a σ^p.

    ∇ᵀ∇ is the Neumann Laplacian, diagonal in the cosine basis, so the solve is a Fourier filter on
    the symmetric extension of the image (``fourier_filter(boundary="reflect")``) with gain
    g(f) = 1 / (1 + 4λ (sin²πf_y + sin²πf_x)): exact, O(N log N). It is the MAP estimate for the
    Gaussian prior p(x) ∝ exp(−‖∇x‖²/2τ²) with λ = σ²/τ²; on natural images the best λ grows more
    slowly than σ² (fitted exponent p < 2). ``lam`` fixes λ instead of the rule.

    Linear in y at fixed σ, keeps constants and the image mean; not bias-free in blind use (λ(σ̂)
    changes with the contrast of y unless ``lam`` is fixed).
    """

    blind = True

    def __init__(self, scale: float = TIKHONOV_SCALE, power: float = TIKHONOV_POWER, lam: float | None = None,
                 channels: int = 1):
        super().__init__()
        self.scale, self.power = real("scale", scale), real("power", power, strict=False)
        self.lam = None if lam is None else real("lam", lam, strict=False)
        self.channels = whole("channels", channels)
        self.bias_free = lam is not None
        self.config = dict(scale=scale, power=power, lam=lam, channels=channels)

    def regularization(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        """λ per image, shape (B, 1, 1, 1): the fixed ``lam`` or a σ^p."""
        if self.lam is not None:
            return torch.full((y.shape[0], 1, 1, 1), self.lam, dtype=y.dtype, device=y.device)
        return self.scale * noise_level(y, sigma) ** self.power

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        lam = self.regularization(y, sigma)
        return fourier_filter(
            y, lambda fy, fx: 1 / (1 + 4 * lam * (torch.sin(math.pi * fy) ** 2 + torch.sin(math.pi * fx) ** 2)))


# ---------------------------------------------------------------------------------------- Perona–Malik
class PeronaMalik(Denoiser):
    """Perona–Malik anisotropic diffusion (Perona & Malik 1990), K explicit steps of

        u⁰ = y,   uᵏ⁺¹ = uᵏ + Δt div( g(|∇uᵏ|) ∇uᵏ ),   g(s) = 1 / (1 + (s/κ)²),   x̂ = u^K,

    with the conductance g evaluated on each of the four edges of a pixel (the original discrete
    scheme: u_p += Δt Σ_{q ∈ N₄(p)} g(|u_q − u_p|)(u_q − u_p)) and no flux through the border.
    Stability: uᵏ⁺¹_p is a convex combination of uᵏ_p and its neighbours when Δt Σ_q g ≤ 1, i.e. for
    every Δt ≤ 1/4 since 0 < g ≤ 1 (a discrete maximum principle: no new extrema, no blow-up);
    ``step`` is Δt, at most 1/4. Edge threshold κ = c σ (``edge`` = c): differences well above the
    noise's √2σ are edges and diffuse little. ``steps`` = K.

    Bias-free in blind use (κ ∝ σ̂ scales with y, so x̂(αy) = αx̂(y)); keeps constants and the mean.
    """

    blind = True
    bias_free = True

    def __init__(self, edge: float = PM_EDGE, steps: int = PM_STEPS, step: float = 0.25, channels: int = 1):
        super().__init__()
        self.edge, self.steps = real("edge", edge), whole("steps", steps, low=0)
        self.step = real("step", step, high=0.25)
        self.channels = whole("channels", channels)
        self.config = dict(edge=edge, steps=steps, step=step, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        k2 = (self.edge * noise_level(y, sigma)) ** 2
        tiny = torch.finfo(y.dtype).tiny
        u = y
        for _ in range(self.steps):
            d1, d2 = gradient(u)
            # g(s)·s = κ²s / (κ² + s²), written so that κ = 0 (σ = 0) gives no flux rather than 0/0
            u = u + self.step * divergence(k2 * d1 / (k2 + d1 * d1).clamp_min(tiny),
                                           k2 * d2 / (k2 + d2 * d2).clamp_min(tiny))
        return u


# ---------------------------------------------------------------------------------------- total variation
def safe_norm(a: Tensor, b: Tensor) -> Tensor:
    """√(a² + b²) with derivative 0 (a subgradient) where a = b = 0 instead of NaN."""
    s = a * a + b * b
    positive = s > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, s, torch.ones_like(s))), torch.zeros_like(s))


class TotalVariation(Denoiser):
    """Total-variation denoising (Rudin, Osher & Fatemi 1992), the isotropic ROF model

        x̂ = argmin_u ½‖u − y‖² + λ Σ_p |∇u|_p,   λ = c σ (``weight`` = c),

    unrolled to a fixed number of iterations of Chambolle's (2004) dual projection algorithm. In the
    scaled dual variable P = λp (two fields, one per gradient component), with P⁰ = 0,

        uⁿ = y − div Pⁿ,   Pⁿ⁺¹ = (Pⁿ − τ ∇uⁿ) / (1 + (τ/λ) |∇uⁿ|),   τ = 1/4,   x̂ = u^n_iter,

    where |∇u| is the pointwise Euclidean norm of the gradient (:func:`safe_norm`: derivative 0 where
    the gradient vanishes, so autograd stays finite). This is the formulation, step and stopping of
    scikit-image's ``denoise_tv_chambolle(weight=λ, eps=0, max_num_iter=iterations + 1)`` (whose n-th
    iterate is computed before its n-th dual update). Chambolle proves convergence for τ ≤ 1/8; τ = 1/4
    converges in practice and is the step scikit-image uses.

    Each channel is denoised on its own. Bias-free in blind use (λ ∝ σ̂); keeps the image mean.
    """

    blind = True
    bias_free = True

    def __init__(self, weight: float = TV_WEIGHT, iterations: int = 100, channels: int = 1):
        super().__init__()
        self.weight, self.iterations = real("weight", weight), whole("iterations", iterations, low=0)
        self.channels = whole("channels", channels)
        self.config = dict(weight=weight, iterations=iterations, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        lam = self.weight * noise_level(y, sigma)
        tau = 0.25
        p1 = p2 = torch.zeros_like(y)
        u = y
        for _ in range(self.iterations):
            g1, g2 = gradient(u)
            norm = safe_norm(g1, g2)
            # (P − τg) / (1 + τ|g|/λ), multiplied through by λ so that λ = 0 gives P = 0 (the identity)
            denom = (lam + tau * norm).clamp_min(torch.finfo(y.dtype).tiny)
            p1, p2 = lam * (p1 - tau * g1) / denom, lam * (p2 - tau * g2) / denom
            u = y - divergence(p1, p2)
        return u
