"""Shared fixtures: tiny calibrated networks and paths to the shared data beside the project."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from explorer.denoisers import DnCNN, UNet

SHARED = Path(__file__).resolve().parents[2] / "shared"

# The files that take longest (seconds measured on 2 busy cores with `make test`'s --durations), handed to
# the workers first: with `--dist loadfile` a long file that comes last keeps one worker busy alone at the end.
LONGEST_FIRST = ("tests/ui/test_load.py", "tests/test_jacobian.py", "tests/test_convert.py",
                 "tests/ui/test_browser_tour.py", "tests/ui/test_jupyterlab.py", "tests/ui/test_browser_b.py")


def pytest_collection_modifyitems(config, items):
    """Run the files of :data:`LONGEST_FIRST` first, in that order (a stable sort: the rest keeps its order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = Path(__file__).resolve().parents[1]

    def key(item) -> int:
        path = Path(str(item.fspath)).resolve()
        try:
            return rank.get(path.relative_to(root).as_posix(), len(rank))
        except ValueError:
            return len(rank)

    items.sort(key=key)


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
