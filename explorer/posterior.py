"""What a denoiser knows about its own errors: the posterior variance from its Jacobian.

For a least-squares denoiser x̂(y) = E[x | y] and Gaussian noise y = x + σz, differentiating
Miyasawa/Tweedie's x̂(y) = y + σ²∇log p(y) once more gives the second-order identity

    Cov[x | y] = σ² ∂x̂/∂y = σ² A_y,

so each pixel's posterior variance is σ² A_ii and its posterior standard deviation √(σ² A_ii): an
uncertainty map every analysable denoiser carries (issue #20).

The diagonal of A is estimated matrix-free (:func:`jacobian_diagonal`) by *coloured probing with random
signs*: the pixels are coloured by their position modulo a period p (p² colours per channel), and
for each colour c and repeat r the probe v = s ⊙ 1_c (s a Rademacher sign image) gives

    s_i (A v)_i = A_ii + Σ_{j ≠ i, colour(j) = c} s_i s_j A_ij    (i of colour c).

The sum is zero in expectation (the signs are independent) and vanishes when the adaptive filter of
pixel i (row i of A) has no weight at the pixels p, 2p, … away from it; averaging R repeats divides its
variance by R. The estimate is unbiased for any p; its standard error, from the spread over the R
repeats, is returned with it. Cost: C·p²·R Jacobian-vector products, batched (one forward pass of a
batch of tangents each on the replay fast path). ``method="exact"`` uses the N unit vectors (small
images only). For the Gaussian prior N(μ, Σ) the identity is exact: σ²A = Σ − Σ(Σ + σ²I)⁻¹Σ.

Measured (``scripts/posterior_accuracy.py``: bf-natural-gray, 32×32 camera): the default period 4 with
4 sign draws (64 products) gives the posterior standard deviation within a median 0.8 / 1.2 / 2.7 % of
the exact one at σ = 0.05 / 0.1 / 0.2; period 8 with 2 draws (128 products) within 0.3 / 0.5 / 1.0 %.
A trained network's diagonal has a few negative entries (0.3–5 % of pixels there: its Jacobian is not
exactly a covariance), which :func:`posterior_std` clips to 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .denoisers.base import SigmaLike
from .handle import ArrayOrTensor, ModelHandle
from .linearization import MAX_DENSE, linearize

Method = Literal["probing", "exact"]


@dataclass(frozen=True)
class DiagonalEstimate:
    """diag A as an image (C, H, W), with the standard error of each entry (zeros when exact)."""

    diagonal: Tensor
    standard_error: Tensor
    method: str
    products: int  # Jacobian-vector products used


@dataclass(frozen=True)
class PosteriorStd:
    """The posterior standard deviation map √(σ² diag A) (C, H, W), the σ used, and its diagonal."""

    std: Tensor
    sigma: float
    diagonal: DiagonalEstimate


def probes(shape: tuple[int, int, int], period: int, signs: Tensor | None = None) -> Tensor:
    """The C·p² coloured probes (K, C, H, W): probe (ch, a, b) is 1 (or the sign s) at the pixels of
    channel ch with row ≡ a and column ≡ b (mod p), 0 elsewhere; they sum to the all-ones (or s) image."""
    c, h, w = shape
    rows = torch.arange(h)[:, None] % period
    cols = torch.arange(w)[None, :] % period
    colour = rows * period + cols  # (H, W) in [0, p²)
    onehot = (colour[None] == torch.arange(period * period)[:, None, None]).to(torch.float32)  # (p², H, W)
    V = torch.zeros(c * period * period, c, h, w)
    for ch in range(c):
        V[ch * period * period:(ch + 1) * period * period, ch] = onehot
    return V if signs is None else V * signs.to(V.dtype)


def probe_diagonal(apply: Callable[[Tensor], Tensor], shape: tuple[int, int, int], *, period: int = 4, repeats: int = 4,
                   seed: int = 0) -> DiagonalEstimate:
    """diag B of any linear map B given as ``apply`` (a batch of K tangents (K, C, H, W) → (K, C, H, W)), by
    coloured probing with random signs (see the module): R draws of C·p² probes each."""
    if period < 1 or repeats < 1:
        raise ValueError(f"period and repeats must be ≥ 1, got {period} and {repeats}")
    c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(repeats):
        signs = torch.randint(0, 2, (c, h, w), generator=gen).to(torch.float32) * 2 - 1
        V = probes((c, h, w), period, signs)
        BV = apply(V).cpu().to(torch.float64)  # (K, C, H, W)
        estimates.append((BV * V.to(torch.float64)).sum(0))  # s_i (B v_colour(i))_i at every pixel
    stack = torch.stack(estimates)
    mean = stack.mean(0)
    se = stack.std(0) / np.sqrt(repeats) if repeats > 1 else torch.full_like(mean, float("nan"))
    return DiagonalEstimate(mean.float(), se.float(), f"coloured probing (period {period}, {repeats} sign draws)",
                            repeats * c * period * period)


def jacobian_diagonal(handle: ModelHandle, y: ArrayOrTensor, sigma: SigmaLike = None, *, method: Method = "probing",
                      period: int = 4, repeats: int = 4, seed: int = 0,
                      projection: Callable[[Tensor], Tensor] | None = None) -> DiagonalEstimate:
    """diag ∂x̂/∂y at the image y (C, H, W), by coloured probing with random signs (see the module)
    or exactly (``method="exact"``, N products, N ≤ 4096). ``sigma`` is told to a non-blind denoiser.
    With ``projection`` P (a linear map on (K, C, H, W) batches), the diagonal of P A P instead."""
    if method not in ("probing", "exact"):
        raise ValueError(f"method must be 'probing' or 'exact', got {method!r}")
    if period < 1 or repeats < 1:
        raise ValueError(f"period and repeats must be ≥ 1, got {period} and {repeats}")
    with handle.lock:
        lin = linearize(handle, y, sigma)
        c, h, w = lin.shape
        if projection is None:
            apply = lin.jvp
        else:
            def apply(V: Tensor) -> Tensor:
                return projection(lin.jvp(projection(V.cpu())).cpu())  # P on CPU batches
        if method == "exact":
            if lin.n > MAX_DENSE:
                raise ValueError(f"method='exact' needs N = C·H·W ≤ {MAX_DENSE}, got {lin.n}: use method='probing'")
            eye = torch.eye(lin.n).reshape(lin.n, c, h, w)
            diag = apply(eye).reshape(lin.n, lin.n).diagonal().reshape(c, h, w).cpu()
            return DiagonalEstimate(diag, torch.zeros_like(diag), "exact", lin.n)
        return probe_diagonal(apply, (c, h, w), period=period, repeats=repeats, seed=seed)


_TOLD_SIGMA = object()  # posterior_std's default: tell the denoiser the noise level itself


def posterior_std(handle: ModelHandle, y: ArrayOrTensor, sigma: float | None = None, *, told: SigmaLike = _TOLD_SIGMA,
                  **options) -> PosteriorStd:
    """The per-pixel posterior standard deviation √(σ² A_ii) of a least-squares denoiser at y (C, H, W).

    ``sigma`` is the noise level of y; ``None`` — for blind denoisers only — uses the estimate
    σ̂² = ‖y − x̂(y)‖²/N. ``told`` is what the denoiser is told (default ``sigma``; a blind network ignores
    it): the Jacobian is the one of that call, as the filters tool's rows are. Negative diagonal estimates
    (noise of the estimator, or a denoiser that is not a least-squares one) are clipped to 0. ``options``
    go to :func:`jacobian_diagonal`.
    """
    if sigma is None:
        if not handle.blind:
            raise ValueError("a non-blind denoiser needs the noise level sigma")
        sigma_used = float(handle.estimate_sigma(y).reshape(-1)[0])
    else:
        sigma_used = float(sigma)
    diag = jacobian_diagonal(handle, y, sigma if told is _TOLD_SIGMA else told, **options)
    std = (sigma_used ** 2 * diag.diagonal.clamp_min(0)).sqrt()
    return PosteriorStd(std, sigma_used, diag)


@dataclass(frozen=True)
class ErrorCheck:
    """The actual error |x̂ − x| against a posterior std map: the fractions within 1 and 2 std, the RMS
    error and the RMS std it predicts, √mean(σ² A_ii)."""

    error: np.ndarray
    calibration: dict[float, float]
    rmse: float
    predicted_rmse: float


def check_against_error(std: ArrayOrTensor, denoised: ArrayOrTensor, clean: ArrayOrTensor) -> ErrorCheck:
    """:class:`ErrorCheck` of a std map (any shape with the image's pixels) on a denoised image with its clean one."""
    error = np.abs(np.asarray(denoised, np.float32) - np.asarray(clean, np.float32))
    s = np.asarray(std, np.float64).reshape(error.shape)
    return ErrorCheck(error, calibration(error, s), float(np.sqrt(np.mean(error.astype(np.float64) ** 2))),
                      float(np.sqrt(np.mean(s ** 2))))


def calibration(error: ArrayOrTensor, std: ArrayOrTensor, multiples: tuple[float, ...] = (1.0, 2.0)) -> dict[float, float]:
    """The fraction of pixels whose actual error |x̂ − x| is within k posterior standard deviations, per k
    (for a Gaussian posterior: 0.683 at k = 1, 0.954 at k = 2)."""
    e = torch.as_tensor(np.asarray(error, dtype=np.float64)).abs().reshape(-1)
    s = torch.as_tensor(np.asarray(std, dtype=np.float64)).reshape(-1)
    if e.shape != s.shape:
        raise ValueError(f"error and std must have the same number of pixels, got {e.numel()} and {s.numel()}")
    return {k: float((e <= k * s).to(torch.float64).mean()) for k in multiples}


def null_space_projection(measurement: Any) -> Callable[[Tensor], Tensor]:
    """P v = v − M Mᵀ v, the projection onto what the measurement x_c = Mᵀx leaves unknown ((K, C, H, W) batches)."""
    return lambda v: v - measurement.project(v.to(torch.float32)).to(v.dtype)


def reconstruction_std(handle: ModelHandle, y: ArrayOrTensor, sigma: float, measurement: Any, told: SigmaLike = None,
                       **options) -> PosteriorStd:
    """At an iterate y of Algorithm 2 with noise level σ: √(σ² diag(P A P)), P = I − MMᵀ.

    The measured part of x is known (Mᵀx = x_c), so only the unmeasured directions carry uncertainty;
    there Cov[x | y, x_c] ≈ σ² P A P (the second-order identity restricted to them). At the end of a run σ is
    the last σ_t, so this is the uncertainty *left at that noise level*; the spread of several samples is
    the uncertainty given the measurements alone, much larger. ``told`` is the σ the denoiser is told (as in
    the run: None for a blind one); ``options`` go to :func:`jacobian_diagonal`.
    """
    diag = jacobian_diagonal(handle, y, told, projection=null_space_projection(measurement), **options)
    return PosteriorStd((float(sigma) ** 2 * diag.diagonal.clamp_min(0)).sqrt(), float(sigma), diag)


def map_agreement(a: ArrayOrTensor, b: ArrayOrTensor, where: ArrayOrTensor | None = None) -> tuple[float, float]:
    """(Pearson correlation, median of a / median of b) of two maps over the pixels ``where`` (default all)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    m = np.ones_like(a, bool) if where is None else np.asarray(where, bool).ravel()
    a, b = a[m], b[m]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan"), float("nan")
    ratio = float(np.median(a) / np.median(b)) if np.median(b) > 0 else float("nan")
    return float(np.corrcoef(a, b)[0, 1]), ratio
