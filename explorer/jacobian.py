"""The Jacobian A = ∂x̂/∂y of a denoiser at a noisy image y, matrix-free.

A bias-free network is locally linear, x̂(y) = A_y y (Mohan*, Kadkhodaie* et al., ICLR 2020): row i of
A is the adaptive filter that computes pixel i, and the singular vectors / eigenvectors of A form the
geometry-adaptive harmonic basis (Kadkhodaie et al., ICLR 2024). Everything is built on batched JVPs
A v and VJPs Aᵀ u of a :class:`~explorer.linearization.Linearization` (:mod:`explorer.linearization`:
the ReLU-mask replay fast path); the block Krylov solvers are in :mod:`explorer.krylov`, the traces and
norms in :mod:`explorer.effective_dimension`. This module is the public entry point and re-exports them.

Public API: :func:`jvp`, :func:`vjp`, :func:`row`, :func:`row_sums`, :func:`full_jacobian`,
:func:`top_singular`, :func:`effective_dim`, :func:`sum_sq_singular`, :func:`effective_dim_curve`,
:func:`symmetry`, :func:`shrinkage`, :func:`partial_shrinkage`, :func:`harmonic_basis` (both spectra from one
Krylov space), and :class:`Linearization` for repeated
products at one y. Results are tensors on the handle's device; images are (C, H, W), stacks of images
(K, C, H, W).

σ convention: every function taking one noise level calls it ``sigma`` and takes it as the first
optional argument, right after what the function is about — ``jvp(handle, y, V, sigma)``,
``row(handle, y, pixel, sigma)``, ``top_singular(handle, y, k, sigma)``, ``effective_dim(handle, y, sigma)``,
``linearize(handle, y, sigma)`` —, every other option keyword-only. ``sigma`` is the σ *told* to a
non-blind denoiser (``None``: a blind one estimates it; the analyses differentiate at that σ held
fixed). :func:`effective_dim_curve` sweeps ``sigmas``, the noise added, and tells non-blind models each.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .denoisers.base import SigmaLike
from .effective_dimension import (  # noqa: F401
    DEFAULT_PROBES, EXACT_LIMIT, EffectiveDimCurve, Estimate, Method, effective_dim, effective_dim_curve,
    sum_sq_singular, symmetry,
)
from .handle import ArrayOrTensor, ModelHandle
from .krylov import _eig_krylov, _joint_krylov, _svd_krylov
from .linearization import (  # noqa: F401
    MAX_BATCH_PIXELS, MAX_DENSE, Linearization, Route, _image, _stack, is_piecewise_affine, linearize,
)


class SVD(NamedTuple):
    """Top-k singular triplets of A: A v_k = s_k u_k, as images (k, C, H, W)."""

    values: Tensor
    U: Tensor
    V: Tensor



class Shrinkage(NamedTuple):
    """Top-k eigenpairs of A_s = (A + Aᵀ)/2 and x̂_k = Σ_{i≤k} λ_i ⟨y, e_i⟩ e_i (a (C, H, W) image)."""

    eigenvalues: Tensor
    eigenvectors: Tensor
    reconstruction: Tensor



# --------------------------------------------------------------------------- products and rows


def jvp(handle: ModelHandle, y: ArrayOrTensor, V: Tensor, sigma: SigmaLike = None, *, path: Route = "auto") -> Tensor:
    """A v = ∂x̂/∂y|_y · v for an image (C, H, W) or a stack (K, C, H, W), batched."""
    V, single = _stack(V)
    with handle.lock:
        out = linearize(handle, y, sigma, path=path).jvp(V)
    return out[0] if single else out


def vjp(handle: ModelHandle, y: ArrayOrTensor, U: Tensor, sigma: SigmaLike = None, *, path: Route = "auto") -> Tensor:
    """Aᵀ u for an image (C, H, W) or a stack (K, C, H, W), batched."""
    U, single = _stack(U)
    with handle.lock:
        out = linearize(handle, y, sigma, path=path).vjp(U)
    return out[0] if single else out


Pixel = tuple[int, int] | tuple[int, int, int]


def row(
    handle: ModelHandle, y: ArrayOrTensor, pixel: Pixel | Sequence[Pixel], sigma: SigmaLike = None, *, channel: int = 0
) -> Tensor:
    """The adaptive filter A[(c, i, j), :] = ∇_y x̂_{c,i,j}(y) as an image (C, H, W); x̂_{c,i,j} = ⟨filter, y⟩ if bias-free.

    ``pixel`` is (i, j) (channel ``channel``) or (c, i, j); a list of pixels gives a (P, C, H, W) stack
    computed in one batched VJP.
    """
    single = len(pixel) in (2, 3) and all(isinstance(p, (int, np.integer)) for p in pixel)
    pixels = [pixel] if single else list(pixel)
    y = _image(handle, y)
    C, H, W = y.shape[1:]
    E = torch.zeros(len(pixels), C, H, W, dtype=y.dtype, device=y.device)
    for k, p in enumerate(pixels):
        c, i, j = (channel, *p) if len(p) == 2 else p
        if not (0 <= c < C and 0 <= i < H and 0 <= j < W):
            raise IndexError(f"pixel {tuple(p)} (channel {c}) is outside the {C}×{H}×{W} image")
        E[k, c, i, j] = 1.0
    with handle.lock:
        rows = linearize(handle, y, sigma).vjp(E)
    return rows[0] if single else rows


def row_sums(handle: ModelHandle, y: ArrayOrTensor, sigma: SigmaLike = None) -> Tensor:
    """Σ_j A_ij for every pixel i, i.e. A·1, as an image (C, H, W) (≈ 1 where the denoiser preserves the local mean)."""
    y = _image(handle, y)
    with handle.lock:
        return linearize(handle, y, sigma).jvp(torch.ones_like(y))[0]


def full_jacobian(handle: ModelHandle, y: ArrayOrTensor, sigma: SigmaLike = None) -> Tensor:
    """The dense A (N × N), A[i, j] = ∂x̂_i/∂y_j with pixels in (C, H, W) raster order; N ≤ MAX_DENSE."""
    with handle.lock:
        return linearize(handle, y, sigma).dense()



# --------------------------------------------------------------------------- matrix-free spectra


def top_singular(
    handle: ModelHandle,
    y: ArrayOrTensor,
    k: int,
    sigma: SigmaLike = None,
    *,
    oversample: int | None = None,
    steps: int = 10,
    tol: float = 1e-3,
    seed: int = 0,
    callback: Any = None,
) -> SVD:
    """The k largest singular values s (k,) of A and their vectors, A v_k = s_k u_k, as images (k, C, H, W).

    Matrix-free randomized block Krylov: block b = k + oversample (default max(8, k/2)) random starts,
    up to ``steps`` Krylov steps of b JVPs + b VJPs each (clusters of up to b equal values are
    resolved), Rayleigh–Ritz on the whole Krylov space, stopping once every ‖A v_k − s_k u_k‖ ≤
    tol · s_1 (singular values are then accurate to ~tol² s_1 / gap). Signs: each u_k sums to ≥ 0.
    ``callback(step, steps)``, if given, is called as the Krylov steps go (progress bars).
    """
    y = _image(handle, y)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        s, U, V = _svd_krylov(lin, k, oversample, steps, tol, seed, callback)
    cast = dict(dtype=y.dtype, device=y.device)
    return SVD(s.to(**cast), U.to(**cast).reshape(k, *lin.shape), V.to(**cast).reshape(k, *lin.shape))



def shrinkage(
    handle: ModelHandle,
    y: ArrayOrTensor,
    k: int,
    sigma: SigmaLike = None,
    *,
    oversample: int | None = None,
    steps: int = 10,
    tol: float = 1e-3,
    seed: int = 0,
    callback: Any = None,
) -> Shrinkage:
    """x̂ as adaptive shrinkage: the top-k eigenpairs (λ_i, e_i) of A_s = (A + Aᵀ)/2 (matrix-free block
    Lanczos, each product one JVP + one VJP; ``callback(step, steps)`` as in :func:`top_singular`) and x̂_k = Σ_{i≤k} λ_i ⟨y, e_i⟩ e_i, which → A_s y ≈ x̂(y) as k → N."""
    y = _image(handle, y)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        lam, E = _eig_krylov(lin, k, oversample, steps, tol, seed, callback)
    recon = partial_shrinkage(lam, E.reshape(k, *lin.shape), y[0].to(E.dtype))
    cast = dict(dtype=y.dtype, device=y.device)
    return Shrinkage(lam.to(**cast), E.to(**cast).reshape(k, *lin.shape), recon.to(**cast))


class HarmonicBasis(NamedTuple):
    """:func:`harmonic_basis`'s result: the top-k SVD of A and the eigen-shrinkage of A_s from one Krylov space."""

    svd: SVD
    shrinkage: Shrinkage


def harmonic_basis(
    handle: ModelHandle,
    y: ArrayOrTensor,
    k: int,
    sigma: SigmaLike = None,
    *,
    block: int | None = None,
    steps: int = 10,
    tol: float = 1e-3,
    seed: int = 0,
    callback: Any = None,
) -> HarmonicBasis:
    """:func:`shrinkage` and an approximate :func:`top_singular` from one Krylov space, for the products
    of :func:`shrinkage` alone.

    Block Lanczos for A_s = (A + Aᵀ)/2 (blocks of ``block`` rows, default k + max(8, k/2); b < k is
    allowed and, for the same products, reaches a higher polynomial degree), up to ``steps`` extensions
    of one JVP + one VJP batch each, stopping as :func:`shrinkage` does; the eigenpairs of A_s come by
    Rayleigh–Ritz. The singular triplets of A come by Rayleigh–Ritz on the *same* space from the JVPs
    (or VJPs) already made: no symmetry is assumed, the values are lower bounds s_i ≤ s_i(A), and
    A v_i = s_i u_i holds exactly (or Aᵀ u_i = s_i v_i), but their accuracy depends on A's top singular
    space lying near A_s's top eigenspace, a nearly symmetric A as for bias-free denoisers (measured on
    bf-natural-gray at 64×64, k = 64: within 1.5 % of a converged :func:`top_singular`, see
    benchmarks/bench_jacobian.py). Where the singular values matter and A may be far from symmetric,
    use :func:`top_singular`."""
    y = _image(handle, y)
    b = block if block is not None else k + max(8, k // 2)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        (s, U, V), (lam, E) = _joint_krylov(lin, k, b, steps, tol, seed, callback)
    recon = partial_shrinkage(lam, E.reshape(k, *lin.shape), y[0].to(E.dtype))
    cast = dict(dtype=y.dtype, device=y.device)
    shape = (k, *lin.shape)
    return HarmonicBasis(SVD(s.to(**cast), U.to(**cast).reshape(shape), V.to(**cast).reshape(shape)),
                         Shrinkage(lam.to(**cast), E.to(**cast).reshape(shape), recon.to(**cast)))


def partial_shrinkage(eigenvalues: Any, eigenvectors: Any, y: Any, terms: int | None = None) -> Any:
    """x̂_K = Σ_{k<K} λ_k ⟨y, e_k⟩ e_k, the first K = ``terms`` (default: all) terms of the shrinkage sum.

    ``eigenvectors`` (K, *shape) are orthonormal images (e.g. :class:`Shrinkage`'s, or one channel of
    them, ``eigenvectors[:, 0]`` with ``y`` (H, W)), ``eigenvalues`` (K,) their λ, ``y`` an image of that
    shape. numpy arrays give a float64 array, tensors a tensor; both of ``y``'s shape. With all terms of
    :func:`shrinkage`'s eigenpairs this is its ``reconstruction``."""
    if isinstance(eigenvectors, Tensor):
        lam = torch.as_tensor(eigenvalues).to(eigenvectors)
        lam = lam[:terms] if terms is not None else lam
        E = eigenvectors[:len(lam)].reshape(len(lam), -1)
        coef = lam * (E @ torch.as_tensor(y).to(E).reshape(-1))
        return (coef @ E).reshape(y.shape)
    lam = np.asarray(eigenvalues, np.float64)[:terms]
    E = np.asarray(eigenvectors, np.float64)[:len(lam)].reshape(len(lam), -1)
    coef = lam * (E @ np.asarray(y, np.float64).ravel())
    return (coef @ E).reshape(np.shape(y))

