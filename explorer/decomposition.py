"""Denoising as a multiscale decomposition (Milanfar & Delbracio, "Denoising: a powerful building-block
for imaging, inverse problems and machine learning", 2024).

For any denoiser f and n ≥ 1, with f⁰(x) = x and f^{k+1}(x) = f(f^k(x)),

    x = fⁿ(x) + Σ_{k=0}^{n−1} r_k,        r_k = f^k(x) − f^{k+1}(x),

a telescoping sum, so it holds for every f, linear or not. r_0 = x − f(x) is what one application
removes, r_k what the (k+1)-th removes from the image the first k left; fⁿ(x) is the base. For a
linear filter f = G the layers are r_k = G^k (I − G) x, the bands of a non-decimated pyramid (for
Gaussian smoothing at a fixed width, differences of Gaussians of widths s√k and s√(k+1)). Each layer
has the energy ‖r_k‖²/N (N values in x), and so has the base, ‖fⁿ(x)‖²/N.

Noise level. f(u) = D(u, s) for a denoiser D (an :class:`explorer.ModelHandle`). By default a blind
denoiser (``handle.blind``) is told nothing at every application, s = None: it estimates the noise
level of each f^k(x) itself, so f is the map the denoiser *is*. A non-blind one is told the given
``sigma`` at every application (required: a :class:`ValueError` says so when it is missing).
``fixed_strength=True`` tells every denoiser ``sigma`` at every application: a blind denoiser that
takes σ (the classical ones) then stops re-estimating it and f is one fixed filter; a blind network,
which has no σ input, is unchanged.

Precision. The iterates f^k(x) are what the denoiser returns (float32 for our models) and are passed
on unchanged to the next application; their copies in the result are float64 (exact), the layers are
differences taken in float64 and the reconstruction fⁿ(x) + Σ r_k is summed in float64, so its error
is float64 rounding (≈ 1e-16 of ‖x‖), not the denoiser's float32 precision.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ArrayOrTensor = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Decomposition:
    """x = ``base`` + Σ_k ``layers[k]`` (module docstring), float64, with the energies and the error.

    ``image``: x; ``layers``: (n, *x.shape), r_k = f^k(x) − f^{k+1}(x); ``base``: fⁿ(x); ``sigma``: what f was
    told at every application (None: blind); ``energies``: ‖r_k‖²/N, shape (n,); ``base_energy``: ‖fⁿ(x)‖²/N;
    ``error``: ‖fⁿ(x) + Σ r_k − x‖ (the sum in float64); ``relative_error``: error / ‖x‖ (0 for x = 0).
    """

    image: np.ndarray
    layers: np.ndarray
    base: np.ndarray
    sigma: float | None
    energies: np.ndarray
    base_energy: float
    error: float
    relative_error: float

    @property
    def n(self) -> int:
        """The number of applications of f (and of layers)."""
        return int(self.layers.shape[0])


def _as_float64(v: ArrayOrTensor) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", torch.float64).numpy()
    return np.asarray(v, dtype=np.float64)


def sigma_told(handle: Any, sigma: float | None = None, fixed_strength: bool = False) -> float | None:
    """What f tells the denoiser at every application: None for a blind one (unless ``fixed_strength``), else
    ``sigma``, which must then be given, finite and ≥ 0 (``ValueError`` naming it otherwise)."""
    if getattr(handle, "blind", True) and not fixed_strength:
        return None
    if sigma is None:
        why = ("fixed_strength tells every denoiser sigma" if fixed_strength else
               f"{getattr(handle, 'name', 'the denoiser')} is not blind and is told sigma")
        raise ValueError(f"sigma is required: {why} at every application")
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number ≥ 0, got {sigma!r}")
    return float(sigma)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of applications of the denoiser) must be an integer ≥ 1, got {n!r}")
    return int(n)


def iterates(handle: Any, x: ArrayOrTensor, n: int, sigma: float | None = None,
             fixed_strength: bool = False) -> Iterator[np.ndarray]:
    """f(x), f²(x), …, fⁿ(x) as float64 arrays, one application at a time (``handle.denoise``).

    ``x``: an (H, W) or (H, W, C) array or a (B, C, H, W) tensor, as ``handle.denoise`` takes. Each
    application is given the previous output as the denoiser returned it. σ: :func:`sigma_told`.
    Arguments are checked when called, before the first application.
    """
    n, told = _check_n(n), sigma_told(handle, sigma, fixed_strength)
    u = x if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)

    def run(u: ArrayOrTensor) -> Iterator[np.ndarray]:
        for _ in range(n):
            u = handle.denoise(u, told)
            yield _as_float64(u)

    return run(u)


def from_iterates(x: ArrayOrTensor, applied: Sequence[np.ndarray], sigma: float | None = None) -> Decomposition:
    """The decomposition of x from its iterates ``applied`` = [f(x), …, fⁿ(x)] (n ≥ 1), all in float64."""
    image = _as_float64(x)
    if len(applied) < 1:
        raise ValueError("at least one iterate f(x) is needed")
    chain = np.stack([image, *(_as_float64(a) for a in applied)])
    if chain.shape[1:] != image.shape:
        raise ValueError(f"the iterates have shape {chain.shape[1:]}, x has {image.shape}")
    layers = chain[:-1] - chain[1:]
    base = chain[-1]
    size = max(image.size, 1)
    error = float(np.linalg.norm((base + layers.sum(axis=0) - image).ravel()))
    norm = float(np.linalg.norm(image.ravel()))
    return Decomposition(image=image, layers=layers, base=base, sigma=sigma,
                         energies=np.square(layers).reshape(len(layers), -1).sum(axis=1) / size,
                         base_energy=float(np.square(base).sum() / size), error=error,
                         relative_error=error / norm if norm > 0 else error)


def multiscale_decomposition(handle: Any, x: ArrayOrTensor, n: int, sigma: float | None = None,
                             fixed_strength: bool = False) -> Decomposition:
    """x = fⁿ(x) + Σ_{k<n} r_k with r_k = f^k(x) − f^{k+1}(x), f = ``handle.denoise`` (module docstring).

    ``n`` ≥ 1 applications; ``sigma``: what a non-blind denoiser (or, with ``fixed_strength``, every
    denoiser) is told at each one (:func:`sigma_told`). A failing denoiser's error propagates.
    """
    told = sigma_told(handle, sigma, fixed_strength)
    return from_iterates(x, list(iterates(handle, x, n, sigma, fixed_strength)), told)
