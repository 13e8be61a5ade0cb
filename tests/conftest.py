"""Shared fixtures: tiny calibrated networks and paths to the shared data beside the project."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from explorer.denoisers import DnCNN, UNet

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLASSROOM_FILE = "tests/ui/test_load.py"  # eight chromium sessions and a classroom: both cores for ~8 minutes


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files so that the load test never shares the box with another browser test: it goes
    first, then every file without a browser test, then the browser files (each file's own order kept).

    ``make test`` runs two xdist workers with ``--dist loadfile --no-loadscope-reorder``, which hand out
    whole files in this order: while one worker runs the load test, the other runs CPU-only files, and a
    page that waits on a starved server (a 27 s test took over 200 s beside the load test) cannot time out.
    """
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    def drives_a_browser(item: pytest.Item) -> bool:
        return (item.get_closest_marker("browser") is not None
                or bool({"browser_page", "served_app"} & set(getattr(item, "fixturenames", ()))))

    browser_files = {file_of(i) for i in items if drives_a_browser(i)}

    def rank(item: pytest.Item) -> int:
        f = file_of(item)
        return 0 if f.endswith(CLASSROOM_FILE) else 2 if f in browser_files else 1

    order = {id(item): k for k, item in enumerate(items)}
    items.sort(key=lambda i: (rank(i), order[id(i)]))


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
