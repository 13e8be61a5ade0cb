"""BM3D (Dabov, Foi, Katkovnik & Egiazarian 2007) through the ``bm3d`` package: a denoiser with no Jacobian.

BM3D groups similar blocks, filters each 3-D group by hard thresholding then by Wiener filtering in
a separable transform, and aggregates the estimates. The reference implementation is compiled code
working on numpy arrays, so there is no Jacobian to differentiate: :class:`BM3D` denoises, and any
request for derivatives (autograd, forward-mode dual numbers, ``torch.func`` transforms such as the
VJPs and JVPs of :mod:`explorer.jacobian`) raises :class:`NotDifferentiableError` before BM3D runs.
Tools can ask first: ``getattr(model, "differentiable", True)`` is False and
``model.not_differentiable_reason`` says why, in a sentence fit for the page.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.autograd import forward_ad

from .base import Denoiser, SigmaLike
from .checks import whole
from .classical import check_batch, noise_level


class NotDifferentiableError(RuntimeError):
    """A derivative of x̂(y) was asked of a denoiser that has none (``differentiable = False``)."""


def carries_derivatives(y: Tensor) -> bool:
    """True if y is tracked by autograd, is a forward-mode dual number, or lives inside a ``torch.func`` transform."""
    if y.requires_grad and torch.is_grad_enabled():
        return True
    if forward_ad.unpack_dual(y).tangent is not None:
        return True
    # torch.func (vjp, jvp, vmap) hands the function wrapped tensors; torch has no public test for them
    return bool(torch._C._functorch.is_functorch_wrapped_tensor(y))


class BM3D(Denoiser):
    """BM3D with the true σ (``bm3d.bm3d(y, sigma_psd=σ)``; ``bm3d_rgb`` for 3 channels); not blind.

    ``profile``: ``"np"`` (the package's normal profile, the reference for tables) or ``"lc"`` (its
    low-complexity profile: fewer blocks matched; measured on camera with σ = 0.1 on one thread:
    0.22 s instead of 0.54 s at 64×64 and 0.89 s instead of 2.83 s at 256×256, for 0.07 / 0.18 dB less
    PSNR), which keeps Algorithm 1 at 64×64 interactive.

    Not differentiable: ``differentiable = False``; calling it on a tensor that carries derivatives
    raises :class:`NotDifferentiableError` with ``not_differentiable_reason``. The ``bm3d`` package is
    optional (``pip install 'denoiser-explorer[bm3d]'``); without it the constructor raises ImportError.
    """

    blind = False
    bias_free = False
    differentiable = False
    not_differentiable_reason = ("BM3D (the bm3d package) is compiled block matching and collaborative filtering on "
                                 "numpy arrays: it has no Jacobian, so adaptive filters, singular vectors, effective "
                                 "dimension and posterior variance cannot be computed for it; it denoises, takes part "
                                 "in tables, and Algorithms 1 and 2 (which only call x̂) sample with it")

    PROFILES = ("np", "lc")

    def __init__(self, channels: int = 1, profile: str = "np"):
        super().__init__()
        if profile not in self.PROFILES:
            raise ValueError(f"BM3D profile must be one of {self.PROFILES}, got {profile!r}")
        try:
            import bm3d
        except ImportError:
            raise ImportError("BM3D needs the optional package bm3d: pip install 'denoiser-explorer[bm3d]'") from None
        self._bm3d: Any = bm3d
        self.channels = whole("channels", channels)
        if channels not in (1, 3):
            raise ValueError(f"BM3D denoises gray (1) or RGB (3) images, got channels={channels}")
        self.config = dict(channels=channels, profile=profile)
        self._profile: Any = bm3d.BM3DProfileLC() if profile == "lc" else "np"

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        if carries_derivatives(y):
            raise NotDifferentiableError(self.not_differentiable_reason)
        check_batch(y)
        s = noise_level(y, self._require_sigma(y, sigma)).flatten().tolist()
        out = []
        for img, si in zip(y.detach().cpu().double().numpy(), s):
            if img.shape[0] == 1:
                out.append(np.asarray(self._bm3d.bm3d(img[0], sigma_psd=si, profile=self._profile))[None])
            else:
                out.append(np.moveaxis(self._bm3d.bm3d_rgb(np.moveaxis(img, 0, -1), sigma_psd=si, profile=self._profile), -1, 0))
        return torch.as_tensor(np.stack(out), dtype=y.dtype, device=y.device)
