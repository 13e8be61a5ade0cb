"""The Energies tool on photographs' patches, without a browser (a tiny random-weight EnergyUNet whose card names a
training folder): patches at a stride, the Gaussian baseline of the training folder on the same patches, the spread
as a probability ratio, the scatter data against the library's gradient energy and denoising gain, the map against
explorer.energy_maps.nll_map, and a model with no training data (no baseline, said)."""
from __future__ import annotations

import io
import math

import holoviews as hv
import numpy as np
import pytest
import torch
from PIL import Image

from explorer import energies
from explorer.energy import EnergyUNet, nll_quantity
from explorer.energy_maps import nll_map
from explorer.gaussian_baseline import fit_stationary_gaussian, patches_of
from explorer.handle import ModelHandle
from explorer.patch_measures import correlations, denoising_gain, gradient_energy
from explorer.ui import energy_patch_plots
from explorer.ui.energy_view import EnergyView
from explorer.ui.models import get_handle, register_handle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAME, BARE = "tiny-photo-energy", "tiny-photo-energy-no-card"
P = 16
SMOOTHING = "classical: Gaussian smoothing"


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _photos(folder, n: int, seed: int) -> None:
    """n 40×36 gray 'photographs': smooth gradients plus texture of varying strength."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :36] / 40
    for i in range(n):
        a = 0.5 + 0.3 * np.sin(2 * np.pi * (xx + i * yy)) + (0.03 + 0.05 * i) * rng.standard_normal((40, 36))
        (folder / f"photo{i}.png").write_bytes(_png(a))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    _photos(root / "train", 4, 0)
    _photos(root / "held", 3, 1)
    torch.manual_seed(0)
    model = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8, t_min=1e-4, t_max=10.0)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)
        model.set_data_stats(torch.rand(16, 1, P, P))
        model.log_z.fill_(-300.0)
    card = {"name": NAME, "architecture": "energy-unet", "training": {"data": str(root / "train")},
            "energy": {"dequantize_bits": 8}}
    register_handle(NAME, ModelHandle(model, device="cpu", name=NAME, card=card))
    register_handle(BARE, ModelHandle(model, device="cpu", name=BARE, card={"name": BARE, "architecture": "energy-unet"}))
    return root


@pytest.fixture(scope="module")
def view(folders):
    import os

    os.environ["EXPLORER_ENERGY_CACHE"] = str(folders / "cache")
    v = EnergyView(model=NAME, dataset="image folder", folder=str(folders / "held"), folder_patches=True, patch=P,
                   stride=8, per_image=5, draws=2)
    assert v.patches.state.map is None and "Tick" in v.patches.map_text.object  # nothing computed until asked
    v.patches.state.param.update(map_size="original", map_stride=4, denoiser=SMOOTHING)
    v.patches.state.active = True
    return v


def test_patches_at_a_stride_and_the_baseline_on_the_same_patches(view, folders):
    s = view.state
    assert len(s.items) == 3 * 5 and s.items[0].label == "photo0.png@0,0"  # 4×3 positions at stride 8, 5 spread
    assert s.quantity == nll_quantity(get_handle(NAME).card, draws=2) and s.quantity.bits == 8
    x = torch.from_numpy(np.stack([it.load() for it in s.items]))[:, None]
    train, _ = patches_of(str(folders / "train"), P, P // 2)
    expected = energies.image_energies(fit_stationary_gaussian(train, 8), x, quantity=s.quantity)
    np.testing.assert_allclose(s.baseline.nats, expected, rtol=1e-9)
    diff = (expected - s.report.values) / (P * P * math.log(2))
    assert s.baseline_margin() == pytest.approx((diff.mean(), diff.std(ddof=1) / math.sqrt(diff.size)), rel=1e-9)
    assert "stationary Gaussian baseline, mean (15 images)" in view.summary.object
    assert f"{train.shape[0]} {P}×{P} patches of train" in view.summary.object
    fig = view.histogram.object
    assert any("stationary Gaussian (mean)" in str(t.text) for t in fig if isinstance(t, hv.Text))
    k = (s.report.values.max() - s.report.values.min()) / math.log(10)
    assert s.probability_ratio() == pytest.approx(k) and f"10^{k:.0f}" in fig.opts.get().kwargs["title"]
    assert f"| spread: p(most probable) / p(least probable) | 10^{k:.0f} |" in view.summary.object


def test_the_scatter_data_are_the_librarys(view):
    p = view.patches.state
    x = torch.from_numpy(np.stack([it.load() for it in view.state.items]))[:, None]
    np.testing.assert_allclose(p.gradient, gradient_energy(x), rtol=1e-12)
    np.testing.assert_allclose(p.gain, denoising_gain(get_handle(SMOOTHING).denoise, x), rtol=1e-6)
    grad = view.patches.gradient.object
    np.testing.assert_allclose(grad.dimension_values(0), np.log10(gradient_energy(x)))
    np.testing.assert_allclose(grad.dimension_values(1), view.state.values())
    assert grad.vdims[0].label == "−log P(x), 8-bit discrete (bits/dim)" and "log₁₀ G" in grad.kdims[0].label
    c = correlations(p.gain, view.state.values())
    assert f"Spearman ρ = {c['spearman']:.3f}" in view.patches.correlations.object
    assert "denoising gain of classical: Gaussian smoothing" in view.patches.gain.object.kdims[0].label


def test_the_map_is_nll_map_of_the_photograph(view, folders):
    p = view.patches.state
    assert p.param.photo.objects[:3] == ["held/photo0.png", "held/photo1.png", "held/photo2.png"]
    assert p.photo == "held/photo0.png"
    img = np.asarray(Image.open(folders / "held" / "photo0.png"), dtype=np.float32) / 255
    expected = nll_map(get_handle(NAME), img, P, 4, view.state.quantity)
    np.testing.assert_allclose(p.map.nats, expected.nats, rtol=1e-9)
    assert p.map.nats.shape == (7, 6)  # (40 − 16)/4 + 1 rows, (36 − 16)/4 + 1 = 6 columns
    heat = [el for el in view.patches.map.object.values()[1] if isinstance(el, hv.Image)][1]
    # drawn with row 0 at the top (HoloViews lists an image's rows from the bottom up)
    np.testing.assert_allclose(np.flipud(heat.dimension_values(2, flat=False)), p.map.in_unit("bits/dim"), rtol=1e-6)
    left, top, right, bottom = p.map.extent()
    assert heat.bounds.lbrt() == (left, 40 - bottom, right, 40 - top) == (6.0, 6.0, 30.0, 34.0)
    assert heat.opts.get().kwargs["colorbar"] and "bits/dim" in heat.opts.get().kwargs["colorbar_opts"]["title"]
    assert "probability ratio of 10^" in view.patches.map_text.object
    view.state.unit = "dB/dim"  # the map converts with the unit
    heat = [el for el in view.patches.map.object.values()[1] if isinstance(el, hv.Image)][1]
    assert "dB/dim" in heat.opts.get().kwargs["colorbar_opts"]["title"]
    view.state.unit = "bits/dim"


def test_a_model_without_training_data_says_there_is_no_baseline(folders):
    v = EnergyView(model=BARE, dataset="image folder", folder=str(folders / "held"), folder_patches=True, patch=P,
                   per_image=2, draws=1)
    v.patches.state.param.update(denoiser="— none —", map_size=128, active=True)
    assert v.state.baseline.nats is None and "no Gaussian baseline: its card names no training data" in v.summary.object
    assert np.isnan(v.patches.state.gain).all() and np.isfinite(v.patches.state.gradient).all()
    assert v.patches.gain.object is None and v.patches.gradient.object is not None
