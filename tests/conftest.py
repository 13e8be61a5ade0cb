"""Shared fixtures: tiny calibrated networks and paths to the shared data beside the project."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from explorer.denoisers import DnCNN, UNet

SHARED = Path(__file__).resolve().parents[2] / "shared"

def calibrated(model: torch.nn.Module, shape=(8, 1, 24, 24), seed: int = 0) -> torch.nn.Module:
    """Run one training-mode pass on noisy random images so the norm layers hold sensible statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.train()
        model(torch.rand(shape, generator=g) + 0.1 * torch.randn(shape, generator=g))
    return model.eval()


@pytest.fixture
def tiny_bf_cnn() -> DnCNN:
    torch.manual_seed(0)
    return calibrated(DnCNN(depth=5, width=8, bias_free=True))


@pytest.fixture
def tiny_biased_cnn() -> DnCNN:
    torch.manual_seed(0)
    return calibrated(DnCNN(depth=5, width=8, bias_free=False))


@pytest.fixture
def tiny_bf_unet() -> UNet:
    torch.manual_seed(0)
    return calibrated(UNet(width=8, levels=3, convs_per_block=1, bias_free=True))


@pytest.fixture
def tiny_biased_unet() -> UNet:
    torch.manual_seed(0)
    return calibrated(UNet(width=8, levels=3, convs_per_block=1, bias_free=False))


@pytest.fixture
def shared_dir() -> Path:
    return SHARED
