"""What a patch is like, to set beside its −log p: its local contrast and how denoisable it is.

- :func:`gradient_energy` — G(x) = (1/d) Σ ‖∇x‖², the mean squared forward difference inside the patch.
- :func:`denoising_gain` — PSNR(x̂(y), x) − PSNR(y, x) at y = x + σz, how much a denoiser recovers.
- :func:`correlations` — Pearson r and Spearman ρ between −log p and either of them.

Guth, Kadkhodaie & Simoncelli (NeurIPS 2025) find flat images the most probable and detailed ones the
least, and the least probable the hardest to denoise: −log p rises with G and falls with the gain.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .metrics import psnr

DEFAULT_SIGMA = 25 / 255  # the noise level of the denoisability scatter (σ = 25 on the 8-bit scale)


def gradient_energy(x: Tensor | np.ndarray) -> np.ndarray:
    """G(x) = (1/d) [Σ_{i,j} (x_{i,j+1} − x_{i,j})² + Σ_{i,j} (x_{i+1,j} − x_{i,j})²] per image of a
    (B, C, H, W) batch, d = C·H·W, differences taken inside the patch (no wrap-around): the local
    contrast, in (gray level per pixel)² for gray levels in [0, 1]. 0 for a constant patch."""
    t = torch.as_tensor(x, dtype=torch.float64)
    if t.ndim != 4 or min(t.shape[-2:]) < 2:
        raise ValueError(f"expected a (B, C, H, W) batch with sides ≥ 2, got shape {tuple(t.shape)}")
    dx, dy = t[..., :, 1:] - t[..., :, :-1], t[..., 1:, :] - t[..., :-1, :]
    d = math.prod(t.shape[1:])
    return ((dx**2).flatten(1).sum(1) + (dy**2).flatten(1).sum(1)).numpy() / d


def denoising_gain(denoise: Callable[[Tensor, float], Tensor], x: Tensor, sigma: float = DEFAULT_SIGMA, seed: int = 0,
                   batch: int = 128) -> np.ndarray:
    """PSNR(x̂, x) − PSNR(y, x) in dB per image of a (B, C, H, W) batch, y = x + σz with z ~ N(0, I) drawn
    from ``seed`` (the same noise for the same batch), x̂ = ``denoise(y, σ)`` (e.g. ``handle.denoise``;
    blind denoisers ignore σ). PSNR of :func:`explorer.metrics.psnr` (gray levels in [0, 1]); y is not
    clipped. Large: the denoiser removes much of the noise (a predictable patch); near 0: it cannot."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = torch.as_tensor(x, dtype=torch.float32)
    y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    out = []
    for xc, yc in zip(x.split(batch), y.split(batch)):
        xh = denoise(yc, sigma)
        out += [psnr(a, b) - psnr(c, b) for a, b, c in zip(xh, xc, yc)]
    return np.asarray(out, dtype=np.float64)


def correlations(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Pearson r (of the values as given) and Spearman ρ (of their ranks, unchanged by any monotone
    rescaling such as a log axis) between two equally long samples; NaN when either is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D samples of the same length, got shapes {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n": int(a.size)}
    return {"pearson": float(stats.pearsonr(a, b)[0]), "spearman": float(stats.spearmanr(a, b)[0]), "n": int(a.size)}
