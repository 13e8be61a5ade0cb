"""Image quality: PSNR and SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) on arrays or tensors.

Inputs are one image: a numpy (H, W) / (H, W, C) array or a torch (H, W), (C, H, W) or
(1, C, H, W) tensor (channels first, as the denoisers use them). Both arguments must have the
same shape; values are compared as float64.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

ArrayLike = np.ndarray | torch.Tensor


def _as_image(a: ArrayLike) -> np.ndarray:
    """float64 (H, W) or (H, W, C); tensors are channels-first and may carry a batch axis of 1."""
    if isinstance(a, torch.Tensor):
        t = a.detach().to("cpu", torch.float64)
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.ndim == 3:
            t = t[0] if t.shape[0] == 1 else t.permute(1, 2, 0)
        out = t.numpy()
    else:
        out = np.asarray(a, dtype=np.float64)
        if out.ndim == 3 and out.shape[2] == 1:
            out = out[..., 0]
    if out.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {out.shape}")
    return out


def _pair(x: ArrayLike, ref: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_image(x), _as_image(ref)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs reference {b.shape}")
    return a, b


def psnr(x: ArrayLike, ref: ArrayLike, data_range: float = 1.0) -> float:
    """PSNR = 10 log10(R² / MSE), MSE = mean((x − ref)²), R = ``data_range``; +inf when x = ref."""
    a, b = _pair(x, ref)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(x: ArrayLike, ref: ArrayLike, data_range: float = 1.0) -> float:
    """Mean SSIM of Wang et al. 2004 with their constants:

        SSIM = (2μ_xμ_r + C1)(2σ_xr + C2) / ((μ_x² + μ_r² + C1)(σ_x² + σ_r² + C2)),

    local statistics under an 11×11 Gaussian window of σ = 1.5 (population covariances),
    C1 = (0.01 R)², C2 = (0.03 R)², averaged over the valid interior and over channels.
    """
    a, b = _pair(x, ref)
    return float(structural_similarity(
        a, b, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        K1=0.01, K2=0.03, channel_axis=-1 if a.ndim == 3 else None,
    ))
