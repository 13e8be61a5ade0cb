"""The denoiser protocol every algorithm in the explorer consumes.

A denoiser is a differentiable map from a batch of noisy images ``y`` (B, C, H, W) to the
estimate x̂(y). Its *residual* r(y) = y − x̂(y) is the noise estimate; by Miyasawa/Tweedie a
least-squares denoiser gives the score, x̂(y) = y + σ²∇log p(y), so the ascent direction of the
papers is f(y) = x̂(y) − y = −r(y).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

SigmaLike = Tensor | float | None


class Denoiser(nn.Module):
    """Base class: ``forward(y, sigma=None)`` returns x̂(y); ``residual`` returns y − x̂(y).

    Class flags:
    - ``blind``: True if the denoiser estimates the noise level itself (``sigma`` is ignored);
      False if it needs σ (then ``sigma`` is required).
    - ``bias_free``: True if x̂(αy) = αx̂(y) for every α > 0 (no additive constants anywhere).
    - ``channels``: number of image channels it accepts.
    - ``min_size``: the smallest image side it accepts.
    - ``concurrent_forward``: True if ``forward`` may run in several threads at once (pure torch, no
      state of its own changed): the scheduler then splits a batched pass over the free CPU cores.
    """

    blind: bool = True
    bias_free: bool = False
    channels: int = 1
    min_size: int = 1
    concurrent_forward: bool = False

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def residual(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        """r(y) = y − x̂(y), the estimated noise."""
        return y - self(y, sigma)

    def _require_sigma(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """σ as a (B, 1, 1, 1) tensor on y's device; a non-blind denoiser cannot run without it."""
        if sigma is None:
            raise ValueError(f"{type(self).__name__} is not blind: pass the noise level sigma")
        return as_sigma(sigma, y)


def as_sigma(sigma: Tensor | float, y: Tensor) -> Tensor:
    """Broadcast a scalar or per-image σ to shape (B, 1, 1, 1) with y's dtype and device."""
    s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    if s.ndim == 0:
        s = s.expand(y.shape[0])
    if s.numel() != y.shape[0]:
        raise ValueError(f"sigma has {s.numel()} values for a batch of {y.shape[0]} images")
    return s.reshape(-1, 1, 1, 1)


class ResidualNetwork(Denoiser):
    """A network ``net`` that predicts the residual; x̂(y) = y − net(y)."""

    concurrent_forward = True

    def predict_residual(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        return y - self.predict_residual(y)

    def residual(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        return self.predict_residual(y)
