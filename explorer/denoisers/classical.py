"""Classical denoisers in the ``Denoiser`` protocol: Gaussian smoothing, Wiener filter, Haar shrinkage.

All are pure torch and differentiable in y (and in a given σ), batched over (B, C, H, W), any C and H × W.

Noise level. Each takes ``sigma`` (a float or one value per image). With ``sigma=None`` (blind use,
e.g. inside the coarse-to-fine sampler) σ is estimated from the image by Donoho's robust rule on the
finest-scale diagonal Haar coefficients d = (y[2i,2j] − y[2i,2j+1] − y[2i+1,2j] + y[2i+1,2j+1]) / 2,
which are ~N(0, σ²) for white noise on a smooth image:  σ̂ = median(|d|) / 0.6745
(:func:`estimate_noise_sigma`; pooled over the channels of each image). σ̂(αy) = α σ̂(y).

Analyses at a fixed σ. In blind use the estimate is computed **detached** (:func:`noise_level`): the
Jacobian ∂x̂/∂y, the adaptive filters and every other analysis (:mod:`explorer.jacobian`) see the
filter at σ = σ̂(y) held constant, x̂(y) = A(σ̂) y, not the derivative of the estimate itself. That
derivative is an artefact of the rule, not of the filter: a median of one Haar band picks one
coefficient, so ∂σ̂/∂y is nonzero at the four pixels of that one coefficient, and the blind Gaussian's
row of the Jacobian then carried a weight of ±0.62 at one far-away pixel, larger than its 0.45 centre
weight. Values are unchanged; only gradients no longer flow into σ̂.

Frequencies. f = (f_y, f_x) in cycles per pixel (``torch.fft.fftfreq``), |f| ≤ 1/2 per axis. A
Fourier filter multiplies the unitary DFT of the image by an even gain g(f).

``bias_free`` follows the protocol: x̂(αy) = αx̂(y) for α > 0 in blind use (``sigma=None``). The
σ-adaptive Gaussian and the Wiener filter are linear in y at a *given* σ, but in blind use σ̂ changes
the filter with the contrast of y, so they are not bias-free; a fixed-width Gaussian is, and so is
Haar shrinkage with τ = kσ̂.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .base import Denoiser, SigmaLike, as_sigma

BOUNDARIES = ("reflect", "circular")
MAD_TO_SIGMA = 0.6745  # median(|z|) for z ~ N(0, 1)


class BadImageError(ValueError):
    """The input is not a (B, C, H, W) batch these denoisers can handle."""


class BadSigmaError(ValueError):
    """A noise level that is negative, non-finite or of the wrong length."""


def check_batch(y: Tensor, min_side: int = 1) -> None:
    """Raise :class:`BadImageError` unless y is a floating (B, C, H, W) tensor with sides ≥ ``min_side``."""
    if not isinstance(y, Tensor) or y.ndim != 4:
        raise BadImageError(f"expected a (B, C, H, W) tensor, got {type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))}")
    if not y.is_floating_point():
        raise BadImageError(f"expected a floating-point image batch, got dtype {y.dtype}")
    if min(y.shape[-2:]) < min_side:
        raise BadImageError(f"images must be at least {min_side}×{min_side} pixels, got {tuple(y.shape[-2:])}")


def estimate_noise_sigma(y: Tensor) -> Tensor:
    """Donoho's MAD estimate σ̂ = median(|d|) / 0.6745 of the finest diagonal Haar band, shape (B, 1, 1, 1).

    Odd sides are cropped by one pixel; images need at least 2 × 2 pixels.
    """
    check_batch(y, min_side=2)
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    y = y[..., :h, :w]
    d = (y[..., 0::2, 0::2] - y[..., 0::2, 1::2] - y[..., 1::2, 0::2] + y[..., 1::2, 1::2]) / 2
    return (d.abs().flatten(1).median(dim=1).values / MAD_TO_SIGMA).reshape(-1, 1, 1, 1)


def noise_level(y: Tensor, sigma: SigmaLike) -> Tensor:
    """σ as a (B, 1, 1, 1) tensor: the given value(s), or :func:`estimate_noise_sigma` when ``sigma`` is
    None — detached, so that derivatives in y hold the estimate fixed (module docstring)."""
    if sigma is None:
        with torch.no_grad():
            return estimate_noise_sigma(y.detach())
    try:
        s = as_sigma(sigma, y)
    except ValueError as e:
        raise BadSigmaError(str(e)) from None
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise BadSigmaError(f"sigma must be finite and ≥ 0, got {s.flatten().tolist()}")
    return s


# ---------------------------------------------------------------------------------------- Fourier
def frequency_grid(h: int, w: int, like: Tensor, onesided: bool = False) -> tuple[Tensor, Tensor]:
    """(f_y, f_x) of shape (h, 1) and (1, w or w//2+1), cycles per pixel, dtype/device of ``like``."""
    fy = torch.fft.fftfreq(h, dtype=like.dtype, device=like.device).reshape(-1, 1)
    fx_fn = torch.fft.rfftfreq if onesided else torch.fft.fftfreq
    fx = fx_fn(w, dtype=like.dtype, device=like.device).reshape(1, -1)
    return fy, fx


def symmetric_extension(y: Tensor) -> Tensor:
    """The (2H, 2W) even extension [[y, y⇆], [y⇅, y⇅⇆]] whose circular filtering is reflect-boundary filtering."""
    y = torch.cat([y, y.flip(-1)], dim=-1)
    return torch.cat([y, y.flip(-2)], dim=-2)


def fourier_filter(y: Tensor, gain: Callable[[Tensor, Tensor], Tensor], boundary: str = "reflect") -> Tensor:
    """x̂ = F⁻¹[g(f) · F(y)] for a real, even gain g(f_y, f_x) (broadcastable to (B, C, H, W//2+1)).

    ``boundary="circular"``: the image is periodic. ``"reflect"``: the image is extended
    symmetrically to 2H × 2W (half-sample reflection), filtered circularly and cropped — for an even
    gain this is diagonalised by the cosine transform, i.e. Neumann boundary conditions.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    h, w = y.shape[-2:]
    z = symmetric_extension(y) if boundary == "reflect" else y
    hz, wz = z.shape[-2:]
    fy, fx = frequency_grid(hz, wz, y, onesided=True)
    out = torch.fft.irfft2(torch.fft.rfft2(z) * gain(fy, fx), s=(hz, wz))
    return out[..., :h, :w]


# ---------------------------------------------------------------------------------------- Gaussian
class GaussianSmoothing(Denoiser):
    """Heat-equation smoothing x̂ = G_s * y, the Gaussian of standard deviation s pixels.

    Computed exactly in the Fourier domain, gain g(f) = exp(−2π² s² |f|²) (the heat equation
    ∂u/∂t = Δu run for time t = s²/2), with reflecting (Neumann; default) or circular boundary.
    Both conserve the image mean.

    Width. ``width`` fixes s. Otherwise s adapts to σ: it is the Gaussian that minimises the
    expected MSE for a 1/f² prior spectrum P(f) = A/|f|² (``amplitude`` A). Per pixel,
    MSE(s) = ∫ [(1 − g)² A/|f|² + g² σ²] d²f; with u = 2π²s²|f|² and unbounded bandwidth this is
    πA ∫₀^U (1 − e⁻ᵘ)²/u du + σ²/(4π s²), whose first term grows like πA ln U ~ 2πA ln s, so
    dMSE/ds = 0 gives  s* = σ / (2π √A).
    Linear in y at fixed σ (x̂(αy, σ) = αx̂(y, σ)); bias-free only with a fixed ``width``.
    Analyses hold a blind estimate σ̂ fixed (it is detached, :func:`noise_level`): ∂x̂/∂y is this filter at σ̂.
    """

    blind = True

    def __init__(self, width: float | None = None, amplitude: float = 1e-3, boundary: str = "reflect", channels: int = 1):
        super().__init__()
        if width is not None and not (math.isfinite(width) and width >= 0):
            raise ValueError(f"width must be a finite number ≥ 0, got {width}")
        if not (math.isfinite(amplitude) and amplitude > 0):
            raise ValueError(f"amplitude must be a finite number > 0, got {amplitude}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.width, self.amplitude, self.boundary, self.channels = width, amplitude, boundary, channels
        self.bias_free = width is not None
        self.config = dict(width=width, amplitude=amplitude, boundary=boundary, channels=channels)

    def kernel_width(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        """s per image, shape (B, 1, 1, 1): the fixed ``width`` or s* = σ / (2π √A)."""
        if self.width is not None:
            return torch.full((y.shape[0], 1, 1, 1), float(self.width), dtype=y.dtype, device=y.device)
        return noise_level(y, sigma) / (2 * math.pi * math.sqrt(self.amplitude))

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        s2 = self.kernel_width(y, sigma) ** 2
        return fourier_filter(y, lambda fy, fx: torch.exp(-2 * math.pi**2 * s2 * (fy**2 + fx**2)), self.boundary)


# ---------------------------------------------------------------------------------------- Wiener
class WienerFilter(Denoiser):
    """Wiener filter for a stationary prior with power spectrum P(f) = A/|f|²:

        x̂ = F⁻¹[ P/(P + σ²) · F(y) ],   P/(P + σ²) = A / (A + σ² |f|²).

    P is the variance of a unitary Fourier coefficient (spectral density, cycles/pixel), so A does
    not depend on the image size. Mean: P(0) = ∞ — an improper flat prior on the image mean — gives
    gain 1 at f = 0, which is exactly "subtract the image mean, filter, add it back" and keeps the
    filter linear (no fixed mean such as 0.5 is assumed, and no frequency floor is needed).
    Boundary: reflecting (default; filtered in the cosine basis) or circular (exact for a periodic
    stationary field). Linear in y at fixed σ; not bias-free in blind use (σ̂ scales with y, A not).
    Analyses hold a blind estimate σ̂ fixed (it is detached, :func:`noise_level`): ∂x̂/∂y is this filter at σ̂.
    """

    blind = True
    bias_free = False

    def __init__(self, amplitude: float = 1e-3, boundary: str = "reflect", channels: int = 1):
        super().__init__()
        if not (math.isfinite(amplitude) and amplitude > 0):
            raise ValueError(f"amplitude must be a finite number > 0, got {amplitude}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.amplitude, self.boundary, self.channels = amplitude, boundary, channels
        self.config = dict(amplitude=amplitude, boundary=boundary, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        s2 = noise_level(y, sigma) ** 2
        a = self.amplitude
        return fourier_filter(y, lambda fy, fx: a / (a + s2 * (fy**2 + fx**2)), self.boundary)


# ---------------------------------------------------------------------------------------- Haar
def _check_levels(x: Tensor, levels: int) -> None:
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an integer ≥ 1, got {levels!r}")
    if x.ndim < 2:
        raise BadImageError(f"expected an array of images (..., H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2**levels or w % 2**levels:
        raise BadImageError(f"a {levels}-level Haar transform needs sides divisible by {2**levels}, got {h}×{w}")


def haar_forward(x: Tensor, levels: int = 1) -> Tensor:
    """Orthonormal 2-D Haar transform of (..., H, W) in the Mallat layout (same shape).

    One level maps each 2 × 2 block (a b; c d) to
    LL = (a+b+c+d)/2, LH = (a−b+c−d)/2, HL = (a+b−c−d)/2, HH = (a−b−c+d)/2,
    stored as [[LL, LH], [HL, HH]] quadrants; the next level transforms the LL quadrant.
    H and W must be divisible by 2^levels.
    """
    _check_levels(x, levels)
    out = x
    h, w = x.shape[-2:]
    for _ in range(levels):
        band = out[..., :h, :w]
        a, b = band[..., 0::2, 0::2], band[..., 0::2, 1::2]
        c, d = band[..., 1::2, 0::2], band[..., 1::2, 1::2]
        top = torch.cat([a + b + c + d, a - b + c - d], dim=-1)
        bottom = torch.cat([a + b - c - d, a - b - c + d], dim=-1)
        out = _place(out, torch.cat([top, bottom], dim=-2) / 2, h, w)
        h, w = h // 2, w // 2
    return out


def haar_inverse(coeffs: Tensor, levels: int = 1) -> Tensor:
    """Inverse of :func:`haar_forward` (its transpose, the transform being orthonormal)."""
    _check_levels(coeffs, levels)
    out = coeffs
    H, W = coeffs.shape[-2:]
    for lev in reversed(range(levels)):
        h, w = H >> lev, W >> lev
        band = out[..., :h, :w]
        ll, lh = band[..., : h // 2, : w // 2], band[..., : h // 2, w // 2 :]
        hl, hh = band[..., h // 2 :, : w // 2], band[..., h // 2 :, w // 2 :]
        a, b = (ll + lh + hl + hh) / 2, (ll - lh + hl - hh) / 2
        c, d = (ll + lh - hl - hh) / 2, (ll - lh - hl + hh) / 2
        rows_even = torch.stack([a, b], dim=-1).flatten(-2)  # interleave columns
        rows_odd = torch.stack([c, d], dim=-1).flatten(-2)
        block = torch.stack([rows_even, rows_odd], dim=-2).flatten(-3, -2)  # interleave rows
        out = _place(out, block, h, w)
    return out


def _place(x: Tensor, block: Tensor, h: int, w: int) -> Tensor:
    """x with its top-left h × w corner replaced by ``block`` (out of place, autograd friendly)."""
    if (h, w) == tuple(x.shape[-2:]):
        return block
    right = x[..., :h, w:]
    below = x[..., h:, :]
    return torch.cat([torch.cat([block, right], dim=-1), below], dim=-2)


def detail_mask(h: int, w: int, levels: int, like: Tensor) -> Tensor:
    """(h, w) mask: 1 on the detail coefficients of the Mallat layout, 0 on the coarse LL band."""
    mask = torch.ones(h, w, dtype=like.dtype, device=like.device)
    mask[: h >> levels, : w >> levels] = 0
    return mask


def soft_threshold(c: Tensor, tau: Tensor) -> Tensor:
    """sign(c) · max(|c| − τ, 0)."""
    return torch.sign(c) * torch.relu(c.abs() - tau)


class HaarShrinkage(Denoiser):
    """Soft thresholding in the orthonormal 2-D Haar basis W (Donoho & Johnstone):

        x̂ = Wᵀ S_τ(W y),  τ = k σ on the detail coefficients, the coarse LL band kept.

    ``levels`` scales, ``threshold`` = k. Sides not divisible by 2^levels are padded by edge
    replication and the result cropped. Blind (τ = k σ̂ with Donoho's σ̂): then x̂(αy) = αx̂(y),
    so the blind denoiser is bias-free. With a given σ it is not homogeneous (τ stays fixed).
    Analyses hold a blind estimate σ̂ fixed (it is detached, :func:`noise_level`): ∂x̂/∂y is this filter at σ̂.
    """

    blind = True
    bias_free = True

    def __init__(self, levels: int = 3, threshold: float = 1.5, channels: int = 1):
        super().__init__()
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer ≥ 1, got {levels!r}")
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a finite number ≥ 0, got {threshold}")
        self.levels, self.threshold, self.channels = levels, threshold, channels
        self.config = dict(levels=levels, threshold=threshold, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        tau = self.threshold * noise_level(y, sigma)
        h, w = y.shape[-2:]
        m = 2**self.levels
        ph, pw = -h % m, -w % m
        z = torch.nn.functional.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
        c = haar_forward(z, self.levels)
        mask = detail_mask(*z.shape[-2:], self.levels, z)
        c = c * (1 - mask) + soft_threshold(c, tau) * mask
        return haar_inverse(c, self.levels)[..., :h, :w]
