"""Classical denoisers: Haar transform, Gaussian smoothing, Wiener filter, Haar shrinkage, σ̂."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch.func import jvp, vjp

from explorer import ModelHandle
from explorer.checkpoints import load_denoiser, save_model
from explorer.denoisers import (
    ARCHITECTURES,
    GaussianSmoothing,
    HaarShrinkage,
    StationaryGaussianDenoiser,
    WienerFilter,
    build,
    estimate_noise_sigma,
    haar_forward,
    haar_inverse,
    power_law,
)

DENOISERS = {
    "gaussian": lambda: GaussianSmoothing(),
    "gaussian-fixed": lambda: GaussianSmoothing(width=1.3, boundary="circular"),
    "wiener": lambda: WienerFilter(),
    "wiener-circular": lambda: WienerFilter(boundary="circular"),
    "haar": lambda: HaarShrinkage(levels=2),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_image(n: int = 32, batch: int = 2, channels: int = 1) -> torch.Tensor:
    """Low-frequency sinusoids in [0.2, 0.8] (float64)."""
    i = torch.arange(n, dtype=torch.float64)
    u, v = torch.meshgrid(i / n, i / n, indexing="ij")
    img = 0.5 + 0.2 * torch.sin(2 * math.pi * u) * torch.cos(2 * math.pi * v) + 0.1 * torch.cos(2 * math.pi * (u + 2 * v))
    return img.expand(batch, channels, n, n).clone()


def piecewise_constant(n: int = 32, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = gen(seed)
    img = torch.full((batch, 1, n, n), 0.5, dtype=torch.float64)
    for b in range(batch):
        for _ in range(5):
            i, j = torch.randint(0, n - 8, (2,), generator=g).tolist()
            h, w = torch.randint(6, n // 2, (2,), generator=g).tolist()
            img[b, 0, i : i + h, j : j + w] = torch.rand(1, generator=g, dtype=torch.float64)
    return img


# ------------------------------------------------------------------------------------------ Haar
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_haar_matrix_is_orthogonal(levels):
    n = 8
    basis = torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)
    W = haar_forward(basis, levels).reshape(n * n, n * n)  # rows: transforms of the basis images
    assert torch.allclose(W @ W.T, torch.eye(n * n, dtype=torch.float64), atol=1e-12)


def test_haar_preserves_norm_and_inverts_float32():
    x = torch.randn(3, 2, 16, 24, generator=gen(0))
    c = haar_forward(x, 3)
    assert c.shape == x.shape
    assert torch.allclose(c.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-6)
    assert (haar_inverse(c, 3) - x).abs().max() < 1e-6


def test_haar_of_constant_image_is_only_the_coarse_coefficient():
    x = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    c = haar_forward(x, 3)
    expected = torch.zeros_like(x)
    expected[..., 0, 0] = 0.3 * 8  # ⟨x, 𝟙/8⟩
    assert torch.allclose(c, expected, atol=1e-14)


def test_haar_one_level_known_coefficients():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert torch.allclose(haar_forward(x, 1), torch.tensor([[[[5.0, -1.0], [-2.0, 0.0]]]]))


def test_haar_rejects_indivisible_sides():
    with pytest.raises(ValueError, match="divisible by 4"):
        haar_forward(torch.zeros(1, 1, 8, 6), 2)
    with pytest.raises(ValueError, match="levels"):
        haar_forward(torch.zeros(1, 1, 8, 8), 0)


# ------------------------------------------------------------------------------------------ σ̂
def test_noise_sigma_estimate_on_smooth_image_and_homogeneity():
    x = smooth_image(64, batch=3)
    sigma = torch.tensor([0.02, 0.1, 0.3], dtype=torch.float64)
    y = x + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen(2), dtype=torch.float64)
    est = estimate_noise_sigma(y).flatten()
    assert torch.allclose(est, sigma, rtol=0.1)
    assert torch.allclose(estimate_noise_sigma(2.5 * y), 2.5 * estimate_noise_sigma(y))


# ------------------------------------------------------------------------------------------ Gaussian
def test_gaussian_matches_sampled_gaussian_with_reflect_boundary():
    y = torch.rand(1, 1, 20, 27, generator=gen(3), dtype=torch.float64)
    out = GaussianSmoothing(width=2.0)(y)
    ref = gaussian_filter(y[0, 0].numpy(), sigma=2.0, mode="reflect", truncate=10.0)
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-6


@pytest.mark.parametrize("boundary", ["reflect", "circular"])
def test_gaussian_keeps_constants_and_the_mean(boundary):
    d = GaussianSmoothing(boundary=boundary)
    c = torch.full((2, 3, 9, 14), 0.7, dtype=torch.float64)
    assert torch.allclose(d(c, 0.2), c, atol=1e-12)
    y = torch.rand(2, 3, 9, 14, generator=gen(4), dtype=torch.float64)
    assert torch.allclose(d(y, 0.2).mean(dim=(2, 3)), y.mean(dim=(2, 3)), atol=1e-12)


def test_gaussian_zero_noise_is_identity_and_width_follows_rule():
    y = torch.rand(2, 1, 8, 8, generator=gen(5), dtype=torch.float64)
    d = GaussianSmoothing(amplitude=4e-3)
    assert torch.allclose(d(y, 0.0), y, atol=1e-12)
    s = d.kernel_width(y, torch.tensor([0.1, 0.3]))
    assert torch.allclose(s.flatten(), torch.tensor([0.1, 0.3], dtype=torch.float64) / (2 * math.pi * math.sqrt(4e-3)))


def test_gaussian_reduces_mse_on_smooth_image():
    x = smooth_image(32)
    sigma = 0.1
    y = x + sigma * torch.randn(x.shape, generator=gen(6), dtype=torch.float64)
    for s in (None, sigma):
        mse = ((GaussianSmoothing(amplitude=1e-4)(y, s) - x) ** 2).mean()
        assert mse < 0.3 * sigma**2


# ------------------------------------------------------------------------------------------ Wiener
def test_wiener_keeps_constants():
    d = WienerFilter()
    c = torch.full((1, 1, 12, 10), 0.4, dtype=torch.float64)
    assert torch.allclose(d(c, 0.3), c, atol=1e-12)


@pytest.mark.parametrize("name", ["gaussian", "gaussian-fixed", "wiener", "wiener-circular"])
def test_linear_filters_are_linear_at_fixed_sigma(name):
    d = DENOISERS[name]()
    y, z = torch.rand(2, 2, 1, 12, 16, generator=gen(7), dtype=torch.float64)
    a, b = 1.7, -0.6
    assert torch.allclose(d(a * y + b * z, 0.15), a * d(y, 0.15) + b * d(z, 0.15), atol=1e-12)


def test_wiener_beats_gaussian_smoothing_on_power_law_field():
    amplitude = 1e-3
    field = StationaryGaussianDenoiser(power_law(amplitude))
    x = field.sample(4, (48, 48), generator=gen(8), dtype=torch.float64)
    sigma = 0.1
    y = x + sigma * torch.randn(x.shape, generator=gen(9), dtype=torch.float64)

    def mse(z):
        return float(((z - x) ** 2).mean())

    wiener = mse(WienerFilter(amplitude, boundary="circular")(y, sigma))
    gauss = mse(GaussianSmoothing(amplitude=amplitude, boundary="circular")(y, sigma))
    assert wiener < gauss < sigma**2
    # circular Wiener is the posterior mean of this field except at f = 0 (flat prior on the mean there)
    diff = WienerFilter(amplitude, boundary="circular")(y, sigma) - field(y, sigma)
    assert torch.allclose(diff, diff.mean(dim=(2, 3), keepdim=True), atol=1e-12)


# ------------------------------------------------------------------------------------------ Haar shrinkage
@pytest.mark.parametrize("sigma", [None, 0.2])
def test_haar_shrinkage_keeps_a_zero_detail_image(sigma):
    coarse = torch.rand(2, 1, 4, 4, generator=gen(10), dtype=torch.float64)
    x = coarse.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)  # constant on 4×4 blocks
    assert torch.allclose(HaarShrinkage(levels=2)(x, sigma), x, atol=1e-12)


def test_haar_shrinkage_reduces_mse_on_piecewise_constant_image():
    x = piecewise_constant(32)
    sigma = 0.1
    y = x + sigma * torch.randn(x.shape, generator=gen(11), dtype=torch.float64)
    for s in (None, sigma):
        assert ((HaarShrinkage()(y, s) - x) ** 2).mean() < 0.5 * sigma**2


def test_haar_shrinkage_pads_odd_sizes_and_zero_threshold_is_identity():
    y = torch.rand(2, 3, 13, 7, generator=gen(12), dtype=torch.float64)
    out = HaarShrinkage(levels=3)(y)
    assert out.shape == y.shape
    assert torch.allclose(HaarShrinkage(levels=3, threshold=0.0)(y), y, atol=1e-12)


# ------------------------------------------------------------------------------------------ protocol
@pytest.mark.parametrize("name", list(DENOISERS))
def test_bias_free_flag_is_truthful(name):
    d = DENOISERS[name]()
    y = smooth_image(16) + 0.1 * torch.randn(2, 1, 16, 16, generator=gen(13), dtype=torch.float64)
    homogeneous = torch.allclose(d(3.0 * y), 3.0 * d(y), atol=1e-10)
    assert homogeneous == d.bias_free


@pytest.mark.parametrize("name", list(DENOISERS))
@pytest.mark.parametrize("sigma", [None, 0.1])
def test_jvp_matches_finite_difference_and_vjp_is_its_transpose(name, sigma):
    d = DENOISERS[name]()
    y = smooth_image(16, channels=2) + 0.1 * torch.randn(2, 2, 16, 16, generator=gen(24), dtype=torch.float64)
    t, v = torch.randn(2, *y.shape, generator=gen(15), dtype=torch.float64)

    def f(z):
        return d(z, sigma)

    # blind: the analyses hold the estimate σ̂(y) fixed, so the reference differentiates the filter at σ̂
    held = estimate_noise_sigma(y) if sigma is None else sigma

    out, jt = jvp(f, (y,), (t,))
    eps = 1e-6
    fd = (d(y + eps * t, held) - d(y - eps * t, held)) / (2 * eps)
    assert torch.allclose(out, f(y))
    assert (jt - fd).norm() <= 1e-3 * fd.norm()
    _, pullback = vjp(f, y)
    (jtv,) = pullback(v)
    assert torch.allclose((v * jt).sum(), (jtv * t).sum(), rtol=1e-8)


def test_autograd_flows_to_input_through_handle():
    h = ModelHandle(HaarShrinkage(), device="cpu")
    y = torch.rand(1, 1, 16, 16, generator=gen(16), requires_grad=True)
    h.model(y).pow(2).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["gaussian", "wiener", "haar"])
def test_registered_buildable_and_usable_through_handle(name, tmp_path):
    cls = ARCHITECTURES[name]
    d = cls(channels=3)
    rebuilt = build(name, d.config)
    assert type(rebuilt) is cls and rebuilt.config == d.config and rebuilt.blind
    h = ModelHandle(rebuilt, device="cpu")
    img = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    out = h.denoise(img)
    assert out.shape == img.shape and out.dtype == np.float32
    model, card = load_denoiser(save_model(d, name, tmp_path, f"classical-{name}"))
    y = torch.rand(1, 3, 12, 10, generator=gen(17))
    assert card["bias_free"] == d.bias_free
    assert torch.allclose(model(y, 0.1), d(y, 0.1))


def test_bad_inputs_raise_value_errors():
    d = GaussianSmoothing()
    with pytest.raises(ValueError, match="sigma"):
        d(torch.rand(1, 1, 8, 8), -0.1)
    with pytest.raises(ValueError, match="sigma"):
        d(torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        d(torch.rand(8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        estimate_noise_sigma(torch.rand(1, 1, 1, 8))
    with pytest.raises(ValueError, match="boundary"):
        WienerFilter(boundary="zero")
    with pytest.raises(ValueError, match="threshold"):
        HaarShrinkage(threshold=-1.0)


def test_blind_gaussian_filter_row_is_the_fixed_gaussian_kernel():
    """Known answer: the adaptive filter of the blind Gaussian is the Gaussian of width s = σ̂/(2π√A) at
    the estimate σ̂ held fixed — its centre weight the largest, nothing far away (the derivative of the
    median-based σ̂ once put ±0.62 on one far pixel, above the 0.45 centre)."""
    from explorer import jacobian

    n, c = 32, 16
    y = 0.5 + 0.3 * torch.randn(1, 1, n, n, generator=gen(31), dtype=torch.float64)
    d = GaussianSmoothing()
    row = jacobian.row(ModelHandle(d, device="cpu"), y, (c, c))[0].double()
    s = float(estimate_noise_sigma(y)) / (2 * math.pi * math.sqrt(d.amplitude))
    assert 1.2 < s < 2.0  # a few pixels wide, far from the borders
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    r2 = ((i - c) ** 2 + (j - c) ** 2).double()
    kernel = torch.exp(-r2 / (2 * s * s))
    kernel /= kernel.sum()
    torch.testing.assert_close(row, kernel, rtol=0, atol=2e-5)  # the sampled Gaussian, up to its aliasing
    delta = torch.zeros_like(y)
    delta[0, 0, c, c] = 1.0
    torch.testing.assert_close(row, d(delta, float(estimate_noise_sigma(y)))[0, 0], rtol=0, atol=1e-7)  # A(σ̂) (float32 rows)
    assert row.argmax().item() == c * n + c
    assert row[r2.sqrt() > 6 * s].abs().max().item() < 1e-6
    assert float(row.sum()) == pytest.approx(1.0, abs=1e-6)  # mean-preserving


@pytest.mark.parametrize("name", list(DENOISERS))
def test_blind_analyses_hold_the_estimate_fixed(name):
    """∂x̂/∂y in blind use is the Jacobian of the filter at σ = σ̂(y); the values are unchanged."""
    d = DENOISERS[name]()
    y = smooth_image(16) + 0.1 * torch.randn(1, 1, 16, 16, generator=gen(32), dtype=torch.float64)
    held = estimate_noise_sigma(y)
    t = torch.randn(y.shape, generator=gen(33), dtype=torch.float64)
    out, blind = jvp(lambda z: d(z), (y,), (t,))
    _, fixed = jvp(lambda z: d(z, held), (y,), (t,))
    torch.testing.assert_close(out, d(y, held))
    torch.testing.assert_close(blind, fixed)
