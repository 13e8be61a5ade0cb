"""Orthogonal wavelets by convolution, and wavelet soft thresholding with cycle spinning.

Filters. The Daubechies scaling filter h with N vanishing moments (length 2N, Σh = √2) is computed
from its definition (Daubechies 1988, "Ten lectures" §6.1): with y = sin²(ω/2),

    |H(ω)|² = 2 cos²ᴺ(ω/2) P(y),   P(y) = Σ_{k<N} C(N − 1 + k, k) yᵏ,

so H(z) ∝ ((1 + z)/2)ᴺ Q(z) where each root y_j of P gives the reciprocal pair of roots z, 1/z of
z + 1/z = 2 − 4y_j, one of which goes into Q. ``dbN``: every root inside the unit circle (minimum
phase). ``symN`` (symlets): the choice, among all 2^pairs (complex-conjugate pairs chosen together),
whose phase is closest to linear — least |H|²-weighted squared deviation of the unwrapped phase from
its best linear fit on [0, π] — oriented with its energy centre Σ n h_n² past the midpoint. For the
names offered (db1 … db10, sym4, sym6, sym8) these are the published filters (tested against
PyWavelets to 1e-11). The wavelet filter is g_n = (−1)ⁿ h_{L−1−n}.

Transform. One level along an axis of even length n is the periodized, critically sampled filter
bank a_k = Σ_m h_m x_{(2k + m + o) mod n}, d_k = Σ_m g_m x_{(2k + m + o) mod n}, o = 1 − L/2
(PyWavelets' "periodization" alignment): a gather that wraps the signal (any n, even below L) and a
stride-2 ``conv1d``; the inverse is its transpose (``conv_transpose1d`` and the folding back of the
wrap), exact because the filter bank is orthogonal. The 2-D transform is separable, Mallat's pyramid
on the coarse band.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Denoiser, SigmaLike
from .checks import real, whole
from .classical import BOUNDARIES, BadImageError, check_batch, noise_level, soft_threshold, symmetric_extension

#: The wavelets offered: Daubechies db1 (Haar) … db10 and the symlets sym4, sym6, sym8.
WAVELETS = tuple(f"db{n}" for n in range(1, 11)) + ("sym4", "sym6", "sym8")
#: τ = WAVELET_THRESHOLD · σ (sym8, 4 levels, 4 × 4 cycle spins), fitted by ``python scripts/fit_classical_rules.py``.
WAVELET_THRESHOLD = 1.75

Bands = tuple[Tensor, Tensor, Tensor]


def _daubechies_roots(n: int) -> list[tuple[complex, complex]]:
    """For each root y_j of P, the pair (z inside, z outside the unit circle) with z + 1/z = 2 − 4y_j."""
    p = [math.comb(n - 1 + k, k) for k in range(n)]
    pairs = []
    for y in np.roots(p[::-1]):
        z = np.roots([1.0, -(2 - 4 * y), 1.0])
        pairs.append(tuple(sorted(z, key=abs)))
    return pairs


def _filter_from_roots(n: int, roots: list[complex]) -> np.ndarray:
    h = np.real(np.poly([-1.0] * n + roots))
    return h * math.sqrt(2) / h.sum()


def _phase_nonlinearity(h: np.ndarray, samples: int = 512) -> float:
    """Σ |H|² (φ − linear fit)² over ω ∈ [0, π]: how far the phase of H(ω) = Σ h_n e^{−iωn} is from linear."""
    w = np.linspace(0, math.pi, samples)
    H = np.exp(-1j * np.outer(w, np.arange(len(h)))) @ h
    phase = np.unwrap(np.angle(H))
    A = np.stack([w, np.ones_like(w)], axis=1)
    fit = A @ np.linalg.lstsq(A, phase, rcond=None)[0]
    return float(np.sum(np.abs(H) ** 2 * (phase - fit) ** 2))


@lru_cache(maxsize=None)
def scaling_filter(name: str) -> np.ndarray:
    """The scaling (low-pass) filter h of ``name`` in :data:`WAVELETS`, float64, Σh = √2, Σh² = 1."""
    if name not in WAVELETS:
        raise ValueError(f"unknown wavelet {name!r}; known: {', '.join(WAVELETS)}")
    n = int(name[2:] if name.startswith("db") else name[3:])
    pairs = _daubechies_roots(n)
    if name.startswith("db"):
        h = _filter_from_roots(n, [inside for inside, _ in pairs])
    else:
        groups: list[list[int]] = []  # indices of roots chosen together (a complex-conjugate pair, or a real root)
        for i, (inside, _) in enumerate(pairs):
            if not any(i in g for g in groups):
                mate = [j for j in range(i + 1, len(pairs)) if abs(pairs[j][0] - np.conj(inside)) < 1e-8]
                groups.append([i] + (mate[:1] if abs(inside.imag) > 1e-12 else []))
        candidates = [_filter_from_roots(n, [pairs[i][c] for g, c in zip(groups, choice) for i in g])
                      for choice in itertools.product((0, 1), repeat=len(groups))]
        h = min(candidates, key=_phase_nonlinearity)
        centre = np.sum(np.arange(len(h)) * h**2)
        h = h if centre > (len(h) - 1) / 2 else h[::-1].copy()
    h.setflags(write=False)
    return h


def filter_bank(name: str, like: Tensor) -> Tensor:
    """The analysis bank [h; g] as a (2, 1, L) conv1d weight with ``like``'s dtype and device."""
    h = scaling_filter(name)
    g = (-1.0) ** np.arange(len(h)) * h[::-1]
    return torch.as_tensor(np.stack([h, g])[:, None, :], dtype=like.dtype, device=like.device)


def _wrap_index(n: int, taps: int, device: torch.device) -> Tensor:
    """Indices (j + o) mod n, j < n + L − 2, o = 1 − L/2: the periodic extension the filter bank reads."""
    return (torch.arange(n + taps - 2, device=device) + 1 - taps // 2) % n


def dwt_last(x: Tensor, bank: Tensor) -> tuple[Tensor, Tensor]:
    """One periodized level along the last axis (even length n): (a, d), each (..., n/2)."""
    n, taps = x.shape[-1], bank.shape[-1]
    if n % 2:
        raise BadImageError(f"a wavelet level needs an even length, got {n}")
    xe = x.index_select(-1, _wrap_index(n, taps, x.device))
    c = F.conv1d(xe.reshape(-1, 1, xe.shape[-1]), bank, stride=2)
    return c[:, 0].reshape(*x.shape[:-1], n // 2), c[:, 1].reshape(*x.shape[:-1], n // 2)


def idwt_last(a: Tensor, d: Tensor, bank: Tensor) -> Tensor:
    """The inverse (= transpose) of :func:`dwt_last`: x (..., 2·len(a)) from its two bands."""
    half, taps = a.shape[-1], bank.shape[-1]
    n = 2 * half
    c = torch.stack([a, d], dim=-2).reshape(-1, 2, half)
    z = F.conv_transpose1d(c, bank, stride=2)[:, 0]  # (M, n + L − 2): the wrapped signal
    folds = -(-z.shape[-1] // n)
    u = F.pad(z, (0, folds * n - z.shape[-1])).reshape(-1, folds, n).sum(dim=1)
    return torch.roll(u, 1 - taps // 2, dims=-1).reshape(*a.shape[:-1], n)


def dwt2(x: Tensor, bank: Tensor) -> tuple[Tensor, Bands]:
    """One separable level of (..., H, W), H and W even: (LL, (LH, HL, HH)), each (..., H/2, W/2)
    (first letter: along W, second: along H; LH is low-pass along W, high-pass along H)."""
    lo, hi = dwt_last(x, bank)
    ll, lh = (b.transpose(-1, -2) for b in dwt_last(lo.transpose(-1, -2), bank))
    hl, hh = (b.transpose(-1, -2) for b in dwt_last(hi.transpose(-1, -2), bank))
    return ll, (lh, hl, hh)


def idwt2(ll: Tensor, bands: Bands, bank: Tensor) -> Tensor:
    """The inverse of :func:`dwt2`."""
    lh, hl, hh = bands
    lo = idwt_last(ll.transpose(-1, -2), lh.transpose(-1, -2), bank).transpose(-1, -2)
    hi = idwt_last(hl.transpose(-1, -2), hh.transpose(-1, -2), bank).transpose(-1, -2)
    return idwt_last(lo, hi, bank)


def wavedec2(x: Tensor, wavelet: str, levels: int) -> tuple[Tensor, list[Bands]]:
    """The ``levels``-level orthonormal transform of (..., H, W), sides divisible by 2^levels:
    (coarsest LL, detail bands from the finest level to the coarsest)."""
    whole("levels", levels)
    h, w = x.shape[-2:]
    if h % 2**levels or w % 2**levels:
        raise BadImageError(f"a {levels}-level wavelet transform needs sides divisible by {2**levels}, got {h}×{w}")
    bank = filter_bank(wavelet, x)
    details = []
    for _ in range(levels):
        x, bands = dwt2(x, bank)
        details.append(bands)
    return x, details


def waverec2(coarse: Tensor, details: list[Bands], wavelet: str) -> Tensor:
    """The inverse of :func:`wavedec2`."""
    bank = filter_bank(wavelet, coarse)
    x = coarse
    for bands in reversed(details):
        x = idwt2(x, bands, bank)
    return x


class WaveletShrinkage(Denoiser):
    """Wavelet soft thresholding (Donoho & Johnstone 1994) with cycle spinning (Coifman & Donoho 1995):

        x̂ = (1/S²) Σ_{s ∈ {0..S−1}²} T₋ₛ Wᵀ η_τ(W Tₛ y),   η_τ(c) = sign(c) max(|c| − τ, 0),   τ = k σ,

    W the ``levels``-level orthonormal transform of ``wavelet`` (module docstring), η_τ applied to
    every detail coefficient (the coarse band kept), Tₛ the circular shift by s, S = ``spins``
    (S = 1: plain thresholding), k = ``threshold``. ``boundary="circular"``: the image is periodic
    (sides divisible by 2^levels); ``"reflect"`` (default): the image (padded by edge replication to
    a multiple of 2^(levels−1)) is extended symmetrically to twice its size, denoised there as a
    periodic image and cropped, which avoids wrap-around edges. Cost: S² transforms, each O(L·N),
    of an image 4 × larger with reflection; memory S² × that image.

    Bias-free in blind use (τ = kσ̂): x̂(αy) = αx̂(y). Analyses hold σ̂ fixed (:func:`noise_level`).
    """

    blind = True
    bias_free = True

    def __init__(self, wavelet: str = "sym8", levels: int = 4, threshold: float = WAVELET_THRESHOLD, spins: int = 4,
                 boundary: str = "reflect", channels: int = 1):
        super().__init__()
        scaling_filter(wavelet)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.wavelet, self.levels, self.boundary = wavelet, whole("levels", levels), boundary
        self.threshold, self.spins = real("threshold", threshold, strict=False), whole("spins", spins)
        self.channels = whole("channels", channels)
        self.config = dict(wavelet=wavelet, levels=levels, threshold=threshold, spins=spins, boundary=boundary,
                           channels=channels)

    def shrink(self, z: Tensor, tau: Tensor) -> Tensor:
        """Wᵀ η_τ(W z) of periodic images z (sides divisible by 2^levels), τ broadcastable to z."""
        coarse, details = wavedec2(z, self.wavelet, self.levels)
        details = [tuple(soft_threshold(b, tau) for b in bands) for bands in details]
        return waverec2(coarse, details, self.wavelet)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        check_batch(y)
        tau = self.threshold * noise_level(y, sigma)
        H, W = y.shape[-2:]
        if self.boundary == "reflect":
            m = 2 ** (self.levels - 1)
            z = F.pad(y, (0, -W % m, 0, -H % m), mode="replicate") if H % m or W % m else y
            z = symmetric_extension(z)
        else:
            z = y
        shifts = list(itertools.product(range(self.spins), repeat=2))
        spun = torch.cat([torch.roll(z, s, dims=(-2, -1)) for s in shifts])
        out = self.shrink(spun, tau.repeat(len(shifts), 1, 1, 1)).split(y.shape[0])
        x = torch.stack([torch.roll(o, (-s[0], -s[1]), dims=(-2, -1)) for o, s in zip(out, shifts)]).mean(dim=0)
        return x[..., :H, :W]
