"""Matrix-free linear measurement operators M for linear inverse problems (Algorithm 2).

Kadkhodaie & Simoncelli's Algorithm 2 recovers an image from linear measurements x_c = Mᵀx with
the step d = (I − MMᵀ) f(y) + M(x_c − Mᵀy). Every operator here is built for one image shape
(C, H, W) and has N = C·H·W inputs and ``m`` measurements. M is an N × m matrix with orthonormal
columns (MᵀM = I_m), never stored; it acts on batches:

- ``forward(x)`` = Mᵀx: a (B, C, H, W) image batch → a (B, m) measurement batch,
- ``adjoint(v)`` = Mv: a (B, m) measurement batch → a (B, C, H, W) image batch,
- ``project(x)`` = MMᵀx, the orthogonal projection onto the measured subspace,
- ``pseudo_inverse(v)`` = M⁺v = (MᵀM)⁻¹Mv = Mv, the least-squares (minimum-norm) reconstruction.

Measurements are always flat (B, m) tensors, whatever the operator. All maths is pure torch and
follows the dtype and device of its input, so every operator is differentiable.
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

Shape = tuple[int, int, int]


# --------------------------------------------------------------------------- orthonormal DCT-II
def dct_matrix(n: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Tensor:
    """The n × n orthonormal DCT-II matrix, D[k, j] = c_k √(2/n) cos(π(2j + 1)k / 2n).

    c_0 = 1/√2 and c_k = 1 otherwise, so DDᵀ = DᵀD = I. Built in float64 and then cast.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"DCT size must be a positive integer, got {n!r}")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    d = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


_cached_dct_matrix = lru_cache(maxsize=16)(dct_matrix)


def _check_float(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got dtype {x.dtype}")


def dct2(x: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II over the last two dims: X = D_H x D_Wᵀ (any leading dims)."""
    _check_float(x, "dct2 input")
    if x.ndim < 2:
        raise ValueError(f"dct2 needs at least 2 dims, got shape {tuple(x.shape)}")
    dh = _cached_dct_matrix(x.shape[-2], x.dtype, x.device)
    dw = _cached_dct_matrix(x.shape[-1], x.dtype, x.device)
    return dh @ x @ dw.T


def idct2(X: Tensor) -> Tensor:
    """Inverse of :func:`dct2` (its transpose, the matrices being orthogonal): x = D_Hᵀ X D_W."""
    _check_float(X, "idct2 input")
    if X.ndim < 2:
        raise ValueError(f"idct2 needs at least 2 dims, got shape {tuple(X.shape)}")
    dh = _cached_dct_matrix(X.shape[-2], X.dtype, X.device)
    dw = _cached_dct_matrix(X.shape[-1], X.dtype, X.device)
    return dh.T @ X @ dw


# --------------------------------------------------------------------------- argument checks
def _check_shape(shape) -> Shape:
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a (C, H, W) tuple, got {shape!r}") from None
    if len(dims) != 3 or any(s < 1 for s in dims) or any(int(s) != s for s in shape):
        raise ValueError(f"shape must be a (C, H, W) tuple of positive integers, got {shape!r}")
    return dims


def _check_fraction(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 < p <= 1.0:
        raise ValueError(f"the fraction p must be a number in (0, 1], got {p!r}")
    return float(p)


def _count(p: float, n: int, *, rounding: str) -> int:
    """floor(p·n) or round-half-up(p·n), forgiving float error (0.29 of 100 is 29, not 28)."""
    exact = p * n * (1 + 1e-12)
    return math.floor(exact) if rounding == "floor" else math.floor(exact + 0.5)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- base class
class Measurement:
    """A linear measurement x_c = Mᵀx with M (N × m) having orthonormal columns, for (C, H, W) images.

    Subclasses implement ``_forward`` (Mᵀ on a checked (B, C, H, W) batch → (B, m)) and
    ``_adjoint`` (M on a checked (B, m) batch → (B, C, H, W)); the public methods validate shapes.
    """

    name: str = "measurement"
    verb: str = "kept"  # how describe() words the measured values

    def __init__(self, shape: Shape, m: int):
        self.shape: Shape = shape
        self.m: int = m

    @property
    def n(self) -> int:
        """N = C·H·W, the number of image values."""
        c, h, w = self.shape
        return c * h * w

    def forward(self, x: Tensor) -> Tensor:
        """Mᵀx: (B, C, H, W) images → (B, m) measurements."""
        _check_float(x, "image batch")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"{self.name} is built for (B, {', '.join(map(str, self.shape))}) images, got shape {tuple(x.shape)}"
            )
        return self._forward(x)

    def adjoint(self, v: Tensor) -> Tensor:
        """Mv: (B, m) measurements → (B, C, H, W) images."""
        _check_float(v, "measurement batch")
        if v.ndim != 2 or v.shape[1] != self.m:
            raise ValueError(f"{self.name} takes (B, {self.m}) measurements, got shape {tuple(v.shape)}")
        return self._adjoint(v)

    def project(self, x: Tensor) -> Tensor:
        """MMᵀx, the orthogonal projection of x onto the measured subspace (idempotent)."""
        return self.adjoint(self.forward(x))

    def pseudo_inverse(self, v: Tensor) -> Tensor:
        """M⁺v = (MᵀM)⁻¹Mv = Mv: the minimum-norm image consistent with the measurements v."""
        return self.adjoint(v)

    def describe(self) -> str:
        """A short human description, e.g. "random pixels, 10% kept (1638 of 16384)"."""
        return f"{self.name}, {self._percent()} {self.verb} ({self.m} of {self.n})"

    def _percent(self) -> str:
        return f"{100 * self.m / self.n:.3g}%"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def _forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- pixel subsets
class Inpainting(Measurement):
    """Observe the pixels where ``mask`` is True: Mᵀx = x[mask] (flattened in C, H, W order).

    M's columns are the standard basis vectors e_i of the observed pixels, so MMᵀx = mask·x and
    the pseudo-inverse fills unobserved pixels with 0. ``mask`` is a boolean (C, H, W) or (H, W)
    tensor or array; an (H, W) mask is shared by ``channels`` channels (default 1). Masks that
    observe nothing (m = 0) or everything (m = N) are allowed.
    """

    name = "inpainting"
    verb = "observed"

    def __init__(self, mask: Tensor | np.ndarray, channels: int | None = None):
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool:
            raise ValueError(f"the inpainting mask must be boolean (True = observed), got dtype {mask.dtype}")
        if mask.ndim == 2:
            c = 1 if channels is None else channels
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"channels must be a positive integer, got {channels!r}")
            mask = mask.expand(c, *mask.shape)
        elif mask.ndim == 3:
            if channels is not None and channels != mask.shape[0]:
                raise ValueError(f"a (C, H, W) mask with C = {mask.shape[0]} conflicts with channels={channels}")
        else:
            raise ValueError(f"the inpainting mask must be (H, W) or (C, H, W), got shape {tuple(mask.shape)}")
        if mask.numel() == 0:
            raise ValueError(f"the inpainting mask is empty, shape {tuple(mask.shape)}")
        self.mask: Tensor = mask.detach().to("cpu").contiguous()
        self._index = self.mask.flatten().nonzero().flatten()
        super().__init__(tuple(self.mask.shape), self._index.numel())

    def _forward(self, x: Tensor) -> Tensor:
        return x.flatten(1).index_select(1, self._index.to(x.device))

    def _adjoint(self, v: Tensor) -> Tensor:
        out = v.new_zeros(v.shape[0], self.n)
        out.index_copy_(1, self._index.to(v.device), v)
        return out.reshape(v.shape[0], *self.shape)


class RandomPixels(Inpainting):
    """Inpainting with a seeded uniformly random set of exactly floor(p·N) observed values, N = C·H·W.

    Each channel value is drawn independently (a colour pixel may be partly observed).
    """

    name = "random pixels"
    verb = "kept"

    def __init__(self, shape: Shape, p: float, seed: int = 0):
        shape = _check_shape(shape)
        self.p = _check_fraction(p)
        self.seed = _check_seed(seed)
        n = math.prod(shape)
        keep = torch.randperm(n, generator=_generator(self.seed))[: _count(self.p, n, rounding="floor")]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[keep] = True
        super().__init__(mask.reshape(shape))


# --------------------------------------------------------------------------- super-resolution
class SuperResolution(Measurement):
    """Block-average down-sampling by ``factor`` s: (Mᵀx)_block = (Σ_{s×s block} x) / s.

    Each column of M is 1/s on one s × s block and 0 elsewhere, so it has unit norm and
    MᵀM = I exactly; MMᵀx replaces each block by its mean, and the pseudo-inverse Mv is the
    nearest-neighbour up-sampling of v/s (the block means). Measurements are flat (B, m) with
    m = C·(H/s)·(W/s); ``v.reshape(B, C, H // s, W // s) / s`` is the low-resolution image.
    """

    name = "super-resolution"

    def __init__(self, shape: Shape, factor: int):
        c, h, w = _check_shape(shape)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"the super-resolution factor must be a positive integer, got {factor!r}")
        if h % factor or w % factor:
            raise ValueError(f"image size {h}×{w} is not divisible by the super-resolution factor {factor}")
        self.factor = factor
        super().__init__((c, h, w), c * (h // factor) * (w // factor))

    def describe(self) -> str:
        s = self.factor
        return f"{self.name} ×{s} ({s}×{s} block average, {self.m} of {self.n} values)"

    def _forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        s = self.factor
        return x.reshape(b, c, h // s, s, w // s, s).sum(dim=(3, 5)).flatten(1) / s

    def _adjoint(self, v: Tensor) -> Tensor:
        c, h, w = self.shape
        s = self.factor
        low = v.reshape(v.shape[0], c, h // s, 1, w // s, 1) / s
        return low.expand(-1, -1, -1, s, -1, s).reshape(v.shape[0], c, h, w)


# --------------------------------------------------------------------------- DCT-domain operators
def _lowest_frequencies(h: int, w: int, k: int) -> Tensor:
    """Flat indices (i·W + j) of the k DCT frequencies with smallest i² + j² (ties in row-major order)."""
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    radius = (i * i + j * j).flatten()
    return torch.sort(torch.argsort(radius, stable=True)[:k]).values


class SpectralLowPass(Measurement):
    """Keep the round(p·H·W) lowest frequencies of each channel's orthonormal 2-D DCT-II.

    Mᵀx = S·dct2(x), with S selecting, in every channel, the frequencies (i, j) of smallest
    radius i² + j² (ties broken in row-major order). M = dct2ᵀ·Sᵀ has orthonormal columns, and MMᵀ
    is an ideal low-pass filter. Measurements are flat (B, C·k), channel-major.
    """

    name = "spectral low-pass"

    def __init__(self, shape: Shape, p: float):
        c, h, w = _check_shape(shape)
        self.p = _check_fraction(p)
        self._index = _lowest_frequencies(h, w, _count(self.p, h * w, rounding="round"))
        super().__init__((c, h, w), c * self._index.numel())

    def describe(self) -> str:
        return f"{self.name}, {self._percent()} of DCT frequencies kept ({self.m} of {self.n})"

    def _forward(self, x: Tensor) -> Tensor:
        return dct2(x).flatten(2).index_select(2, self._index.to(x.device)).flatten(1)

    def _adjoint(self, v: Tensor) -> Tensor:
        c, h, w = self.shape
        coeffs = v.new_zeros(v.shape[0], c, h * w)
        coeffs.index_copy_(2, self._index.to(v.device), v.reshape(v.shape[0], c, -1))
        return idct2(coeffs.reshape(v.shape[0], c, h, w))


class RandomBasis(Measurement):
    """Compressive sensing on m = round(p·N) coordinates of a seeded random orthonormal basis.

    The basis is the structurally random matrix Q = DCT·P·D (Do, Gan, Nguyen & Tran 2012):
    D flips the sign of each of the N values (seeded ±1), P permutes them (seeded), and DCT is
    the orthonormal 2-D DCT-II of each channel of the resulting (C, H, W) image. Each factor is
    orthogonal, so Q is; Mᵀx = S·Q·x keeps a seeded random subset S of m of its N coordinates, and
    M = QᵀSᵀ has exactly orthonormal columns. Only O(N) numbers are stored (signs, permutation,
    subset) plus the H × H and W × W DCT matrices — never an N × N matrix.
    """

    name = "random basis"

    def __init__(self, shape: Shape, p: float, seed: int = 0):
        shape = _check_shape(shape)
        self.p = _check_fraction(p)
        self.seed = _check_seed(seed)
        n = math.prod(shape)
        g = _generator(self.seed)
        self._signs = torch.randint(0, 2, (n,), generator=g, dtype=torch.int8) * 2 - 1
        self._permutation = torch.randperm(n, generator=g)
        keep = torch.randperm(n, generator=g)[: _count(self.p, n, rounding="round")]
        self._subset = torch.sort(keep).values
        super().__init__(shape, self._subset.numel())

    def describe(self) -> str:
        return f"{self.name} (compressive sensing), {self._percent()} kept ({self.m} of {self.n})"

    def _forward(self, x: Tensor) -> Tensor:
        scrambled = (x.flatten(1) * self._signs.to(x.device, x.dtype)).index_select(1, self._permutation.to(x.device))
        coeffs = dct2(scrambled.reshape(x.shape)).flatten(1)
        return coeffs.index_select(1, self._subset.to(x.device))

    def _adjoint(self, v: Tensor) -> Tensor:
        coeffs = v.new_zeros(v.shape[0], self.n)
        coeffs.index_copy_(1, self._subset.to(v.device), v)
        scrambled = idct2(coeffs.reshape(v.shape[0], *self.shape)).flatten(1)
        unpermuted = torch.empty_like(scrambled)
        unpermuted.index_copy_(1, self._permutation.to(v.device), scrambled)
        return (unpermuted * self._signs.to(v.device, v.dtype)).reshape(v.shape[0], *self.shape)
