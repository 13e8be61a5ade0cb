"""Bias-free networks are positively homogeneous and locally linear; their biased twins are not."""
from __future__ import annotations

import pytest
import torch
from torch.func import jvp

from explorer.denoisers import DnCNN, UNet


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("fixture", ["tiny_bf_cnn", "tiny_bf_unet"])
@pytest.mark.parametrize("alpha", [0.5, 2.0, 10.0])
def test_bias_free_residual_is_homogeneous(request, fixture, alpha):
    """r(αy) = α r(y) for α > 0 (rel. err < 1e-5)."""
    model = request.getfixturevalue(fixture)
    y = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    assert _rel(model.residual(alpha * y), alpha * model.residual(y)) < 1e-5


@pytest.mark.parametrize("fixture", ["tiny_bf_cnn", "tiny_bf_unet"])
def test_bias_free_residual_of_zero_is_zero(request, fixture):
    model = request.getfixturevalue(fixture)
    assert model.residual(torch.zeros(1, 1, 16, 16)).abs().max().item() == 0.0


@pytest.mark.parametrize("fixture", ["tiny_biased_cnn", "tiny_biased_unet"])
def test_biased_twin_is_not_homogeneous(request, fixture):
    model = request.getfixturevalue(fixture)
    y = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    assert _rel(model.residual(2.0 * y), 2.0 * model.residual(y)) > 1e-3
    assert model.residual(torch.zeros(1, 1, 16, 16)).abs().max().item() > 1e-4


@pytest.mark.parametrize("fixture", ["tiny_bf_cnn", "tiny_bf_unet"])
def test_jacobian_times_y_equals_residual(request, fixture):
    """Euler's identity for a degree-1 homogeneous map: J_r(y)·y = r(y) (< 1e-4), via one JVP."""
    model = request.getfixturevalue(fixture)
    y = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    r, jy = jvp(model.residual, (y,), (y,))
    assert _rel(jy, r) < 1e-4


def test_biased_twin_breaks_jacobian_identity(tiny_biased_cnn):
    y = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    r, jy = jvp(tiny_biased_cnn.residual, (y,), (y,))
    assert _rel(jy, r) > 1e-3


def test_unet_pads_odd_sizes_and_keeps_shape(tiny_bf_unet):
    y = torch.rand(1, 1, 21, 30)
    assert tiny_bf_unet(y).shape == y.shape


def test_bias_free_layers_have_no_additive_parameters():
    for model in (DnCNN(depth=4, width=8), UNet(width=8, levels=2)):
        for name, p in model.named_parameters():
            assert not name.endswith("bias"), name


def test_denoised_is_input_minus_residual(tiny_bf_cnn):
    y = torch.rand(1, 1, 12, 12)
    torch.testing.assert_close(tiny_bf_cnn(y), y - tiny_bf_cnn.residual(y))
