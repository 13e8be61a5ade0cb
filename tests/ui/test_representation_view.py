"""RepresentationView without a browser: φ of a few MNIST digits in a tiny UNet's bottom block, the cluster grid
(gray [0, 1], rows named), purity beside the pixels', a click → the item's neighbours, the statistics, robustness of
every block, guided samples with their φ-distances, and a DnCNN that says it has no bottom block."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.denoisers import UNet
from explorer.handle import ModelHandle
from explorer.ui.models import register_handle
from explorer.ui.representation_state import NEIGHBOURS, SAMPLES, mosaic, tile_at
from explorer.ui.representation_view import PER_CLUSTER, RepresentationView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TINY_UNET = "tiny-unet-representation"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_REPRESENTATION_CACHE", str(tmp_path))


@pytest.fixture(scope="module")
def tiny_unet() -> str:
    torch.manual_seed(0)
    model = UNet(width=4, levels=3, convs_per_block=1)
    with torch.no_grad():  # calibrate the norms once on noisy random images
        model.train()
        model(torch.rand(8, 1, 32, 32) + 0.1 * torch.randn(8, 1, 32, 32))
    register_handle(TINY_UNET, ModelHandle(model.eval(), device="cpu", name=TINY_UNET,
                                           card={"name": TINY_UNET, "architecture": "unet"}))
    return TINY_UNET


def make_view(model: str, **params) -> RepresentationView:
    view = RepresentationView(model=model, **{"count": 40, "k": 3, **params})
    view.main()
    view.sidebar()
    return view


def test_mosaic_tiles_and_the_tile_under_a_click():
    images = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    m = mosaic(images, 2, gap=1)
    assert m.shape == (3 * 4 + 2, 2 * 3 + 1) and np.isnan(m[4]).all() and np.isnan(m[-4:, -3:]).all()
    assert np.array_equal(m[5:9, 4:7], images[3])
    # plot y runs upwards from the bottom of the mosaic: the top row is at y near its height
    assert tile_at(0.5, m.shape[0] - 0.5, (4, 3), 3, 2, gap=1) == (0, 0)
    assert tile_at(4.5, m.shape[0] - 5.5, (4, 3), 3, 2, gap=1) == (1, 1)
    assert tile_at(3.5, m.shape[0] - 0.5, (4, 3), 3, 2, gap=1) is None  # on the gap


def test_the_view_shows_clusters_neighbours_statistics_and_robustness(tiny_unet):
    view = make_view(tiny_unet)
    shown = view.shown
    assert shown.alert == "" and "φ of 40 items (mnist:training) in block mid: 16 channels" in shown.status
    assert shown.blocks == ["enc0", "enc1", "mid", "dec1", "dec0"] and shown.block_note == ""
    assert "k = 3" in shown.purity and "on the pixels" in shown.purity and "one single cluster" in shown.purity
    a = view.analysis
    assert a.phi.shape == (40, 16) and a.data.classes.shape == (40,)
    assert 0 < a.purity <= 1 and 0 < a.pixel_purity <= 1
    assert shown.clusters.clim == (0.0, 1.0) and len(shown.clusters.rows) == 3
    assert all(r.startswith(f"cluster {j} · ") and " are " in r for j, r in enumerate(shown.clusters.rows))
    assert shown.clusters.image.shape[1] == PER_CLUSTER * 32 + (PER_CLUSTER - 1) * 2
    assert "% of the variance" in shown.pca.xlabel and "% of the variance" in shown.pca.ylabel
    assert [len(r) for r in shown.neighbours] == [NEIGHBOURS + 1] * 2
    assert shown.neighbours[0][0].startswith(f"query {a.data.classes[0]} · #0") and "d = " in shown.neighbours[1][1]
    assert shown.stats[0].startswith("Sparsity: median") and shown.stats[2].startswith("Class selectivity")
    assert shown.robustness == sorted(shown.blocks) and "Done in" in shown.status

    # a click on the second tile of cluster row 1 makes that member the query
    members = view._members[1]
    h = shown.clusters.image.shape[0]
    view._on_tap(x=34 + 5, y=h - (34 + 5))
    assert view.query == int(members[1])
    assert view.shown.neighbours[0][0].endswith(f"#{members[1]}")
    idx, dist = a.neighbours(view.query)["phi"]
    assert view.query not in idx and np.all(np.diff(dist) >= 0)

    view.k = 4  # a new k reclusters (φ from the cache)
    assert len(view.shown.clusters.rows) == 4


def test_guided_samples_show_the_target_and_each_distance(tiny_handle):
    view = make_view("tiny-test", draws=1, count=20)
    assert view.block == "layer4"  # the deepest layer of a network without a bottom block
    assert "tiny-test has no bottom block 'mid' (it never downsamples): its blocks are layer1" in view.shown.block_note
    view.select(2)
    view.sample()
    g = view.guided
    assert g.images.shape == (SAMPLES, 32, 32) and g.distances.shape == (SAMPLES,) and len(g.labels) == SAMPLES
    labels = view.shown.guided.labels
    assert labels[0] == "target" and len(labels) == SAMPLES + 1 and " · " in labels[1]
    assert "median ‖φ(x̂) − φ*‖/‖φ*‖ = " in view.shown.guided.text and "target's label" in view.shown.guided.text
    view.target = "its cluster's mean φ"
    view.sample()
    assert view.guided.target is None and "the mean φ of cluster" in view.guided.target_text
