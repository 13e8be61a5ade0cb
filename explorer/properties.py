"""Measured properties of any denoiser: the lines of ``python -m explorer.report`` (issue #20).

Each function measures one property on given clean images x (a list of (H, W) arrays in [0, 1]) and
returns :class:`Property` lines (the number, its ideal, a pass / fail / note flag) and, where there is
one, the curve it was read from. The ideals are those of a least-squares, bias-free denoiser:

- homogeneity: x̂(αy) = α x̂(y) for α > 0 (Mohan, Kadkhodaie et al., ICLR 2020);
- local linearity: J(y) y = x̂(y) with J = ∂x̂/∂y (Euler's identity for a 1-homogeneous map);
- symmetry: ‖A − Aᵀ‖_F / ‖A‖_F = 0 (A = σ⁻² Cov[x | y] is a covariance, the Jacobian of a gradient);
- row sums A·1 ≈ 1 (each adaptive filter keeps the local mean);
- effective dimension tr A falls as σ grows (ICLR 2024: the GAHB shrinks to fewer, smoother terms);
- PSNR against σ inside and beyond the training range (a biased network collapses beyond it);
- blind noise estimation σ̂ = ‖y − x̂(y)‖/√N ≈ σ;
- Algorithm 1 chains converge (σ_t falls below σ_L) at the default settings;
- posterior calibration: |x̂ − x| within 1 / 2 posterior std √(σ² A_ii) for 68.3 / 95.4 % of pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .effective_dimension import effective_dim_curve, symmetry
from .handle import ModelHandle
from .jacobian import jvp, row_sums
from .metrics import psnr
from .posterior import check_against_error, posterior_std
from .sampling import sample

HOMOGENEITY_TOLERANCE = 1e-3  # relative; float32 networks are homogeneous to ~1e-6
LINEARITY_TOLERANCE = 1e-3
SYMMETRY_TOLERANCE = 0.05
ROW_SUM_TOLERANCE = 0.05
SIGMA_HAT_TOLERANCE = 0.10
CONVERGED_FRACTION = 0.75
CALIBRATION_TOLERANCE = 0.10


@dataclass(frozen=True)
class Property:
    """One measured line: ``value`` (with ``unit``) against ``ideal``; ``flag`` is 'pass', 'fail' or 'note'
    (a number with no pass/fail meaning for this denoiser); ``key`` names the measurement that made it."""

    key: str
    title: str
    value: float
    ideal: str
    flag: str
    detail: str = ""
    unit: str = ""


@dataclass
class Measured:
    """The lines of one measurement and the curve they were read from (for the report's plots)."""

    lines: list[Property]
    curve: dict[str, Any] = field(default_factory=dict)


def _flag(ok: bool) -> str:
    return "pass" if ok else "fail"


def noisy(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """y = x + σz with z ~ N(0, I) from ``seed``."""
    return (x + sigma * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


def told(handle: ModelHandle, sigma: float) -> float | None:
    """What the denoiser is told about σ: nothing if it is blind."""
    return None if handle.blind else float(sigma)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖."""
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def training_range(card: dict[str, Any] | None) -> tuple[float, float] | None:
    """The σ range the model was trained on, in [0, 1] units, from its card (None if not recorded)."""
    training = (card or {}).get("training") or {}
    noise = training.get("noise") or {}
    if "sigma_max" in noise:
        return float(noise.get("sigma_min", 0.0)), float(noise["sigma_max"])
    if training.get("noise_range"):  # converted lab models: 8-bit units
        lo, hi = training["noise_range"]
        return float(lo) / 255, float(hi) / 255
    return None


# --------------------------------------------------------------------------------- local linearity
def homogeneity(handle: ModelHandle, images: Sequence[np.ndarray], sigma: float, alphas: Sequence[float] = (0.5, 1.7, 3.0),
                seed: int = 0) -> Measured:
    """max over images and α of ‖x̂(αy) − αx̂(y)‖ / ‖αx̂(y)‖ (a non-blind denoiser is told the same σ for both:
    homogeneity in y at a fixed noise level, which every linear filter has)."""
    errors = []
    for k, x in enumerate(images):
        y = noisy(x, sigma, seed + k)
        base = np.asarray(handle.denoise(y, told(handle, sigma)), np.float64)
        for a in alphas:
            scaled = np.asarray(handle.denoise((a * y).astype(np.float32), told(handle, sigma)), np.float64)
            errors.append(relative(scaled, a * base))
    worst = max(errors)
    return Measured([Property("homogeneity", "homogeneity error max ‖x̂(αy) − αx̂(y)‖/‖αx̂(y)‖", worst, "0",
                              _flag(worst < HOMOGENEITY_TOLERANCE),
                              f"α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}}, σ = {sigma:g}, {len(images)} images; "
                              f"pass below {HOMOGENEITY_TOLERANCE:g}")])


def linearity(handle: ModelHandle, images: Sequence[np.ndarray], sigma: float, seed: int = 0) -> Measured:
    """max over images of ‖J(y)y − x̂(y)‖ / ‖x̂(y)‖ (one Jacobian-vector product with v = y)."""
    errors = []
    for k, x in enumerate(images):
        y = noisy(x, sigma, seed + k)
        den = np.asarray(handle.denoise(y, told(handle, sigma)), np.float64)
        jy = jvp(handle, y, handle.to_tensor(y), told(handle, sigma))[0].detach().cpu().numpy().reshape(den.shape)
        errors.append(relative(jy, den))
    worst = max(errors)
    return Measured([Property("linearity", "local linearity max ‖J(y)y − x̂(y)‖/‖x̂(y)‖", worst, "0",
                              _flag(worst < LINEARITY_TOLERANCE),
                              f"σ = {sigma:g}, {len(images)} images; pass below {LINEARITY_TOLERANCE:g}")])


def jacobian_symmetry(handle: ModelHandle, image: np.ndarray, sigma: float, seed: int = 0, probes: int = 32) -> Measured:
    """‖A − Aᵀ‖_F / ‖A‖_F at one noisy image (exact up to N = 1024, else the Rademacher ratio estimator)."""
    y = noisy(image, sigma, seed)
    est = symmetry(handle, y, told(handle, sigma), probes=probes, seed=seed)
    return Measured([Property("symmetry", "Jacobian symmetry ‖A − Aᵀ‖_F/‖A‖_F", est.value, "0",
                              "pass" if est.value < SYMMETRY_TOLERANCE else "note",
                              f"{est.method}" + (f", {est.probes} probes, ± {est.stderr:.3f}" if est.probes else "")
                              + f", σ = {sigma:g}; a trained network is only approximately a gradient field")])


def filter_row_sums(handle: ModelHandle, image: np.ndarray, sigma: float, seed: int = 0) -> Measured:
    """The mean and spread over pixels of the row sums Σ_j A_ij = (A·1)_i."""
    y = noisy(image, sigma, seed)
    sums = row_sums(handle, y, told(handle, sigma)).detach().cpu().numpy().ravel()
    mean = float(sums.mean())
    return Measured([Property("row_sums", "filter row sums Σⱼ Aᵢⱼ (mean over pixels)", mean, "1",
                              _flag(abs(mean - 1) < ROW_SUM_TOLERANCE),
                              f"spread (std over pixels) {sums.std():.3f}, 5–95 % [{np.percentile(sums, 5):.3f}, "
                              f"{np.percentile(sums, 95):.3f}], σ = {sigma:g}")])


# --------------------------------------------------------------------------------- against σ
def effective_dimension(handle: ModelHandle, image: np.ndarray, sigmas: Sequence[float], seed: int = 0,
                        probes: int = 16) -> Measured:
    """tr A / N and ‖A‖_F² / N against σ, and the slope of log tr A against log σ (negative: fewer dimensions)."""
    curve = effective_dim_curve(handle, image, sigmas, seed=seed, probes=probes)
    n = image.size
    tr, fro = np.asarray(curve.trace) / n, np.asarray(curve.sum_sq) / n
    ok = tr > 0
    slope = float(np.polyfit(np.log(np.asarray(sigmas)[ok]), np.log(tr[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
    return Measured([Property("effective_dimension", "effective dimension: slope of log tr A against log σ", slope, "< 0",
                              _flag(slope < 0),
                              f"tr A/N from {tr[0]:.3f} (σ = {sigmas[0]:g}) to {tr[-1]:.3f} (σ = {sigmas[-1]:g}); "
                              f"Σs²/N from {fro[0]:.3f} to {fro[-1]:.3f}; {curve.method}")],
                    dict(sigma=np.asarray(sigmas, float), trace=tr, fro2=fro))


def psnr_curve(handle: ModelHandle, images: Sequence[np.ndarray], sigmas: Sequence[float],
               trained: tuple[float, float] | None, seed: int = 0) -> Measured:
    """Mean PSNR of x̂ (clipped to [0, 1]) and of the noisy input against σ; lines at the top of the training
    range and at the largest σ beyond it (the gain over the input, in dB)."""
    out, inp = [], []
    for s in sigmas:
        ps, pi = [], []
        for k, x in enumerate(images):
            y = noisy(x, s, seed + k)
            ps.append(psnr(np.clip(np.asarray(handle.denoise(y, told(handle, s))), 0, 1), x))
            pi.append(psnr(y, x))
        out.append(float(np.mean(ps)))
        inp.append(float(np.mean(pi)))
    out_a, inp_a, s_a = np.asarray(out), np.asarray(inp), np.asarray(sigmas, float)
    gain = out_a - inp_a
    curve = dict(sigma=s_a, psnr=out_a, input_psnr=inp_a, trained=trained)
    if trained is None:
        best = int(np.argmax(gain))
        return Measured([Property("psnr", "PSNR gain over the noisy input (training range unknown)", float(gain.min()),
                                  "> 0 dB", _flag(gain.min() > 0),
                                  f"smallest gain over σ ∈ [{s_a[0]:g}, {s_a[-1]:g}]; largest {gain[best]:.2f} dB at "
                                  f"σ = {s_a[best]:g}", "dB")], curve)
    inside = s_a <= trained[1] + 1e-4  # the sweep is rounded to 4 decimals
    top = int(np.nonzero(inside)[0][-1]) if inside.any() else 0
    lines = [Property("psnr", f"PSNR at the top of the training range (σ = {s_a[top]:g})", float(out_a[top]),
                      f"> input {inp_a[top]:.2f} dB", _flag(gain[top] > 0), f"gain {gain[top]:+.2f} dB", "dB")]
    if (~inside).any():
        far = len(s_a) - 1
        lines.append(Property("psnr_beyond", f"PSNR beyond the training range (σ = {s_a[far]:g}, "
                                             f"{s_a[far] / max(trained[1], 1e-9):.1f}× its top)", float(out_a[far]),
                              f"gain ≥ the gain at the top ({gain[top]:+.2f} dB)", _flag(gain[far] >= gain[top]),
                              f"gain over the input {gain[far]:+.2f} dB (an MMSE denoiser's gain grows with σ: "
                              f"its MSE/σ² falls; a network that does not generalize collapses)", "dB"))
    return Measured(lines, curve)


def noise_estimation(handle: ModelHandle, images: Sequence[np.ndarray], sigmas: Sequence[float], seed: int = 0) -> Measured:
    """Blind σ̂ = ‖y − x̂(y)‖/√N against the true σ: the largest relative error |σ̂ − σ|/σ over the σ given."""
    if not handle.blind:
        return Measured([Property("sigma_hat", "blind noise estimation", float("nan"), "—", "note",
                                  "not blind: the denoiser is told σ")])
    est = []
    for s in sigmas:
        est.append(float(np.mean([float(handle.estimate_sigma(noisy(x, s, seed + k)).reshape(-1)[0])
                                  for k, x in enumerate(images)])))
    rel = np.abs(np.asarray(est) - np.asarray(sigmas)) / np.asarray(sigmas)
    worst = int(np.argmax(rel))
    return Measured([Property("sigma_hat", "blind noise estimation max |σ̂ − σ|/σ", float(rel[worst]), "0",
                              _flag(rel[worst] < SIGMA_HAT_TOLERANCE),
                              f"worst at σ = {sigmas[worst]:g} (σ̂ = {est[worst]:.4f}); σ̂ = ‖y − x̂(y)‖/√N; "
                              f"pass below {SIGMA_HAT_TOLERANCE:g}")],
                    dict(sigma=np.asarray(sigmas, float), sigma_hat=np.asarray(est)))


# --------------------------------------------------------------------------------- prior and posterior
def chains_converge(handle: ModelHandle, size: int, chains: int = 4, seed: int = 0, max_steps: int = 3000) -> Measured:
    """The fraction of Algorithm 1 chains (default β = 0.5, h₀ = 0.01, σ_L = 0.01) that reach σ_t ≤ σ_L."""
    result = sample(handle, (chains, handle.channels, size, size), seed=seed, max_steps=max_steps, snapshot_every=None)
    fraction = float(np.mean([s == "converged" for s in result.status]))
    steps = result.steps.cpu().numpy()
    return Measured([Property("chains", "Algorithm 1 chains that converge (default β 0.5, h₀ 0.01, σ_L 0.01)",
                              fraction, "1", _flag(fraction >= CONVERGED_FRACTION),
                              f"{chains} chains at {size}×{size}, {int(steps.min())}–{int(steps.max())} steps; "
                              f"statuses: {', '.join(sorted(set(result.status)))}")],
                    dict(samples=result.image.detach().cpu().numpy()[:, 0]))


def posterior_calibration(handle: ModelHandle, image: np.ndarray, sigma: float, seed: int = 0) -> Measured:
    """The fractions of pixels with |x̂ − x| within 1 and 2 posterior std √(σ² A_ii) (coloured probing)."""
    y = noisy(image, sigma, seed)
    den = np.asarray(handle.denoise(y, told(handle, sigma)), np.float32)
    ps = posterior_std(handle, y, sigma, told=told(handle, sigma), seed=seed)
    std = ps.std.numpy().reshape(image.shape)
    check = check_against_error(std, den, image)
    within = check.calibration
    return Measured([Property("calibration", "posterior calibration: |x̂ − x| within 1 std", within[1.0], "0.683",
                              _flag(abs(within[1.0] - 0.683) < CALIBRATION_TOLERANCE),
                              f"within 2 std {within[2.0]:.3f} (ideal 0.954); RMS error {check.rmse:.4f}, "
                              f"predicted √mean(σ²Aᵢᵢ) {check.predicted_rmse:.4f}; σ = {sigma:g}, {ps.diagonal.method}")],
                    dict(std=std, error=check.error, noisy=y, denoised=den, clean=image))


def as_images(arrays: Sequence[Any]) -> list[np.ndarray]:
    """Clean (H, W) float32 images from arrays or tensors (the first channel of (C, H, W) ones)."""
    out = []
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        out.append(np.asarray(a[0] if a.ndim == 3 else a, np.float32))
    return out
