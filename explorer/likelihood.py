"""Likelihood units and discrete (b-bit) likelihoods of a density model.

Units: −log p in nats per image → nats/dim, bits/dim, dB/dim (:func:`in_unit`, the one conversion).
Discrete likelihoods: a density p of dequantized b-bit data gives the likelihood of the b-bit image
x, P(x) = 2^(−b·d)·E_u[p(x + u)], u ~ U[0, 2⁻ᵇ)^d, bounded by Jensen, −log P(x) ≤ E_u[−log p(x + u)]
+ b·d·ln 2 (:func:`discrete_nll`); :class:`NLLQuantity` names which of the two quantities a number is.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def _dims(y: Tensor) -> int:
    return int(math.prod(y.shape[1:]))


# --------------------------------------------------------------------------- units
# The one place where nats, bits and decibels are converted (the CLI, the tools and the trainer's log
# all call these). ``nll`` is −log p (or −log P) in nats per image, ``d`` = C·H·W values per image.
UNITS = ("nats", "nats/dim", "bits/dim", "dB/dim")
LN2 = math.log(2.0)
LN10 = math.log(10.0)


def nats_per_dim(nll: Tensor | float, d: int) -> Tensor | float:
    """NLL in nats per image → nats per dimension, NLL / d."""
    return nll / d


def bits_per_dim(nll: Tensor | float, d: int, discretization_bits: int = 0) -> Tensor | float:
    """NLL in nats per image → bits per dimension, NLL / (d ln 2) (+ ``discretization_bits``).

    ``discretization_bits`` = b adds b bits/dim, the bin volume (2^-b)^d of the b-bit discrete
    likelihood: pass b only when ``nll`` is the *dequantized* continuous NLL E_u[−log p(x + u)]
    (u ~ U[0, 2^-b)^d), which the sum turns into the bound on −log P(x) derived in
    :func:`discrete_nll`. Adding b to the density at the grid points themselves, −log p(x), gives
    no bound and no likelihood at all. :func:`discrete_nll` returns nats that already hold the
    d·b·ln 2, so its values take ``discretization_bits = 0``.
    """
    return nll / (d * LN2) + discretization_bits


def db_per_dim(nll: Tensor | float, d: int) -> Tensor | float:
    """NLL in nats per image → decibels per dimension, −10·log10 p(x) / d = 10·log10(e)·NLL/d = 10·NLL/(d ln 10).

    The probability expressed in decibels like a power ratio (10·log10), then divided by d: 1 bit/dim
    is 10·log10(2) = 3.0103 dB/dim, 1 nat/dim is 10·log10(e) = 4.3429 dB/dim.
    """
    return 10.0 * nll / (d * LN10)


def in_unit(nll: Tensor | float, d: int, unit: str) -> Tensor | float:
    """NLL in nats per image → ``unit``, one of :data:`UNITS` ("nats" is per image)."""
    if unit == "nats":
        return nll
    if unit == "nats/dim":
        return nats_per_dim(nll, d)
    if unit == "bits/dim":
        return bits_per_dim(nll, d)
    if unit == "dB/dim":
        return db_per_dim(nll, d)
    raise ValueError(f"unknown unit {unit!r}; one of {', '.join(UNITS)}")


# --------------------------------------------------------------------------- discrete (b-bit) likelihoods
DEFAULT_DRAWS = 8  # dequantization draws per image for the discrete bound


@dataclass(frozen=True)
class NLLQuantity:
    """Which negative log-likelihood is computed.

    ``bits`` = 0: the continuous density −log p(x) per [0,1]^d at the image itself (nats per image;
    can be negative, since a density can exceed 1). ``bits`` = b > 0: the discrete b-bit likelihood
    −log P(x), estimated by the uniform-dequantization bound of :func:`discrete_nll` with ``draws``
    seeded draws per image (``seed``); the right quantity for a model trained on x + U[0, 2^-b)^d.
    """

    bits: int = 0
    draws: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bits < 0 or self.draws < 1:
            raise ValueError(f"need bits ≥ 0 and draws ≥ 1, got bits={self.bits}, draws={self.draws}")

    @property
    def discrete(self) -> bool:
        return self.bits > 0

    def spec(self) -> dict[str, int]:
        return {"bits": self.bits, "draws": self.draws, "seed": self.seed}

    def short(self) -> str:
        """A label for axes and table headers."""
        return f"−log P(x), {self.bits}-bit discrete" if self.discrete else "−log p(x), density on [0,1]^d"

    def describe(self) -> str:
        """One sentence saying exactly what the numbers are."""
        if not self.discrete:
            return ("−log p(x): the continuous density on [0,1]^d at the image itself, no dequantization "
                    "(nats per image; negative when p > 1)")
        return (f"−log P(x) of the {self.bits}-bit image: the uniform-dequantization bound "
                f"E_u[−log p(x + u)] + {self.bits}·d·ln 2, u ~ U[0, 2^-{self.bits})^d, mean of {self.draws} seeded "
                f"draws per image (an upper bound on −log P in expectation)")


CONTINUOUS = NLLQuantity()


def nll_quantity(card: dict | None, draws: int = DEFAULT_DRAWS, seed: int = 0) -> NLLQuantity:
    """The quantity a model's card says its likelihood is: discrete b-bit when it was trained on
    dequantized data (``card["energy"]["dequantize_bits"]`` = b > 0), else the continuous density."""
    energy = (card or {}).get("energy") if isinstance((card or {}).get("energy"), dict) else None
    bits = int((energy or {}).get("dequantize_bits") or 0)
    return NLLQuantity(bits, draws, seed) if bits > 0 else CONTINUOUS


def quantize(x: Tensor, bits: int) -> Tensor:
    """x rounded to the b-bit grid k/(2^b − 1), k = 0 … 2^b − 1, clipped to [0, 1] (8-bit images are unchanged)."""
    levels = 2**bits - 1
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


def dequantization_noise(x: Tensor, bits: int, draws: int, seed: int = 0) -> Tensor:
    """(draws, B, C, H, W) noise u ~ U[0, 2^-b), seeded per image by its content and ``seed``.

    The seed of image i is a hash of its float32 bytes (and of ``seed``), so the same image gets the
    same draws in any batch, order, process or data set: the CLI, the tools and the cache agree.
    """
    out = torch.empty((draws, *x.shape), dtype=x.dtype)
    for i, img in enumerate(x.detach().to("cpu", torch.float32)):
        h = hashlib.sha256(f"{seed}|{bits}|{tuple(img.shape)}".encode() + img.contiguous().numpy().tobytes())
        g = torch.Generator().manual_seed(int.from_bytes(h.digest()[:8], "little") >> 1)
        out[:, i] = torch.rand((draws, *img.shape), generator=g, dtype=torch.float32).to(x.dtype)
    return (out * 2.0**-bits).to(x.device)


@dataclass
class DiscreteNLL:
    """Per image (B,): ``nats`` the bound on −log P(x), ``draw_sd`` the standard deviation over the
    draws of −log p(x + u_k) (nats; the bound's standard error is draw_sd/√draws), ``iw_nats`` the
    importance-weighted estimate −log (1/K Σ_k p(x + u_k)·2^-bd) (tighter, also ≥ −log P in expectation)."""

    nats: Tensor
    draw_sd: Tensor
    iw_nats: Tensor
    bits: int
    draws: int

    @property
    def stderr(self) -> Tensor:
        return self.draw_sd / math.sqrt(self.draws)


def discrete_nll(nll_fn: Callable[[Tensor], Tensor], x: Tensor, bits: int = 8, draws: int = DEFAULT_DRAWS,
                 seed: int = 0) -> DiscreteNLL:
    """The b-bit discrete likelihood of images x (B, C, H, W) from a continuous density p on [0,1]^d.

    ``nll_fn(y)`` is −log p(y) in nats per image (e.g. ``model.nll`` or ``ModelHandle.nll``). Units:
    values in [0, 1]; an 8-bit value is k/255 (x is first rounded to that grid, :func:`quantize`), and
    its bin is the cell [x, x + δ) of width δ = 2^-b per value, the interval a model trained on
    x + U[0, δ) puts its mass in (the cells of the 2^b levels are disjoint since δ = 1/2^b < 1/(2^b − 1),
    so P below sums to at most 1 over all b-bit images: a valid probability). Then, with u ~ U[0, δ)^d
    (density δ^-d on the cell),

        P(x) = ∫_{[0,δ)^d} p(x + u) du = δ^d · E_u[p(x + u)]

        −log P(x) = −log E_u[p(x + u)] − d·log δ
                  ≤ E_u[−log p(x + u)] + d·b·ln 2          (Jensen: −log is convex)

    in nats per image; in bits per dimension, −log2 P(x)/d ≤ E_u[−log p(x + u)]/(d ln 2) + b. The
    expectation is estimated by the mean over ``draws`` draws u_k (:func:`dequantization_noise`, seeded
    per image), so ``nats`` is an unbiased estimate of the bound with standard error draw_sd/√draws.
    The same draws also give the importance-weighted estimate −log (1/K Σ_k p(x + u_k)) + d·b·ln 2,
    which lies between the bound and −log P(x) in expectation (``iw_nats``).
    """
    if bits < 1:
        raise ValueError(f"bits must be ≥ 1, got {bits}")
    xq = quantize(x, bits)
    d = _dims(x)
    u = dequantization_noise(xq, bits, draws, seed)
    values = torch.stack([torch.as_tensor(nll_fn(xq + u[k])).to(torch.float64).reshape(-1).cpu() for k in range(draws)])
    volume = d * bits * LN2  # −d·log δ
    sd = values.std(dim=0, unbiased=True) if draws > 1 else torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    iw = -(torch.logsumexp(-values, dim=0) - math.log(draws))
    return DiscreteNLL(values.mean(dim=0) + volume, sd, iw + volume, bits, draws)


def nll_values(nll_fn: Callable[[Tensor], Tensor], x: Tensor, quantity: NLLQuantity = CONTINUOUS) -> tuple[Tensor, Tensor]:
    """(nats, draw_sd) per image of ``quantity``: −log p(x) and NaN (continuous), or the
    :func:`discrete_nll` bound and the standard deviation over its draws (discrete)."""
    if not quantity.discrete:
        v = torch.as_tensor(nll_fn(x)).to(torch.float64).reshape(-1).cpu()
        return v, torch.full_like(v, float("nan"))
    r = discrete_nll(nll_fn, x, quantity.bits, quantity.draws, quantity.seed)
    return r.nats, r.draw_sd

