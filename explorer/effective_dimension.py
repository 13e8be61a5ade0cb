"""Effective dimension, Frobenius norm and symmetry of the Jacobian A = ∂x̂/∂y: tr A (the denoiser's
degrees of freedom), Σ s² = ‖A‖_F² (Mohan et al. 2020), their curves against σ, and ‖A − Aᵀ‖_F / ‖A‖_F;
exact from the dense A for small images, Hutchinson-style Monte-Carlo estimates otherwise.

σ convention (as everywhere in :mod:`explorer.jacobian`): ``f(handle, y, sigma=None, *, method, probes,
seed)``; the old positional order ``f(handle, y, method, probes, sigma, seed)`` still works, with a
DeprecationWarning.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .denoisers.base import SigmaLike
from .handle import ArrayOrTensor, ModelHandle
from .linearization import Linearization, _image, linearize

Method = Literal["auto", "exact", "hutchinson"]

#: ``method='auto'`` computes trace / Frobenius norm / symmetry exactly (dense Jacobian) up to this N = C·H·W.
EXACT_LIMIT = 1024
#: Default number of Rademacher probes of the Hutchinson-style estimators.
DEFAULT_PROBES = 64


class Estimate(NamedTuple):
    """A scalar with its provenance: exact (``probes == 0``, ``stderr == 0``) or a Monte-Carlo mean."""

    value: float
    stderr: float
    probes: int
    method: str

    def __float__(self) -> float:
        return self.value



class EffectiveDimCurve(NamedTuple):
    """tr A and Σ s² = ‖A‖_F² per noise level (numpy arrays), with standard errors (0 when exact)."""

    sigmas: np.ndarray
    trace: np.ndarray
    sum_sq: np.ndarray
    trace_stderr: np.ndarray
    sum_sq_stderr: np.ndarray
    method: str
    probes: int



def _old_order(name: str, sigma: Any, legacy: tuple, method: Any, probes: Any, seed: Any) -> tuple:
    """(sigma, method, probes, seed) of a call; a string where σ goes is the old positional order
    ``f(handle, y, method, probes, sigma, seed)`` (deprecated)."""
    if not isinstance(sigma, str):
        if legacy:
            raise TypeError(f"{name}() takes sigma as its only optional positional argument; "
                            "pass method=, probes= and seed= by keyword")
        return sigma, method, probes, seed
    warnings.warn(f"{name}(handle, y, method, probes, sigma, seed) is deprecated: call "
                  f"{name}(handle, y, sigma, method=..., probes=..., seed=...)", DeprecationWarning, stacklevel=3)
    if len(legacy) > 3:
        raise TypeError(f"{name}() got too many positional arguments")
    old = dict(zip(("probes", "sigma", "seed"), legacy))
    return old.get("sigma"), sigma, old.get("probes", probes), old.get("seed", seed)


def _resolve(method: Method, n: int) -> str:
    if method not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"method must be 'auto', 'exact' or 'hutchinson', got {method!r}")
    return ("exact" if n <= EXACT_LIMIT else "hutchinson") if method == "auto" else method


def _rademacher(lin: Linearization, probes: int, seed: int) -> Tensor:
    if probes < 2:
        raise ValueError(f"a Monte-Carlo estimate needs at least 2 probes, got {probes}")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 2, (probes, *lin.shape), generator=gen).to(lin.y.device, lin.y.dtype)
    return 2 * z - 1


def _mean(samples: Tensor, name: str) -> Estimate:
    s = samples.double()
    return Estimate(s.mean().item(), (s.std() / math.sqrt(len(s))).item(), len(s), name)


def _trace_and_fro(lin: Linearization, method: str, probes: int, seed: int) -> tuple[Estimate, Estimate]:
    """(tr A, ‖A‖_F²): exact from the dense A, or from Rademacher z: E[zᵀAz] = tr A, E‖Az‖² = ‖A‖_F²."""
    if method == "exact":
        A = lin.dense().double()
        return Estimate(A.trace().item(), 0.0, 0, "exact"), Estimate(A.square().sum().item(), 0.0, 0, "exact")
    z = _rademacher(lin, probes, seed)
    Az = lin.jvp(z).flatten(1).double()
    zf = z.flatten(1).double()
    return _mean((zf * Az).sum(1), "hutchinson"), _mean(Az.square().sum(1), "hutchinson")


def effective_dim(
    handle: ModelHandle,
    y: ArrayOrTensor,
    sigma: SigmaLike = None,
    *legacy: Any,
    method: Method = "auto",
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
) -> Estimate:
    """tr A = Σ_i ∂x̂_i/∂y_i (the degrees of freedom of the denoiser; Σ λ_i of A_s).

    ``'exact'``: from the dense Jacobian (N products). ``'hutchinson'``: mean of zᵀAz over ``probes``
    Rademacher vectors z (one batched JVP; variance 2 Σ_{i≠j} (A_s)_ij² / probes), returned with its
    standard error and the number of probes. ``'auto'``: exact when N ≤ EXACT_LIMIT.
    """
    sigma, method, probes, seed = _old_order("effective_dim", sigma, legacy, method, probes, seed)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        return _trace_and_fro(lin, _resolve(method, lin.n), probes, seed)[0]


def sum_sq_singular(
    handle: ModelHandle,
    y: ArrayOrTensor,
    sigma: SigmaLike = None,
    *legacy: Any,
    method: Method = "auto",
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
) -> Estimate:
    """Σ_k s_k² = ‖A‖_F² (the effective dimension of Mohan et al. 2020): exact (dense) or the mean of
    ‖Az‖² over Rademacher probes z (unbiased since E[zzᵀ] = I), with standard error and probe count."""
    sigma, method, probes, seed = _old_order("sum_sq_singular", sigma, legacy, method, probes, seed)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        return _trace_and_fro(lin, _resolve(method, lin.n), probes, seed)[1]


def effective_dim_curve(
    handle: ModelHandle,
    x: ArrayOrTensor,
    sigmas: Sequence[float],
    *,
    seed: int = 0,
    method: Method = "auto",
    probes: int = DEFAULT_PROBES,
    noise: ArrayOrTensor | None = None,
) -> EffectiveDimCurve:
    """tr A and ‖A‖_F² at y = x + σ z for each σ (same units as x), with one noise draw z ~ N(0, I)
    (seeded, shared across σ so the curve is smooth; ``noise`` gives z itself, e.g. the draw of an image
    analysed elsewhere, so the curve passes through its tr A). Non-blind denoisers are told σ. ``sigmas``
    are the levels swept (the noise added), not one σ told to the denoiser: hence their own name."""
    x = _image(handle, x)
    if noise is None:
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device, x.dtype)
    else:
        z = _image(handle, noise)
    rows = []
    with handle.lock:
        for s in sigmas:
            lin = Linearization(handle.model, x + float(s) * z, None if handle.blind else float(s))
            rows.append(_trace_and_fro(lin, _resolve(method, lin.n), probes, seed))
    tr, fro = zip(*rows)
    return EffectiveDimCurve(
        np.asarray(sigmas, dtype=float),
        np.array([e.value for e in tr]),
        np.array([e.value for e in fro]),
        np.array([e.stderr for e in tr]),
        np.array([e.stderr for e in fro]),
        tr[0].method,
        tr[0].probes,
    )


def symmetry(
    handle: ModelHandle,
    y: ArrayOrTensor,
    sigma: SigmaLike = None,
    *legacy: Any,
    method: Method = "auto",
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
) -> Estimate:
    """‖A − Aᵀ‖_F / ‖A‖_F (0 for a gradient field, e.g. an exact MMSE denoiser).

    Exact from the dense A, or the ratio estimator sqrt(Σ_p ‖(A − Aᵀ)z_p‖² / Σ_p ‖A z_p‖²) over
    Rademacher probes (one JVP + one VJP batch); its standard error is from the delta method.
    """
    sigma, method, probes, seed = _old_order("symmetry", sigma, legacy, method, probes, seed)
    with handle.lock:
        lin = linearize(handle, y, sigma)
        if _resolve(method, lin.n) == "exact":
            A = lin.dense().double()
            return Estimate(((A - A.T).norm() / A.norm()).item(), 0.0, 0, "exact")
        z = _rademacher(lin, probes, seed)
        Az, ATz = lin.jvp(z).flatten(1).double(), lin.vjp(z).flatten(1).double()
    a, b = (Az - ATz).square().sum(1), Az.square().sum(1)
    ratio = (a.mean() / b.mean()).item()
    se_ratio = ((a - ratio * b).std() / math.sqrt(probes) / b.mean()).item()
    r = math.sqrt(ratio)
    return Estimate(r, se_ratio / (2 * r) if r > 0 else 0.0, probes, "hutchinson")

