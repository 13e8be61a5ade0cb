"""Denoisers: the protocol, networks, classical filters and exact MMSE denoisers.

The classical arc (issue #19), Tikhonov → diffusion → total variation → bilateral / non-local means →
wavelet shrinkage → BM3D: :mod:`.variational`, :mod:`.nonlocal_filters`, :mod:`.wavelets`,
:mod:`.bm3d_denoiser` (BM3D has ``differentiable = False`` and refuses derivatives).

``ARCHITECTURES`` maps the architecture names written in model cards to their classes; a card's
``config`` holds the constructor arguments, so ``build(name, config)`` rebuilds the network.
"""
from __future__ import annotations

from typing import Any

from .base import Denoiser, ResidualNetwork, as_sigma
from .bm3d_denoiser import BM3D, NotDifferentiableError
from .classical import GaussianSmoothing, HaarShrinkage, WienerFilter, estimate_noise_sigma, haar_forward, haar_inverse
from .cnn import DnCNN
from .exact import EmpiricalDenoiser, GaussianPriorDenoiser, StationaryGaussianDenoiser, power_law
from .lab_unet import LabUNet, LabUNet2024
from .layers import BFNorm2d
from .nonlocal_filters import BilateralFilter, NonLocalMeans
from .unet import UNet
from .variational import PeronaMalik, TikhonovGradient, TotalVariation
from .wavelets import WaveletShrinkage

ARCHITECTURES: dict[str, type[Denoiser]] = {
    "dncnn": DnCNN,
    "unet": UNet,
    "lab-unet": LabUNet,
    "lab-unet-2024": LabUNet2024,
}


def register(name: str, cls: type[Denoiser]) -> type[Denoiser]:
    """Make an architecture loadable from model cards under ``name``."""
    ARCHITECTURES[name] = cls
    return cls


def build(architecture: str, config: dict[str, Any]) -> Denoiser:
    """Instantiate ``ARCHITECTURES[architecture](**config)`` with a clear error for unknown names."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}") from None
    return cls(**config)


for _name, _cls in [("gaussian", GaussianSmoothing), ("wiener", WienerFilter), ("haar", HaarShrinkage),
                    ("gaussian-prior", GaussianPriorDenoiser), ("empirical", EmpiricalDenoiser),
                    ("tikhonov", TikhonovGradient), ("perona-malik", PeronaMalik), ("total-variation", TotalVariation),
                    ("bilateral", BilateralFilter), ("nl-means", NonLocalMeans), ("wavelet", WaveletShrinkage),
                    ("bm3d", BM3D)]:
    register(_name, _cls)
del _name, _cls


__all__ = ["ARCHITECTURES", "BFNorm2d", "Denoiser", "DnCNN", "LabUNet", "LabUNet2024", "ResidualNetwork", "UNet", "as_sigma", "build", "register",
           "EmpiricalDenoiser", "GaussianPriorDenoiser", "GaussianSmoothing", "HaarShrinkage", "StationaryGaussianDenoiser",
           "WienerFilter", "estimate_noise_sigma", "haar_forward", "haar_inverse", "power_law",
           "BM3D", "BilateralFilter", "NonLocalMeans", "NotDifferentiableError", "PeronaMalik", "TikhonovGradient",
           "TotalVariation", "WaveletShrinkage"]

