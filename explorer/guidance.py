"""Sampling guided by the representation φ: Algorithm 1 with a guidance step (Kadkhodaie, Mallat & Simoncelli 2025;
Kadkhodaie et al., "Feature-guided score diffusion for sampling conditional densities", 2024).

With φ* a target's representation in block b (:func:`explorer.representation.features` of a target image, or a
cluster centroid) and the denoiser's x̂(y), the guidance objective of a chain is the relative squared distance

    G(y) = ‖φ_b(x̂(y) + σ_φ z) − φ*‖² / ‖φ*‖²,

read at the representation's noise level σ_φ (``sigma``; None reads x̂(y) itself, as φ* then is; with σ_φ > 0 a
fresh z per step, so the steps average over the draws). Its gradient goes through the network twice (x̂, then
φ of x̂). The update of :class:`explorer.sampling.Sampler` becomes

    y_t = y_{t−1} + h_t (d_t + g_t) + γ_t z_t,      g_t = −λ ‖d_t‖ ∇_y G(y_{t−1}) / ‖∇_y G(y_{t−1})‖,

so the guidance step is a fixed fraction λ (``strength``, default :data:`STRENGTH`) of the denoiser's step d_t:
it shrinks with the noise as d_t does (‖d_t‖ = σ_t √N) and, being a direction, needs no tuning to the scale
of φ. σ_t and γ_t are still measured on d_t, so the noise schedule is that of Algorithm 1. The schedule
``until`` stops the guidance of a chain once its σ_t ≤ ``until`` (default None: guided to the end). λ = 0 is
Algorithm 1.

Each guided step costs the sampler's denoiser call plus two forward passes (x̂(y), then φ up to block b) and a
backward pass through both.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .representation import _model, features, representation
from .sampling import SampleResult, Sampler, StopSignal

STRENGTH = 1.0  # λ: the guidance step as a fraction of the denoiser's step (as long as it, by default)


class RepresentationGuidance:
    """The guidance step g(y, d, chains) = −λ ‖d‖ ∇G/‖∇G‖ towards ``target`` φ* in ``block`` (module docstring).

    ``target`` is (K,) for every chain or (B, K), one row per chain. ``last`` holds G(y) of the chains of the
    latest call (a (len(chains),) CPU tensor)."""

    def __init__(self, handle: Any, target: Tensor | np.ndarray, block: str, strength: float = STRENGTH,
                 sigma: float | None = None, until: float | None = None, seed: int = 0):
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength >= 0:
            raise ValueError(f"strength must be a number ≥ 0, got {strength!r}")
        t = torch.as_tensor(np.asarray(target, dtype=np.float32))
        if t.ndim not in (1, 2) or not torch.isfinite(t).all() or not bool((t.flatten(-1).norm(dim=-1) > 0).all()):
            raise ValueError("the target representation must be a finite, non-zero (K,) or (B, K) array")
        self.handle, self.block, self.strength = handle, block, float(strength)
        self.sigma = None if not sigma else float(sigma)
        self.until = until
        self.model = _model(handle)
        if not getattr(self.model, "blind", True):
            raise ValueError(f"{type(self.model).__name__} is not blind: guided sampling needs a blind network")
        p = next(self.model.parameters())
        self.target = t.to(p.device, p.dtype)
        self._generator = torch.Generator().manual_seed(seed)
        self.last = torch.empty(0)

    def objective(self, y: Tensor, chains: Tensor) -> Tensor:
        """G(y) per chain, differentiable in y: ‖φ_b(x̂(y) [+ σ_φ z]) − φ*‖² / ‖φ*‖²."""
        x_hat = self.model(y)
        if self.sigma:
            x_hat = x_hat + self.sigma * torch.randn(x_hat.shape, generator=self._generator).to(x_hat)
        phi = representation(self.model, x_hat, self.block)
        target = self.target if self.target.ndim == 1 else self.target[chains.to(self.target.device)]
        return ((phi - target) ** 2).sum(dim=1) / (target**2).sum(dim=-1)

    def __call__(self, y: Tensor, d: Tensor, chains: Tensor) -> Tensor:
        norm = d.flatten(1).norm(dim=1)
        on = norm / math.sqrt(math.prod(d.shape[1:])) > (self.until or 0.0)  # σ_t > until: still guided
        if self.strength == 0 or not bool(on.any()):
            return torch.zeros_like(d)
        with getattr(self.handle, "lock", None) or nullcontext(), torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            g = self.objective(yy, chains)
            (grad,) = torch.autograd.grad(g.sum(), yy)
        self.last = g.detach().cpu()
        unit = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return -(self.strength * norm * on).view(-1, 1, 1, 1) * unit


def guided_sample(handle: Any, target: Tensor | np.ndarray, block: str, shape: tuple[int, int, int, int],
                  strength: float = STRENGTH, sigma: float | None = None, until: float | None = None,
                  beta: float = 0.5, seed: int = 0, callback: Any = None, stop: StopSignal = None,
                  **kw: Any) -> SampleResult:
    """``shape[0]`` samples of Algorithm 1 pulled towards φ* = ``target`` (module docstring); ``seed`` seeds both
    the sampler's noise (the same as unguided :func:`explorer.sampling.sample` with that seed) and σ_φ's draws."""
    guide = RepresentationGuidance(handle, target, block, strength, sigma, until, seed)
    return Sampler(handle, shape, beta=beta, seed=seed, guidance=guide, **kw).run(callback, stop)


def phi_distance(handle: Any, images: Tensor, target: Tensor | np.ndarray, block: str, sigma: float | None = None,
                 draws: int = 1, seed: int = 0) -> np.ndarray:
    """(B,) ‖φ_b(x_n; σ) − φ*‖ / ‖φ*‖ for a batch (B, C, H, W): how far each image's representation is from the
    target's (``target`` (K,) or (B, K))."""
    phi = features(handle, images, block, sigma, draws, seed).numpy().astype(np.float64)
    t = np.asarray(target, dtype=np.float64)
    return np.linalg.norm(phi - t, axis=-1) / np.linalg.norm(t, axis=-1)
