"""The −log p map of a photograph against per-patch calls; gradient energy, denoising gain and correlations
on patches whose values are known (explorer.energy_maps, explorer.patch_measures)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.energy import EnergyUNet, NLLQuantity, discrete_nll
from explorer.energy_maps import nll_map
from explorer.patch_measures import correlations, denoising_gain, gradient_energy

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> EnergyUNet:
    torch.manual_seed(0)
    m = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=8, t_min=1e-4, t_max=10.0)
    with torch.no_grad():
        m.head.weight.normal_(0, 0.3)
        m.set_data_stats(torch.rand(16, 1, 12, 12))
        m.log_z.fill_(-7.5)
    return m.eval()


@pytest.mark.parametrize("quantity", [NLLQuantity(), NLLQuantity(8, 2)], ids=["continuous", "8-bit"])
def test_the_map_is_the_nll_of_each_patch_alone(model, quantity):
    img = np.random.default_rng(0).random((31, 26)).astype(np.float32)
    m = nll_map(model, img, size=12, stride=5, quantity=quantity, batch=7)  # batches cut across rows of the map
    assert m.tops.tolist() == [0, 5, 10, 15] and m.lefts.tolist() == [0, 5, 10] and m.nats.shape == (4, 3)
    for i, r in enumerate(m.tops):
        for j, c in enumerate(m.lefts):
            x = torch.from_numpy(img[r:r + 12, c:c + 12].copy())[None, None]
            with torch.no_grad():
                alone = float(model.nll(x)[0]) if not quantity.discrete else float(
                    discrete_nll(model.nll, x, 8, 2).nats[0])
            assert m.nats[i, j] == pytest.approx(alone, rel=1e-5, abs=1e-3)
    assert m.d == 144 and np.allclose(m.in_unit("bits/dim"), m.nats / (144 * math.log(2)))
    assert m.extent() == (3.5, 3.5, 3.5 + 3 * 5, 3.5 + 4 * 5)  # cells: the 5×5 squares at the patch centres
    assert np.isnan(m.draw_sd).all() != quantity.discrete


def test_gradient_energy_of_known_patches():
    h, w, a = 6, 5, 0.1
    ramp = torch.arange(w, dtype=torch.float64).expand(h, w) * a  # ∂x = a everywhere, ∂y = 0
    checker = torch.from_numpy((np.indices((h, w)).sum(0) % 2).astype(np.float64))  # every difference is ±1
    g = gradient_energy(torch.stack([torch.full((h, w), 0.3, dtype=torch.float64), ramp, checker])[:, None])
    assert g[0] == 0 and g[1] == pytest.approx(a**2 * h * (w - 1) / (h * w))
    assert g[2] == pytest.approx((h * (w - 1) + (h - 1) * w) / (h * w))
    with pytest.raises(ValueError, match="sides ≥ 2"):
        gradient_energy(torch.zeros(1, 1, 1, 5))


def test_denoising_gain_of_known_denoisers():
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert np.allclose(denoising_gain(lambda y, s: y, x), 0.0)  # doing nothing gains nothing
    # x̂ = (y + x)/2 halves the error: PSNR rises by 20·log10(2) = 6.02 dB for every patch
    gains = denoising_gain(lambda y, s: (y + x[: len(y)]) / 2, x, batch=8)
    np.testing.assert_allclose(gains, 20 * math.log10(2), rtol=1e-5)
    np.testing.assert_array_equal(denoising_gain(lambda y, s: y * 0.9, x, seed=3), denoising_gain(lambda y, s: y * 0.9, x, seed=3))


def test_correlations():
    a = np.arange(10.0)
    c = correlations(a, np.exp(a))  # monotone but not linear: ρ = 1 > r
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] < 0.9 and c["n"] == 10
    assert correlations(a, -a)["pearson"] == pytest.approx(-1.0)
    assert math.isnan(correlations(a, np.ones(10))["pearson"])
    assert correlations(np.r_[a, np.nan], np.r_[a, 1.0])["n"] == 10  # non-finite pairs are left out
