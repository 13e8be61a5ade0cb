"""ModelHandle: one denoiser on one device, shared safely between sessions.

The handle owns the module (eval mode, parameters frozen), a re-entrant lock serialising access so that
concurrent Panel sessions can share one model, and numpy <-> torch conversion so a caller can pass an
(H, W) / (H, W, C) array or a (B, C, H, W) tensor and get the same kind back.

The lock is a :class:`explorer.scheduler.ModelLock`: interactive requests before streaming before bulk,
sessions in turn, within the device's compute budget; ``denoise`` / ``residual`` calls that queue at the
same time are batched into one forward pass (:mod:`explorer.batching`). ``EXPLORER_SCHEDULER=fifo``
selects the former design instead (one first-come-first-served lock per model, no batching), to compare.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .denoisers.base import Denoiser, SigmaLike
from .device import default_device
from .batching import Batcher
from .fairlock import FairRLock
from .scheduler import ModelLock, PriorityGate, device_gate
from . import usage

ArrayOrTensor = np.ndarray | Tensor
SCHEDULERS = ("priority", "fifo")


def scheduler_mode() -> str:
    """``$EXPLORER_SCHEDULER``: ``priority`` (the default) or ``fifo`` (the lock-only design, to compare)."""
    mode = os.environ.get("EXPLORER_SCHEDULER", "priority")
    if mode not in SCHEDULERS:
        raise ValueError(f"EXPLORER_SCHEDULER={mode!r}: choose one of {', '.join(SCHEDULERS)}")
    return mode


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu", dtype=torch.float32) -> Tensor:
    """(H, W) or (H, W, C) numpy image → (1, C, H, W) tensor."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        a = np.moveaxis(a, -1, 0)
    else:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)[None]


def tensor_to_image(t: Tensor) -> np.ndarray:
    """(1, C, H, W) tensor → (H, W) numpy image when C = 1, else (H, W, C); float32."""
    if t.ndim != 4 or t.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) tensor, got shape {tuple(t.shape)}")
    a = t[0].detach().to("cpu", torch.float32).numpy()
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


class ModelHandle:
    """A denoiser placed on a device, frozen, in eval mode, behind a lock.

    ``denoise(y)`` = x̂(y) and ``residual(y)`` = y − x̂(y) accept a (B, C, H, W) tensor (returned as a
    tensor on the caller's device) or a numpy (H, W) / (H, W, C) image (returned as an array).
    ``model`` is the underlying differentiable :class:`Denoiser` for autograd-based analyses; hold
    ``lock`` while using it from several threads.
    """

    def __init__(
        self,
        model: Denoiser,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        card: dict[str, Any] | None = None,
        name: str | None = None,
    ):
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype
        self.model = model.to(self.device, dtype).eval()
        self.model.requires_grad_(False)
        self.card = card or {}
        self.name = name or self.card.get("name") or type(model).__name__
        self.lock: ModelLock | FairRLock
        self._batcher: Batcher | None
        if scheduler_mode() == "fifo":
            self.lock, self._batcher = FairRLock(), None
        else:
            self.lock = ModelLock(PriorityGate(1, name=self.name, hold_back=True), device_gate(self.device))
            self._batcher = Batcher(self.lock, cpu=self.device.type == "cpu",
                                    split=bool(getattr(model, "concurrent_forward", False)))
        self._padding_noted: set[tuple[int, int]] = set()

    # --- flags of the wrapped denoiser
    @property
    def blind(self) -> bool:
        return self.model.blind

    @property
    def bias_free(self) -> bool:
        return self.model.bias_free

    @property
    def channels(self) -> int:
        return self.model.channels

    def __repr__(self) -> str:
        return f"ModelHandle({self.name!r}, device={self.device}, blind={self.blind}, bias_free={self.bias_free})"

    # --- conversions
    def to_tensor(self, y: ArrayOrTensor) -> Tensor:
        """An array image or a tensor batch → a (B, C, H, W) tensor on the model's device and dtype.

        Raises ValueError for a wrong channel count, an image smaller than the model's ``min_size``, or
        non-finite values."""
        if isinstance(y, Tensor):
            if y.ndim != 4:
                raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(y.shape)}")
            t = y.to(self.device, self.dtype)
        else:
            t = image_to_tensor(y, self.device, self.dtype)
        if t.shape[1] != self.channels:
            raise ValueError(f"{self.name} takes {self.channels}-channel images, got {t.shape[1]} channels")
        smallest = getattr(self.model, "min_size", 1)
        if min(t.shape[-2:]) < smallest:
            raise ValueError(f"{self.name} needs images of at least {smallest}×{smallest} pixels, "
                             f"got {t.shape[-2]}×{t.shape[-1]}")
        if not torch.isfinite(t).all():
            raise ValueError("the image contains NaN or infinite values")
        self._note_padding(tuple(t.shape[-2:]))
        return t

    def _note_padding(self, hw: tuple[int, int]) -> None:
        """Say (once per image size) when the network reflect-pads the image to its ``multiple`` and crops back."""
        m = getattr(self.model, "multiple", 1)
        if m > 1 and (hw[0] % m or hw[1] % m) and hw not in self._padding_noted:
            self._padding_noted.add(hw)
            padded = tuple(-(-s // m) * m for s in hw)
            warnings.warn(f"{self.name}: a {hw[0]}×{hw[1]} image is reflect-padded to {padded[0]}×{padded[1]} "
                          f"(sides must be multiples of {m}) and the result cropped back", stacklevel=3)

    def _apply(self, fn, y: ArrayOrTensor, sigma: SigmaLike) -> ArrayOrTensor:
        t = self.to_tensor(y)
        if isinstance(sigma, Tensor):
            sigma = sigma.to(self.device, self.dtype)
        if self._batcher is not None:
            out = self._batcher(fn, fn.__name__, t, sigma)
        else:
            with self.lock, torch.no_grad():
                out = fn(t, sigma)
        usage.record(t.shape[0])
        if isinstance(y, Tensor):
            return out.to(y.device, y.dtype if y.is_floating_point() else self.dtype)
        return tensor_to_image(out)

    # --- the protocol
    def denoise(self, y: ArrayOrTensor, sigma: SigmaLike = None) -> ArrayOrTensor:
        """x̂(y), the least-squares estimate of the clean image."""
        return self._apply(self.model.forward, y, sigma)

    def residual(self, y: ArrayOrTensor, sigma: SigmaLike = None) -> ArrayOrTensor:
        """r(y) = y − x̂(y), the estimated noise (the step direction is f = −r)."""
        return self._apply(self.model.residual, y, sigma)

    def nll(self, x: ArrayOrTensor) -> Tensor:
        """−log p(x) in nats per image, a (B,) tensor, for models that carry a normalized density."""
        if not callable(getattr(self.model, "nll", None)):
            raise TypeError(f"{self.name} ({type(self.model).__name__}) has no normalized density: nll needs an energy model")
        t = self.to_tensor(x)
        with self.lock, torch.no_grad():
            out = self.model.nll(t)
        return out.to(x.device) if isinstance(x, Tensor) else out.cpu()

    def energy(self, y: ArrayOrTensor, t: float | Tensor) -> Tensor:
        """U(y, t) in nats per image (up to the constant log Z), a (B,) tensor, for energy models
        (a model not yet normalized has only this relative energy)."""
        if not callable(getattr(self.model, "energy", None)):
            raise TypeError(f"{self.name} ({type(self.model).__name__}) has no energy: energy needs an energy model")
        tt = self.to_tensor(y)
        if isinstance(t, Tensor):
            t = t.to(self.device, self.dtype)
        with self.lock, torch.no_grad():
            out = self.model.energy(tt, t)
        return out.to(y.device) if isinstance(y, Tensor) else out.cpu()

    def estimate_sigma(self, y: ArrayOrTensor, sigma: SigmaLike = None) -> Tensor:
        """σ̂ per image, σ̂² = ‖r(y)‖² / N with N = C·H·W (a (B,) tensor)."""
        r = self.residual(self.to_tensor(y), sigma)
        return r.flatten(1).pow(2).mean(dim=1).sqrt()
