"""The statistics of :mod:`explorer.energies`: summary, histogram, a maximum-likelihood Gumbel fit,
percentile images and the reference energies of constant and uniform-noise images."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats

from .energies_cache import Target, _module
from .energies_compute import EnergyReport, image_energies
from .likelihood import CONTINUOUS, LN10, NLLQuantity, in_unit

EULER_GAMMA = 0.5772156649015329
DEFAULT_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def summary(values: np.ndarray) -> dict[str, float]:
    """count, mean, std (ddof 1), min, median, max and sample skewness of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no energies to summarise (every image failed?)")
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()),
            "skewness": float(stats.skew(v)) if v.size > 2 else 0.0}


def gumbel_fit(values: np.ndarray, side: str | None = None) -> dict[str, Any]:
    """Maximum-likelihood Gumbel fit, initialised by the method of moments.

    Right-skewed (``side="right"``, maxima): f(x) = (1/β) exp(−z − e^(−z)), z = (x − μ)/β, with mean
    μ + γβ and variance π²β²/6 (γ Euler's constant), so the moments give β₀ = s√6/π, μ₀ = x̄ − γβ₀.
    ``"left"`` fits the mirror image (minima). Default: the side of the sample skewness. The negative
    log-likelihood n log β + Σ z + Σ e^(−z) is minimised over (μ, log β) with L-BFGS-B.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 3 or x.std() == 0:
        raise ValueError(f"a Gumbel fit needs at least 3 distinct values, got {x.size}")
    side = side or ("right" if stats.skew(x) >= 0 else "left")
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    sign = 1.0 if side == "right" else -1.0
    y = sign * x
    beta0 = y.std(ddof=1) * math.sqrt(6) / math.pi
    mu0 = y.mean() - EULER_GAMMA * beta0

    def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
        mu, log_b = p
        b = math.exp(log_b)
        z = (y - mu) / b
        ez = np.exp(-z)
        f = y.size * log_b + z.sum() + ez.sum()
        dz = (1 - ez)  # ∂f/∂z per sample
        return float(f), np.array([-dz.sum() / b, y.size - (dz * z).sum()])

    res = optimize.minimize(nll, np.array([mu0, math.log(beta0)]), jac=True, method="L-BFGS-B")
    mu, beta = float(res.x[0]), float(math.exp(res.x[1]))
    return {"side": side, "loc": sign * mu, "scale": beta, "loc_moments": sign * mu0, "scale_moments": beta0,
            "log_likelihood": -float(res.fun), "converged": bool(res.success)}


def gumbel_pdf(x: np.ndarray, fit: dict[str, Any]) -> np.ndarray:
    """The fitted density at ``x``."""
    sign = 1.0 if fit["side"] == "right" else -1.0
    z = (sign * np.asarray(x, dtype=np.float64) - sign * fit["loc"]) / fit["scale"]
    return np.exp(-z - np.exp(-z)) / fit["scale"]


def log10_probability_ratio(nats: np.ndarray) -> float:
    """k such that p_max / p_min = 10^k between the most and the least probable image of a set:
    k = (max − min of −log p, in nats per image) / ln 10. For images of d values whose −log p spans
    [a, b] dB/dim, k = d·(b − a)/10 (Guth et al.: 2.55 to 36.95 dB/dim on 64×64, a ratio of about 10^14 092)."""
    v = np.asarray(nats, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no energies: no probability ratio")
    return float((v.max() - v.min()) / LN10)


def histogram(values: np.ndarray, bins: int | str = "auto") -> dict[str, list[float]]:
    counts, edges = np.histogram(values, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def percentile_indices(values: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, int]:
    """Index of the image at each percentile (nearest rank on the sorted energies), and of min and max."""
    order = np.argsort(values, kind="stable")
    n = len(values)
    out = {"min": int(order[0])}
    for p in percentiles:
        if not 0 <= p <= 100:
            raise ValueError(f"percentiles must be in [0, 100], got {p}")
        out[f"p{p:g}"] = int(order[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))])
    out["max"] = int(order[-1])
    return out


def reference_energies(model: Target, shape: tuple[int, int], levels: int = 11, noise_images: int = 8, seed: int = 0,
                       quantity: NLLQuantity = CONTINUOUS) -> dict[str, Any]:
    """NLL (nats, in ``quantity``) of constant images at ``levels`` gray levels in [0, 1] and of U[0, 1] noise images."""
    h, w = shape
    c = _module(model).channels
    grays = np.linspace(0.0, 1.0, levels)
    const = torch.from_numpy(grays.astype(np.float32)).view(-1, 1, 1, 1).expand(levels, c, h, w).contiguous()
    noise = torch.rand(noise_images, c, h, w, generator=torch.Generator().manual_seed(seed))
    e_const, e_noise = image_energies(model, const, quantity=quantity), image_energies(model, noise, quantity=quantity)
    return {"shape": [c, h, w], "gray_levels": grays.tolist(), "constant": e_const.tolist(),
            "uniform_noise": e_noise.tolist(), "uniform_noise_mean": float(e_noise.mean())}


def analyse(report: EnergyReport, model: Target, shape: tuple[int, int], unit: str = "bits/dim",
            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, Any]:
    """Summary, histogram, Gumbel fit and percentile images (as labels) in ``unit``; references in nats and ``unit``."""
    v = report.in_unit(unit)
    idx = percentile_indices(v, percentiles)
    refs = reference_energies(model, shape, quantity=report.quantity)
    d = int(np.prod(refs["shape"]))
    conv = (lambda e: np.asarray(in_unit(np.asarray(e, dtype=np.float64), d, unit)).tolist())
    return {
        "unit": unit,
        "quantity": {**report.quantity.spec(), "name": report.quantity.short(), "description": report.quantity.describe()},
        "normalized": report.normalized,
        "summary": summary(v),
        "mean_stderr_of_draws": report.mean_stderr(unit),
        "summary_nats": summary(report.values),
        "histogram": histogram(v),
        "gumbel": gumbel_fit(v) if len(v) >= 3 else None,
        "percentiles": {k: {"index": i, "label": report.labels[i], "value": float(v[i])} for k, i in idx.items()},
        "references": {**refs, "constant_" + unit: conv(refs["constant"]), "uniform_noise_" + unit: conv(refs["uniform_noise"])},
        "failures": [{"label": a, "reason": b} for a, b in report.failures],
        "cached": report.cached,
    }

