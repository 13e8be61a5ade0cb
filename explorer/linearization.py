"""The linearization of a denoiser at a noisy image y: A = ∂x̂/∂y as batched products, matrix-free.

Everything in :mod:`explorer.jacobian` is built on two batched products with N = C·H·W:

- ``jvp``: A v for K tangent images v at once (a column-space product),
- ``vjp``: Aᵀ u for K cotangent images u at once (row i of A is Aᵀ e_i).

Fast path. A ReLU network whose other layers are linear or affine in its input (our DnCNN and UNet in
eval mode: Conv2d, BFNorm2d / BatchNorm2d, average pooling, bilinear upsampling, concatenation,
padding) is piecewise affine, so x̂(y + δ) = x̂(y) + A δ exactly while no ReLU changes sign, and
A v = L_y(v) − L_y(0), where L_y is the network *replayed* with every ReLU replaced by a multiplication
with its mask 1[pre-activation > 0] recorded at y. A batch of K tangents then costs one plain forward
pass of batch K (no forward-mode AD). On the lab's 20-layer BF-DnCNN at 40×40 that is ≈2.3× faster
than ``vmap(jvp)``. Any other denoiser takes the generic path (``torch.func.jvp`` under ``vmap``).
VJPs always use reverse mode at y (``torch.func.vjp``) with the pullback ``vmap``-ed over the
cotangents; a ReLU's pullback already uses the mask at y.

σ is held fixed: the products differentiate x̂(y, σ) in y only, at the σ given (``None`` for a blind
denoiser, which then estimates it; see :mod:`explorer.denoisers.classical` for the classical filters,
whose estimate the analyses hold constant).
"""
from __future__ import annotations

import hashlib
import math
import weakref
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import jvp as _func_jvp
from torch.func import vjp as _func_vjp
from torch.func import vmap
from torch.overrides import TorchFunctionMode

from .denoisers.base import Denoiser, SigmaLike
from .denoisers.cnn import DnCNN
from .denoisers.layers import BFNorm2d
from .denoisers.unet import UNet
from .handle import ArrayOrTensor, ModelHandle

Route = Literal["auto", "replay", "autodiff"]

#: Batches of tangents are cut so that batch × H × W stays under this (bounds activation memory).
MAX_BATCH_PIXELS = 2**18
#: The dense Jacobian is refused above this N (N² entries).
MAX_DENSE = 4096
#: :func:`linearize` keeps this many linearizations per handle (the latest images it was asked about).
CACHED_LINEARIZATIONS = 2

_RELUS = {F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
_PIECEWISE_AFFINE_LEAVES = (nn.Conv2d, BFNorm2d, nn.BatchNorm2d, nn.ReLU)


class _ReluMasks(TorchFunctionMode):
    """Records 1[x > 0] at every ReLU call (``masks is None``), or replays ReLU(x) as x · mask."""

    def __init__(self, masks: list[Tensor] | None = None):
        super().__init__()
        self.recording = masks is None
        self.masks: list[Tensor] = [] if masks is None else masks
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _RELUS:
            return func(*args, **kwargs)
        x = args[0]
        if self.recording:
            self.masks.append((x > 0).detach())
            return func(*args, **kwargs)
        if self.calls >= len(self.masks):
            raise RuntimeError("the replayed network calls ReLU more often than at the recorded point")
        mask = self.masks[self.calls]
        self.calls += 1
        inplace = func in (torch.relu_, Tensor.relu_) or kwargs.get("inplace", False)
        return x.mul_(mask) if inplace else x * mask


def is_piecewise_affine(model: nn.Module) -> bool:
    """True if the replay fast path is exact: an eval-mode DnCNN/UNet whose only nonlinearity is ReLU."""
    if type(model) not in (DnCNN, UNet) or model.training:
        return False
    return all(
        isinstance(m, _PIECEWISE_AFFINE_LEAVES + (nn.Sequential, nn.ModuleList))
        for m in model.modules()
        if m is not model
    )


class Linearization:
    """The denoiser linearized at y: x̂(y + δ) = x̂(y) + A δ + o(δ), A = ∂x̂/∂y (N × N, N = C·H·W).

    ``jvp(V)`` = A v and ``vjp(U)`` = Aᵀ u for stacks (K, C, H, W); ``xhat`` = x̂(y) (C, H, W).
    ``path``: ``'replay'`` (ReLU masks frozen, exact for :func:`is_piecewise_affine` models),
    ``'autodiff'`` (torch.func.jvp, any differentiable denoiser) or ``'auto'`` (replay when exact).
    The model must not change while the linearization is used (hold the handle's lock).
    """

    def __init__(self, model: Denoiser, y: Tensor, sigma: SigmaLike = None, path: Route = "auto"):
        if y.ndim != 4 or y.shape[0] != 1:
            raise ValueError(f"linearize at one image: expected (1, C, H, W), got {tuple(y.shape)}")
        if path not in ("auto", "replay", "autodiff"):
            raise ValueError(f"path must be 'auto', 'replay' or 'autodiff', got {path!r}")
        exact_replay = is_piecewise_affine(model)
        if path == "replay" and not exact_replay:
            raise ValueError(f"the replay path is exact only for eval-mode DnCNN/UNet, not {type(model).__name__}")
        if isinstance(sigma, Tensor):
            if sigma.numel() != 1:
                raise ValueError(f"linearize at one image: sigma must be a scalar, got {sigma.numel()} values")
            sigma = sigma.item()
        self.model = model
        self.sigma = sigma
        self.y = y.detach()
        self.shape = tuple(y.shape[1:])
        self.n = math.prod(self.shape)
        self.path = "replay" if (path == "replay" or (path == "auto" and exact_replay)) else "autodiff"
        h, w = self.shape[-2:]
        self.batch = max(1, MAX_BATCH_PIXELS // (h * w))
        self._xhat: Tensor | None = None
        self._masks: list[Tensor] | None = None
        self._offset: Tensor | None = None
        self._vjp_fn = None

    def _f(self, t: Tensor) -> Tensor:
        return self.model(t, self.sigma)

    @property
    def xhat(self) -> Tensor:
        """x̂(y) as an image (C, H, W)."""
        if self._xhat is None:
            if self.path == "replay":
                self._record()
            else:
                with torch.no_grad():
                    self._xhat = self._f(self.y)[0]
        return self._xhat

    def _record(self) -> list[Tensor]:
        """One forward pass at y recording the ReLU masks (and, for biased nets, the offset L_y(0))."""
        if self._masks is None:
            with torch.no_grad(), _ReluMasks() as rec:
                self._xhat = self._f(self.y)[0]
            self._masks = rec.masks
            if not self.model.bias_free:
                self._offset = self._replay(torch.zeros_like(self.y))
        return self._masks

    def _replay(self, v: Tensor) -> Tensor:
        """L_y(v): the network with the ReLU masks recorded at y (affine in v; linear if bias-free)."""
        masks = self._record()
        with torch.no_grad(), _ReluMasks(masks) as rep:
            out = self._f(v)
        if rep.calls != len(masks):
            raise RuntimeError("the replayed network called ReLU fewer times than at the recorded point")
        return out

    def _check(self, v: Tensor, name: str) -> Tensor:
        if v.ndim != 4 or tuple(v.shape[1:]) != self.shape:
            raise ValueError(f"{name} must be a (K, {', '.join(map(str, self.shape))}) stack, got {tuple(v.shape)}")
        return v.to(self.y.device, self.y.dtype)

    def jvp(self, V: Tensor) -> Tensor:
        """A v for each image v of V (K, C, H, W)."""
        V = self._check(V, "V")
        return torch.cat([self._jvp(c) for c in V.split(self.batch)]) if len(V) else V.clone()

    def _jvp(self, V: Tensor) -> Tensor:
        if self.path == "replay":
            out = self._replay(V)
            return out - self._offset if self._offset is not None else out

        def one(v: Tensor) -> Tensor:
            return _func_jvp(self._f, (self.y,), (v[None],))[1][0]

        with torch.no_grad():
            return vmap(one)(V)

    def vjp(self, U: Tensor) -> Tensor:
        """Aᵀ u for each image u of U (K, C, H, W); with u = e_i this is row i of A.

        Reverse mode at y (one forward pass, kept), then ``vmap`` of the pullback over the stack
        (on the lab's DnCNN ~3× faster than ``autograd.grad(is_grads_batched=True)`` or a loop).
        """
        U = self._check(U, "U")
        if not len(U):
            return U.clone()
        if self._vjp_fn is None:
            out, self._vjp_fn = _func_vjp(self._f, self.y)
            if self._xhat is None:
                self._xhat = out.detach()[0]
        pull = vmap(lambda u: self._vjp_fn(u[None])[0][0])
        return torch.cat([pull(c) for c in U.split(self.batch)])

    def sym(self, V: Tensor) -> Tensor:
        """A_s v = (A v + Aᵀ v)/2, the symmetric part."""
        return 0.5 * (self.jvp(V) + self.vjp(V))

    def dense(self) -> Tensor:
        """A as an (N, N) matrix, A[i, j] = ∂x̂_i/∂y_j, from N batched products (columns or rows)."""
        if self.n > MAX_DENSE:
            raise ValueError(f"the dense Jacobian has N² entries; N = {self.n} exceeds MAX_DENSE = {MAX_DENSE}")
        eye = torch.eye(self.n, dtype=self.y.dtype, device=self.y.device).reshape(self.n, *self.shape)
        if self.path == "replay":  # columns: A e_j, one cheap forward each
            return self.jvp(eye).reshape(self.n, self.n).T.contiguous()
        return self.vjp(eye).reshape(self.n, self.n)  # rows: Aᵀ e_i


def _image(handle: ModelHandle, y: ArrayOrTensor) -> Tensor:
    """A single image as (1, C, H, W) on the handle's device: accepts (H, W) / (H, W, C) arrays, (C, H, W) or (1, C, H, W) tensors."""
    if isinstance(y, Tensor) and y.ndim == 3:
        y = y[None]
    t = handle.to_tensor(y)
    if t.shape[0] != 1:
        raise ValueError(f"the Jacobian is taken at one image; got a batch of {t.shape[0]}")
    return t


_CACHE: weakref.WeakKeyDictionary[ModelHandle, OrderedDict[tuple, Linearization]] = weakref.WeakKeyDictionary()


def _cache_key(y: Tensor, sigma: SigmaLike, path: Route) -> tuple:
    """What a linearization depends on: the image's bytes (hashed), shape, dtype and device, σ and the path."""
    digest = hashlib.blake2b(y.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
    if isinstance(sigma, Tensor):
        sigma = sigma.item() if sigma.numel() == 1 else tuple(sigma.flatten().tolist())
    return digest, tuple(y.shape), str(y.dtype), str(y.device), sigma, path


def linearize(handle: ModelHandle, y: ArrayOrTensor, sigma: SigmaLike = None, *, path: Route = "auto") -> Linearization:
    """A :class:`Linearization` of ``handle.model`` at y (hold ``handle.lock`` while using it).

    The last :data:`CACHED_LINEARIZATIONS` of each handle are kept, keyed by the image's content, σ and
    the path, so that further products at the same image reuse its recorded forward pass (ReLU masks,
    reverse-mode graph): a second click's filter costs one VJP. A new image, σ or model makes a new one.
    """
    with handle.lock:
        t = _image(handle, y)
        key = _cache_key(t, sigma, path)
        cache = _CACHE.setdefault(handle, OrderedDict())
        lin = cache.get(key)
        if lin is None or lin.model is not handle.model:
            lin = cache[key] = Linearization(handle.model, t, sigma, path)
            while len(cache) > CACHED_LINEARIZATIONS:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return lin


def forget_linearizations(handle: ModelHandle) -> None:
    """Drop the linearizations :func:`linearize` keeps for ``handle`` (benchmarks of a first click, memory)."""
    with handle.lock:
        _CACHE.pop(handle, None)


def _stack(v: Tensor) -> tuple[Tensor, bool]:
    return (v[None], True) if v.ndim == 3 else (v, False)

