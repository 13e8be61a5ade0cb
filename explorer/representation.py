"""The representation φ carried by a denoiser's blocks (Kadkhodaie, Mallat & Simoncelli 2025).

For a block b of a network with activations a_{b,c}(y) ∈ ℝ^{H_b×W_b} (after its ReLU, channels c = 1…K_b),
the representation of an image is the vector of spatial averages of the channels,

    φ_b(y)_c = (1 / H_b W_b) Σ_{i,j} a_{b,c}(y)[i, j],

read with a forward hook on the block (the forward pass stops there: the later layers are not run). At a
noise level σ it is averaged over D noise draws, as in the paper,

    φ_b(x; σ) = (1/D) Σ_{d=1}^{D} φ_b(x + σ z_d),   z_d ~ N(0, I)   (D = 1 and no noise when σ is None).

A bias-free network is positively homogeneous, so φ_b(αy) = α φ_b(y) for α > 0 (a constant image gives a
multiple of φ_b of the all-ones image).

Blocks per architecture (:func:`block_names`, in the order the forward pass reaches them):

- ``UNet`` (and the energy / score UNets with the same ``encoders`` / ``decoders``), L levels:
  ``enc0 … enc{L−2}`` (encoder blocks, level ℓ at 1/2^ℓ of the image side), ``mid`` (the bottom block,
  ``encoders[L−1]``, at 1/2^{L−1}), ``dec{L−2} … dec0`` (decoder blocks after each upsampling).
- ``LabUNet2024`` (n blocks): ``enc0 … enc{n−1}``, ``mid`` (the middle block at 1/2^n), ``dec{n−1} … dec0``
  (dec0: its last ReLU, before the output convolution).
- ``LabUNet`` (2020): ``enc0`` (conv2, full resolution), ``mid`` (conv6, the half-resolution bottom),
  ``up`` (conv7, back at full resolution), ``dec0`` (conv8).
- ``DnCNN`` (depth D): ``layer1 … layer{D−1}``, the ReLU output of each hidden convolution; it never
  downsamples, so it has no bottom block.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .denoisers import DnCNN, LabUNet, LabUNet2024
from .representation_stats import robustness

BOTTOM = "mid"  # the name of the bottom (middle) block of every UNet


@dataclass(frozen=True)
class Block:
    """One readable block: the ``module`` whose output is hooked, whether the network applies a functional
    ReLU to that output (``relu``), and its resolution ``level`` (the block's side is the image side / 2^level)."""

    name: str
    module: nn.Module
    relu: bool
    level: int


def _model(target: object) -> nn.Module:
    return target if isinstance(target, nn.Module) else target.model  # a ModelHandle


def _unet_blocks(encoders: nn.ModuleList, decoders: nn.ModuleList) -> list[Block]:
    n = len(encoders)
    out = [Block(f"enc{i}", encoders[i], False, i) for i in range(n - 1)]
    out.append(Block(BOTTOM, encoders[n - 1], False, n - 1))
    out += [Block(f"dec{n - 2 - i}", dec, False, n - 2 - i) for i, dec in enumerate(decoders)]
    return out


def _lab2024_blocks(m: LabUNet2024) -> list[Block]:
    n = m.num_blocks
    out = [Block(f"enc{b}", m.encoder[str(b)], False, b) for b in range(n)]
    out.append(Block(BOTTOM, m.mid_block, False, n))
    for b in range(n - 1, -1, -1):
        dec = m.decoder[str(b)]
        out.append(Block(f"dec{b}", dec[-2] if b == 0 else dec, False, b))  # dec0 ends with the output conv
    return out


def blocks(target: object) -> list[Block]:
    """The readable blocks of a network (a module or a ModelHandle), in forward order.

    Raises ValueError for a denoiser without blocks (a classical filter, an exact MMSE denoiser)."""
    m = _model(target)
    if isinstance(m, LabUNet2024):
        return _lab2024_blocks(m)
    if isinstance(m, LabUNet):
        return [Block("enc0", m.conv2, True, 0), Block(BOTTOM, m.conv6, True, 1), Block("up", m.conv7, True, 0),
                Block("dec0", m.conv8, True, 0)]
    if isinstance(m, DnCNN):
        return [Block("layer1", m.convs[0], True, 0)] + [Block(f"layer{i + 2}", nrm, True, 0)
                                                        for i, nrm in enumerate(m.norms)]
    enc, dec = getattr(m, "encoders", None), getattr(m, "decoders", None)
    if isinstance(enc, nn.ModuleList) and isinstance(dec, nn.ModuleList) and len(dec) == len(enc) - 1:
        return _unet_blocks(enc, dec)
    raise ValueError(f"{type(m).__name__} has no network blocks to read a representation from "
                     "(φ needs a UNet or a DnCNN)")


def block_names(target: object) -> list[str]:
    """The names of :func:`blocks`, in forward order."""
    return [b.name for b in blocks(target)]


def block(target: object, name: str) -> Block:
    """The block called ``name``; a ValueError names the blocks the network offers (a DnCNN has no ``mid``)."""
    found = {b.name: b for b in blocks(target)}
    if name in found:
        return found[name]
    kind = type(_model(target)).__name__
    offers = ", ".join(found)
    if name == BOTTOM:
        raise ValueError(f"{kind} has no bottom block '{BOTTOM}': it never downsamples; it offers {offers}")
    raise ValueError(f"{kind} has no block {name!r}; it offers {offers}")


def bottom_block(target: object) -> str:
    """The bottom (middle) block of a UNet, ``'mid'``; for a DnCNN the ValueError says what it offers."""
    return block(target, BOTTOM).name


class _Reached(Exception):
    """Raised by the hook once the block has been read, to skip the rest of the forward pass."""


def activations(model: nn.Module, y: Tensor, name: str, sigma_told: Tensor | float | None = None) -> Tensor:
    """a_b(y) (B, K_b, H_b, W_b): the block's output after its ReLU, differentiable in y.

    The forward pass ``model(y, sigma_told)`` is cut short once the block has run."""
    b = block(model, name)
    seen: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        seen.append(F.relu(output) if b.relu else output)
        raise _Reached

    h = b.module.register_forward_hook(hook)
    try:
        model(y, sigma_told)
    except _Reached:
        pass
    finally:
        h.remove()
    if not seen:
        raise RuntimeError(f"block {name!r} of {type(model).__name__} was not reached by the forward pass")
    return seen[0]


def representation(model: nn.Module, y: Tensor, name: str, sigma_told: Tensor | float | None = None) -> Tensor:
    """φ_b(y) (B, K_b) = the spatial averages of :func:`activations`, differentiable in y (no noise added)."""
    return activations(model, y, name, sigma_told).mean(dim=(2, 3))


def channel_count(target: object, name: str, size: int = 32) -> int:
    """K_b, the number of channels of block ``name`` (read from one forward pass of a blank image)."""
    m = _model(target)
    p = next(m.parameters())
    side = max(size, getattr(m, "min_size", 1))
    y = torch.zeros(1, getattr(m, "channels", 1), side, side, device=p.device, dtype=p.dtype)
    with torch.no_grad():
        return int(activations(m, y, name, None if getattr(m, "blind", True) else 1.0).shape[1])


def _told(model: nn.Module, sigma: float | None) -> float | None:
    if getattr(model, "blind", True):
        return None
    if not sigma:
        raise ValueError(f"{type(model).__name__} is not blind: it needs a noise level σ > 0 to read φ at")
    return float(sigma)


def _check_noise(sigma: float | None, draws: int) -> float:
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    s = 0.0 if sigma is None else float(sigma)
    if not np.isfinite(s) or s < 0:
        raise ValueError(f"sigma must be None or a number ≥ 0, got {sigma!r}")
    if s == 0 and draws > 1:
        raise ValueError("several noise draws need a noise level σ > 0")
    return s


def features(handle: object, y: Tensor, block: str, sigma: float | None = None, draws: int = 1,
             seed: int = 0) -> Tensor:
    """φ_b(y; σ) (B, K_b) on the CPU: the channel averages of ``block``, averaged over ``draws`` noisy copies
    y + σz_d (z_d from a CPU generator seeded with ``seed``); σ None or 0 reads y itself (one pass).

    ``handle`` is a :class:`~explorer.handle.ModelHandle` (its lock is held; its checks apply) or a module.
    A non-blind network is told σ."""
    s = _check_noise(sigma, draws)
    model = _model(handle)
    t = handle.to_tensor(y) if hasattr(handle, "to_tensor") else y
    told = _told(model, s)
    gen = torch.Generator().manual_seed(seed)
    total = None
    lock = getattr(handle, "lock", None)
    with (lock if lock is not None else nullcontext()), torch.no_grad():
        for _ in range(draws if s > 0 else 1):
            yy = t if s == 0 else t + s * torch.randn(t.shape, generator=gen).to(t.device, t.dtype)
            phi = representation(model, yy, block, told)
            total = phi if total is None else total + phi
    return (total / (draws if s > 0 else 1)).to("cpu", torch.float32)


def features_of_images(handle: object, images: np.ndarray, block: str, sigma: float | None = None, draws: int = 1,
                       seed: int = 0, batch: int = 250,
                       progress: Callable[[int, int], object] | None = None,
                       stop: Callable[[], bool] | None = None) -> np.ndarray:
    """φ_b(x_n; σ) for a stack of gray images (N, H, W) as an (N, K_b) float32 array, ``batch`` at a time.

    Batch j uses seed ``seed + j`` for its noise, so the result depends on ``batch``. ``progress(done, N)``
    after each batch; ``stop()`` true ends early (the rows not computed are NaN)."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim != 3:
        raise ValueError(f"expected a stack of gray images (N, H, W), got shape {a.shape}")
    out: np.ndarray | None = None
    for j, start in enumerate(range(0, len(a), batch)):
        if stop is not None and stop():
            break
        phi = features(handle, torch.from_numpy(a[start:start + batch, None]), block, sigma, draws, seed + j).numpy()
        if out is None:
            out = np.full((len(a), phi.shape[1]), np.nan, dtype=np.float32)
        out[start:start + len(phi)] = phi
        if progress is not None:
            progress(min(start + batch, len(a)), len(a))
    if out is None:
        return np.full((len(a), channel_count(handle, block)), np.nan, dtype=np.float32)
    return out


def robustness_curves(handle: object, images: np.ndarray, sigmas: list[float], names: list[str] | None = None,
                      seed: int = 0, stop: Callable[[], bool] | None = None) -> dict[str, dict[float, float]]:
    """Per block (all of :func:`block_names` unless ``names``): σ → the mean over the images of the correlation
    across channels of φ_b(x + σz) (one draw) with φ_b(x) (:func:`explorer.representation_stats.robustness`).
    ``stop()`` true ends early, with the blocks done so far."""
    out: dict[str, dict[float, float]] = {}
    for name in names or block_names(handle):
        if stop is not None and stop():
            break
        clean = features_of_images(handle, images, name)
        noisy = {float(s): features_of_images(handle, images, name, s, 1, seed) for s in sigmas}
        out[name] = robustness(clean, noisy)
    return out
