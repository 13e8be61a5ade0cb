"""Pixel-adaptive weighted averages: the bilateral filter and non-local means.

Both compute, for every pixel p, a normalised average over the offsets t of a (2R + 1)² window,

    x̂(p) = Σ_t w(p, p + t) y(p + t) / Σ_t w(p, p + t),

with weights that depend on y: Milanfar's "tour of modern image filtering" reads every classical
denoiser this way, and the rows of the Jacobian are these adaptive filters (plus the terms from the
weights' own dependence on y). The window is cut at the image border: neighbours outside the image
get weight 0 (the centre always counts, w(p, p) = 1), so there is no size limit from padding.

Vectorised over pixels and offsets: the shifted copies of the image for a chunk of offsets are
stacked along a new axis and the weights of the whole chunk are computed at once; the only Python
loop is over chunks, which bound the memory to about ``CHUNK_ELEMENTS`` values per stacked tensor.

Noise level: the given σ, or with ``sigma=None`` Donoho's σ̂ held fixed in derivatives
(:func:`~explorer.denoisers.classical.noise_level`). Rule constants were fitted on BSD400 training
crops by ``OMP_NUM_THREADS=1 python scripts/fit_classical_rules.py`` (σ in [0, 1] units).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Denoiser, SigmaLike
from .checks import real, whole
from .classical import BadImageError, check_batch, noise_level

#: σ_r = BILATERAL_RANGE · σ and σ_s = BILATERAL_SPATIAL pixels, fitted by ``python scripts/fit_classical_rules.py``.
BILATERAL_RANGE, BILATERAL_SPATIAL = 2.8, 2.0
#: h = NLM_H · σ, fitted by ``python scripts/fit_classical_rules.py`` (7×7 patches, 21×21 search window).
NLM_H = 0.9
#: Most values in one stacked tensor of shifted images (offsets are processed in chunks below this).
CHUNK_ELEMENTS = 2**22

#: w(chunk of offsets, stacked neighbours) → weights; see :func:`window_average`.
WeightFn = Callable[[list[tuple[int, int]], Tensor], Tensor]


def window_offsets(radius: int) -> list[tuple[int, int]]:
    """The (2R + 1)² offsets (a, b) of the square window, row by row."""
    return [(a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)]


def shifted_stack(z: Tensor, offsets: list[tuple[int, int]], radius: int, size: tuple[int, int]) -> Tensor:
    """(B, C, T, h, w) copies of z (B, C, h + 2R, w + 2R), z zero-padded by R: copy t is z shifted by −t,
    i.e. its value at q is z(q + t)."""
    h, w = size
    return torch.stack([z[..., radius + a:radius + a + h, radius + b:radius + b + w] for a, b in offsets], dim=2)


def window_average(y: Tensor, radius: int, weights: WeightFn, margin: int = 0, source: Tensor | None = None) -> Tensor:
    """x̂(p) = Σ_t w_t(p) y(p + t) / Σ_t w_t(p) over the window of ``radius`` R cut at the image border.

    ``weights(offsets, stack)`` gets a chunk of offsets and ``shifted_stack`` of ``source`` (default
    y) for them, and returns weights (B, T, H, W). ``source`` may be y padded by ``margin`` on each
    side (for patches); the stack then holds the shifted (H + 2m) × (W + 2m) images and the averaged
    values are their centres. Outside-image neighbours are masked to weight 0 here.
    """
    B, C, H, W = y.shape
    m = margin
    source = y if source is None else source
    z = F.pad(source, (radius,) * 4)
    inside = F.pad(torch.ones(1, 1, H, W, dtype=y.dtype, device=y.device), (radius,) * 4)
    offsets = window_offsets(radius)
    chunk = max(1, CHUNK_ELEMENTS // (B * C * (H + 2 * m) * (W + 2 * m)))
    num = torch.zeros_like(y)
    den = torch.zeros_like(y[:, :1])
    for start in range(0, len(offsets), chunk):
        part = offsets[start:start + chunk]
        stack = shifted_stack(z, part, radius, (H + 2 * m, W + 2 * m))
        mask = shifted_stack(inside, part, radius, (H, W))[:, 0]
        w = weights(part, stack) * mask
        values = stack[..., m:m + H, m:m + W]
        num = num + (w.unsqueeze(1) * values).sum(dim=2)
        den = den + w.sum(dim=1, keepdim=True)
    return num / den


# ---------------------------------------------------------------------------------------- bilateral
class BilateralFilter(Denoiser):
    """The bilateral filter (Tomasi & Manduchi 1998):

        w(p, q) = exp(−|p − q|² / 2σ_s²) · exp(−‖y(p) − y(q)‖² / 2σ_r²),

    in the normalised window average of the module docstring, with ‖·‖ the Euclidean distance over
    the channels, over the window of radius R = ``radius``, by default ⌈3σ_s⌉ (scikit-image's window,
    2⌈3σ_s⌉ + 1 wide). σ_s = ``spatial`` pixels and σ_r = c σ (``range_factor`` = c). Cost: (2R + 1)²
    weights per pixel (169 at σ_s = 2), memory about (2R + 1)² × the image per chunk; any image size.
    Measured on one core at 64 × 64 (float32, defaults): forward 6 ms, one Jacobian row 24 ms.

    Bias-free in blind use (σ_r ∝ σ̂); keeps constants.
    """

    blind = True
    bias_free = True

    def __init__(self, range_factor: float = BILATERAL_RANGE, spatial: float = BILATERAL_SPATIAL,
                 radius: int | None = None, channels: int = 1):
        super().__init__()
        self.range_factor, self.spatial = real("range_factor", range_factor), real("spatial", spatial)
        self.radius = math.ceil(3 * self.spatial) if radius is None else whole("radius", radius, low=0)
        self.channels = whole("channels", channels)
        self.config = dict(range_factor=range_factor, spatial=spatial, radius=radius, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        two_r2 = (2 * (self.range_factor * noise_level(y, sigma)) ** 2).clamp_min(torch.finfo(y.dtype).tiny)[:, 0]
        two_s2 = 2 * self.spatial**2

        def weights(offsets: list[tuple[int, int]], stack: Tensor) -> Tensor:
            r2 = torch.tensor([a * a + b * b for a, b in offsets], dtype=y.dtype, device=y.device).reshape(1, -1, 1, 1)
            d2 = ((stack - y.unsqueeze(2)) ** 2).sum(dim=1)
            return torch.exp(-r2 / two_s2 - d2 / two_r2.unsqueeze(1))

        return window_average(y, self.radius, weights)


# ---------------------------------------------------------------------------------------- non-local means
def patch_profile(size: int) -> list[float]:
    """g/Σg with g(u) = exp(−u²/2a²), |u| ≤ size // 2, a = (size − 1)/4 (scikit-image's choice): the
    patch weights are the separable κ(u₁, u₂) = g(u₁)g(u₂)/(Σg)², summing to 1."""
    r = size // 2
    if r == 0:
        return [1.0]
    a = (size - 1) / 4
    g = [math.exp(-u * u / (2 * a * a)) for u in range(-r, r + 1)]
    return [v / sum(g) for v in g]


def separable_blur(x: Tensor, taps: list[float]) -> Tensor:
    """The valid correlation of (..., h, w) with taps ⊗ taps, (..., h − k + 1, w − k + 1) for k taps, as
    weighted sums of shifted slices (elementwise work: faster than a 1-channel convolution, forward and back)."""
    k = len(taps)
    h, w = x.shape[-2:]
    x = sum(t * x[..., i:h - k + 1 + i, :] for i, t in enumerate(taps))
    return sum(t * x[..., :, j:w - k + 1 + j] for j, t in enumerate(taps))


def nlm_weights(d2: Tensor, two_var: Tensor, h2: Tensor) -> Tensor:
    """w = exp(−max(d² − 2σ², 0) / h²) from patch distances d², 2σ² and h² (broadcastable)."""
    return torch.exp(-(d2 - two_var).clamp_min(0) / h2)


class NonLocalMeans(Denoiser):
    """Non-local means (Buades, Coll & Morel 2005), pixelwise, with the noise-corrected distance of
    Buades et al. (IPOL 2011):

        d²(p, q) = (1/C) Σ_c Σ_|u|≤r κ(u) (y_c(p + u) − y_c(q + u))²,
        w(p, q) = exp(−max(d²(p, q) − 2σ², 0) / h²),   h = c σ (``h_factor`` = c),

    in the normalised window average of the module docstring: patches of ``patch_size`` = 2r + 1
    pixels with Gaussian weights κ (std (2r + 1 − 1)/4, summing to 1), a search window of
    ``search_size`` = 2R + 1 pixels cut at the image border; patches that reach past the border are
    completed by mirror reflection (numpy's "reflect"). This is scikit-image's
    ``denoise_nl_means(patch_size, patch_distance=R, h, sigma, fast_mode=False)`` without its cut-offs
    (weights below e⁻⁵ and a centre-pixel test are dropped there) and with an exact exp.

    Cost: (2R + 1)² patch distances per pixel, each a separable (2r + 1)-tap blur: about
    (2R + 1)²·(4r + 6) operations per pixel (≈ 1.5·10⁴ at 7×7 / 21×21); memory about (2R + 1)² × the
    image per chunk. Measured on one core (float32, defaults): forward 0.05 s at 64 × 64 and 0.7 s at
    256 × 256; one row of the Jacobian (a VJP) 0.16 s and +0.12 GB at 64 × 64, 2.4 s and +1.5 GB at
    256 × 256 — the analyses are meant for images up to about 128 × 128. Images need sides > r (the
    reflection). Bias-free in blind use (h, σ ∝ σ̂).
    """

    blind = True
    bias_free = True

    def __init__(self, h_factor: float = NLM_H, patch_size: int = 7, search_size: int = 21, channels: int = 1):
        super().__init__()
        self.h_factor = real("h_factor", h_factor)
        self.patch_size = whole("patch_size", patch_size, odd=True)
        self.search_size = whole("search_size", search_size, odd=True)
        self.channels = whole("channels", channels)
        self.min_size = patch_size // 2 + 1
        self.config = dict(h_factor=h_factor, patch_size=patch_size, search_size=search_size, channels=channels)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        r, R = self.patch_size // 2, self.search_size // 2
        if min(y.shape[-2:]) <= r:
            raise BadImageError(f"non-local means with {self.patch_size}×{self.patch_size} patches needs sides > {r}, "
                                f"got {tuple(y.shape[-2:])}")
        s = noise_level(y, sigma)[:, 0]  # (B, 1, 1)
        two_var = (2 * s * s).unsqueeze(1)
        h2 = ((self.h_factor * s) ** 2).clamp_min(torch.finfo(y.dtype).tiny).unsqueeze(1)
        taps = patch_profile(self.patch_size)
        padded = F.pad(y, (r,) * 4, mode="reflect") if r else y

        def weights(offsets: list[tuple[int, int]], stack: Tensor) -> Tensor:
            d2 = separable_blur(((stack - padded.unsqueeze(2)) ** 2).mean(dim=1), taps)
            return nlm_weights(d2, two_var, h2)

        return window_average(y, R, weights, margin=r, source=padded)
