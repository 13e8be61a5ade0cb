"""The classical arc (issue #19): Tikhonov, Perona–Malik, total variation, bilateral, non-local means,
wavelet shrinkage with cycle spinning, BM3D — against reference implementations and exact answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.restoration import cycle_spin, denoise_bilateral, denoise_nl_means, denoise_tv_chambolle, denoise_wavelet
from torch.func import jvp

from explorer import ModelHandle, jacobian
from explorer.checkpoints import load_denoiser, save_model
from explorer.denoisers import (ARCHITECTURES, BM3D, BilateralFilter, NonLocalMeans, NotDifferentiableError, PeronaMalik,
                                TikhonovGradient, TotalVariation, WaveletShrinkage, build, estimate_noise_sigma)
from explorer.denoisers import nonlocal_filters
from explorer.denoisers.classical import BadImageError, BadSigmaError
from explorer.denoisers.variational import divergence, gradient
from explorer.denoisers.wavelets import WAVELETS, scaling_filter, wavedec2, waverec2

import pywt  # noqa: E402  (PyWavelets, in the test extra: the periodised transform to compare with)

#: Small, fast settings of every differentiable denoiser of the arc (the defaults are used elsewhere).
ARC = {
    "tikhonov": lambda: TikhonovGradient(),
    "perona-malik": lambda: PeronaMalik(steps=5),
    "total-variation": lambda: TotalVariation(iterations=20),
    "bilateral": lambda: BilateralFilter(spatial=1.0),
    "nl-means": lambda: NonLocalMeans(patch_size=3, search_size=5),
    "wavelet": lambda: WaveletShrinkage("db2", levels=2, spins=2),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pattern(h: int = 24, w: int = 30, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A smooth pattern with a step edge plus a little noise, float64, values about 0.2 … 1."""
    rng = np.random.default_rng(seed)
    i, j = np.arange(h)[:, None], np.arange(w)[None]
    x = 0.5 + 0.2 * np.sin(i / 4) * np.cos(j / 5) + 0.25 * (j >= w // 2)
    return x + noise * rng.standard_normal((h, w))


def as_batch(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)[None, None]


def noisy_batch(n: int = 12, batch: int = 1, channels: int = 1, seed: int = 1) -> torch.Tensor:
    x = torch.as_tensor(pattern(n, n, 0.0), dtype=torch.float64).expand(batch, channels, n, n)
    return x + 0.1 * torch.randn(batch, channels, n, n, generator=gen(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------ Tikhonov
def dense_gradient(h: int, w: int) -> np.ndarray:
    """The (2hw × hw) matrix of :func:`gradient` (forward differences, Neumann)."""
    n = h * w
    g1, g2 = gradient(torch.eye(n, dtype=torch.float64).reshape(n, 1, h, w))
    return torch.cat([g1.reshape(n, -1), g2.reshape(n, -1)], dim=1).numpy().T


def test_tikhonov_is_the_dense_solve():
    """(I + λ∇ᵀ∇)⁻¹y solved densely on a 5 × 6 image: the cosine-basis filter is exact (to rounding)."""
    h, w, lam = 5, 6, 0.7
    D = dense_gradient(h, w)
    y = np.random.default_rng(2).random((3, h, w))
    ref = np.stack([np.linalg.solve(np.eye(h * w) + lam * D.T @ D, img.ravel()).reshape(h, w) for img in y])
    out = TikhonovGradient(lam=lam)(torch.as_tensor(y)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_tikhonov_rule_and_gradient_adjoint():
    y = noisy_batch(8, batch=2)
    d = TikhonovGradient(scale=3.0, power=1.5)
    lam = d.regularization(y, torch.tensor([0.1, 0.2]))
    torch.testing.assert_close(lam.flatten(), 3.0 * torch.tensor([0.1, 0.2], dtype=torch.float64) ** 1.5)
    torch.testing.assert_close(d(y, 0.0), y, rtol=0, atol=1e-12)  # λ(0) = 0: the identity
    p1, p2 = torch.randn(2, 2, 1, 8, 8, generator=gen(3), dtype=torch.float64)
    p1[..., -1, :], p2[..., :, -1] = 0, 0
    g1, g2 = gradient(y)
    assert float((g1 * p1 + g2 * p2).sum()) == pytest.approx(-float((y * divergence(p1, p2)).sum()), abs=1e-12)


# ------------------------------------------------------------------------------------------ Perona–Malik
def perona_malik_loops(y: np.ndarray, kappa: float, steps: int, dt: float) -> np.ndarray:
    """The original scheme pixel by pixel: u_p += Δt Σ_{q ∈ N₄(p) ∩ image} g(|u_q − u_p|)(u_q − u_p)."""
    u = y.copy()
    h, w = u.shape
    for _ in range(steps):
        new = u.copy()
        for i in range(h):
            for j in range(w):
                for a, b in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    if 0 <= i + a < h and 0 <= j + b < w:
                        diff = u[i + a, j + b] - u[i, j]
                        new[i, j] += dt * diff / (1 + (diff / kappa) ** 2)
        u = new
    return u


def test_perona_malik_is_the_four_neighbour_scheme():
    y = pattern(9, 11, noise=0.1)
    out = PeronaMalik(edge=1.5, steps=7, step=0.2)(as_batch(y), 0.1)[0, 0].numpy()
    np.testing.assert_allclose(out, perona_malik_loops(y, 0.15, 7, 0.2), rtol=0, atol=1e-12)


def test_perona_malik_is_stable_at_the_largest_step():
    """Δt = 1/4: every step is a convex combination (maximum principle), the mean is conserved."""
    y = noisy_batch(16, batch=2)
    out = PeronaMalik(edge=3.0, steps=200, step=0.25)(y, 0.3)
    assert float(out.min()) >= float(y.min()) - 1e-12 and float(out.max()) <= float(y.max()) + 1e-12
    torch.testing.assert_close(out.mean(dim=(2, 3)), y.mean(dim=(2, 3)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="step"):
        PeronaMalik(step=0.3)


# ------------------------------------------------------------------------------------------ total variation
@pytest.mark.parametrize("iterations", [0, 1, 7, 60])
def test_total_variation_is_scikit_image_chambolle(iterations):
    """Same formulation, step τ = 1/4 and iteration count (skimage's max_num_iter counts one more: its
    n-th iterate precedes its n-th dual update; eps = 0 disables its early stop): equal to rounding."""
    y = pattern()
    ref = denoise_tv_chambolle(y, weight=0.08, eps=0, max_num_iter=iterations + 1)
    out = TotalVariation(weight=0.8, iterations=iterations)(as_batch(y), 0.1)[0, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_total_variation_colour_channels_are_separate():
    y = np.stack([pattern(seed=s) for s in range(3)], axis=-1)
    ref = denoise_tv_chambolle(y, weight=0.05, eps=0, max_num_iter=31, channel_axis=-1)
    out = TotalVariation(weight=0.5, iterations=30, channels=3)(torch.as_tensor(np.moveaxis(y, -1, 0))[None], 0.1)
    np.testing.assert_allclose(np.moveaxis(out[0].numpy(), 0, -1), ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ bilateral
@pytest.mark.parametrize("radius, range_factor", [(2, 1.0), (3, 0.5)])
def test_bilateral_range_kernel_is_scikit_image(radius, range_factor):
    """The range kernel against ``denoise_bilateral`` with a flat spatial kernel (σ_s = 10⁸).

    Flat, because scikit-image 0.26 indexes its spatial look-up table, built (w + 1)² for a w-wide
    window, with stride w: its spatial weights are not a Gaussian of the distance (seen on an impulse).
    Tolerance 1e-5: skimage rounds each colour distance down to a multiple of Δ = max(y)/bins
    (bins = 10⁶), which moves a weight by at most Δ/σ_r·e^{-1/2} ≈ 1.2e-5 of the largest (σ_r = 0.05);
    measured 3e-7 – 6e-7. Compared away from the border (skimage reflects, we cut the window there).
    """
    y = pattern()
    ref = denoise_bilateral(y, win_size=2 * radius + 1, sigma_color=range_factor * 0.1, sigma_spatial=1e8,
                            bins=10**6, mode="reflect")
    out = BilateralFilter(range_factor=range_factor, spatial=1e8, radius=radius)(as_batch(y), 0.1)[0, 0].numpy()
    r = radius
    np.testing.assert_allclose(out[r:-r, r:-r], ref[r:-r, r:-r], rtol=0, atol=1e-5)


def test_bilateral_spatial_kernel_is_the_truncated_gaussian():
    """With a flat range kernel the bilateral filter is the Gaussian of σ_s truncated at R = ⌈3σ_s⌉ (exact)."""
    y = pattern()
    out = BilateralFilter(range_factor=1e8, spatial=1.3)(as_batch(y), 0.1)[0, 0].numpy()
    ref = gaussian_filter(y, 1.3, truncate=4 / 1.3)
    np.testing.assert_allclose(out[4:-4, 4:-4], ref[4:-4, 4:-4], rtol=0, atol=1e-12)
    # at the border the window is cut and renormalised: a constant stays constant
    c = torch.full((1, 1, 7, 9), 0.3, dtype=torch.float64)
    torch.testing.assert_close(BilateralFilter()(c, 0.1), c, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ non-local means
def schraudolph_exp(v: torch.Tensor) -> torch.Tensor:
    """scikit-image's ``fast_exp`` (skimage/_shared/fast_exp.h, Schraudolph 1999, its RMS-optimal constant):
    the float64 whose high 32 bits are int(2²⁰/ln 2 · v) + 1023·2²⁰ − 60801 and low bits 0."""
    high = torch.trunc(1512775.3951951856938 * v).to(torch.int64) + 1072632447
    return (high << 32).view(torch.float64)


@pytest.mark.parametrize("patch, distance, h_factor, sigma", [(5, 3, 5.0, 0.1), (3, 2, 10.0, 0.05), (7, 4, 4.0, 0.08)])
def test_nl_means_is_scikit_image_slow_mode(patch, distance, h_factor, sigma, monkeypatch):
    """Against ``denoise_nl_means(fast_mode=False)`` at equal patch size, distance, h and σ.

    The slow mode is our formulation (Gaussian patches, search window cut at the border); its fast mode
    sums an (s − 1)² box for "patch size s". skimage evaluates the weights with ``fast_exp``: with that
    approximation put in place of exp, the two agree to rounding (1e-12). With the exact exp they differ
    by the approximation's error (relative error up to ≈ 4 % per weight, smooth in the distance and
    largely cancelled by the normalisation): measured 6e-5 – 2.4e-3 at most, 3e-5 – 6e-4 on average
    for a spread of 0.5 in y; tolerance 3e-3 and 1e-3. These h keep every patch distance below 1, where
    skimage's cut-offs (weights below e⁻⁵, a centre-pixel test) cannot act.
    """
    y = pattern(noise=0.08)
    ref = denoise_nl_means(y, patch_size=patch, patch_distance=distance, h=h_factor * sigma, sigma=sigma, fast_mode=False)
    d = NonLocalMeans(h_factor, patch, 2 * distance + 1)
    exact = d(as_batch(y), sigma)[0, 0].numpy()
    assert np.abs(exact - ref).max() < 3e-3 and np.abs(exact - ref).mean() < 1e-3
    assert np.abs(ref - y).max() > 0.05  # the filter does something
    monkeypatch.setattr(nonlocal_filters, "nlm_weights",
                        lambda d2, two_var, h2: schraudolph_exp(-(d2 - two_var).clamp_min(0) / h2))
    np.testing.assert_allclose(d(as_batch(y), sigma)[0, 0].numpy(), ref, rtol=0, atol=1e-12)


def test_nl_means_limits_are_exact():
    """h → ∞: the mean over the window cut at the border (equal to skimage to rounding); σ, h → 0: the identity."""
    y = pattern()
    ref = denoise_nl_means(y, patch_size=5, patch_distance=3, h=1e4, fast_mode=False)
    out = NonLocalMeans(1e5, 5, 7)(as_batch(y), 0.1)[0, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-8)
    torch.testing.assert_close(NonLocalMeans(1.0, 5, 7)(as_batch(y), 1e-5), as_batch(y), rtol=0, atol=1e-12)
    with pytest.raises(BadImageError, match="sides > 3"):
        NonLocalMeans()(torch.rand(1, 1, 3, 40), 0.1)


# ------------------------------------------------------------------------------------------ wavelets
@pytest.mark.parametrize("name", WAVELETS)
def test_scaling_filters_are_the_published_ones(name):
    """Computed from Daubechies' polynomial; equal to PyWavelets' tables; orthonormal with N vanishing moments."""
    h = scaling_filter(name)
    np.testing.assert_allclose(h, pywt.Wavelet(name).rec_lo, rtol=0, atol=1e-11)
    n = len(h) // 2
    assert h.sum() == pytest.approx(math.sqrt(2), abs=1e-12)
    for k in range(n):  # Σ h_m h_{m+2k} = δ_k
        assert float(h[: len(h) - 2 * k] @ h[2 * k:]) == pytest.approx(float(k == 0), abs=1e-12)
    g = (-1.0) ** np.arange(len(h)) * h[::-1]
    for m in range(n):
        assert float(np.arange(len(g)) ** m @ g) == pytest.approx(0.0, abs=1e-8 * 10**m)


@pytest.mark.parametrize("name, levels", [("db4", 2), ("sym8", 1), ("db1", 3)])
def test_wavelet_transform_is_orthogonal(name, levels):
    """The dense matrix of the periodized transform (16 × 16 images; filters longer than the coarse band wrap)."""
    n = 16
    basis = torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)
    coarse, details = wavedec2(basis, name, levels)
    W = torch.cat([coarse.flatten(1)] + [b.flatten(1) for bands in details for b in bands], dim=1)
    torch.testing.assert_close(W @ W.T, torch.eye(n * n, dtype=torch.float64), rtol=0, atol=1e-12)
    x = torch.randn(3, 2, 16, 24, generator=gen(4))
    assert (waverec2(*wavedec2(x, name, levels), name) - x).abs().max() < 1e-5  # float32 reconstruction


@pytest.mark.parametrize("name", ["db2", "sym8"])
def test_wavelet_coefficients_are_pywavelets_periodization(name):
    x = np.random.default_rng(5).random((32, 48))
    coarse, details = wavedec2(as_batch(x), name, 3)
    ref = pywt.wavedec2(x, name, mode="periodization", level=3)
    np.testing.assert_allclose(coarse[0, 0].numpy(), ref[0], rtol=0, atol=1e-10)
    for level, bands in enumerate(details):  # pywt lists (cH, cV, cD) from the coarsest level
        for ours, theirs in zip(bands, ref[3 - level]):
            np.testing.assert_allclose(ours[0, 0].numpy(), theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name, levels", [("db2", 2), ("db4", 2), ("sym4", 2)])
def test_wavelet_shrinkage_is_scikit_image_inside_the_image(name, levels):
    """``denoise_wavelet(method="VisuShrink", sigma)``, τ = σ√(2 ln N), soft: skimage transforms with
    PyWavelets' "symmetric" extension, a redundant frame at the border, so only pixels farther than
    L·2^levels from it are compared; there its decimation grid is ours after a circular shift s, which
    is found by search. Equal to rounding (1e-10), for both our boundaries."""
    y = np.random.default_rng(6).random((128, 128))
    ref = denoise_wavelet(y, sigma=0.1, wavelet=name, wavelet_levels=levels, method="VisuShrink", mode="soft")
    k, m = math.sqrt(2 * math.log(y.size)), len(scaling_filter(name)) * 2**levels
    t = as_batch(y)
    circular = WaveletShrinkage(name, levels, k, spins=1, boundary="circular")

    def shifted(s: int) -> np.ndarray:
        return torch.roll(circular(torch.roll(t, (s, s), (-2, -1)), 0.1), (-s, -s), (-2, -1))[0, 0].numpy()

    best = min(range(2**levels + 2 * m), key=lambda s: np.abs(shifted(s) - ref)[m:-m, m:-m].max())
    np.testing.assert_allclose(shifted(best)[m:-m, m:-m], ref[m:-m, m:-m], rtol=0, atol=1e-10)
    reflect = WaveletShrinkage(name, levels, k, spins=1)(t, 0.1)[0, 0].numpy()
    np.testing.assert_allclose(reflect[m:-m, m:-m], circular(t, 0.1)[0, 0].numpy()[m:-m, m:-m], rtol=0, atol=1e-12)


def test_cycle_spinning_is_scikit_image_cycle_spin():
    y = np.random.default_rng(7).random((32, 32))
    plain = WaveletShrinkage("db4", 2, 2.0, spins=1, boundary="circular")
    ref = cycle_spin(y, lambda z: plain(as_batch(z), 0.1)[0, 0].numpy(), max_shifts=2)
    out = WaveletShrinkage("db4", 2, 2.0, spins=3, boundary="circular")(as_batch(y), 0.1)[0, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_wavelet_boundaries_and_sizes():
    odd = torch.rand(2, 1, 13, 21, generator=gen(8), dtype=torch.float64)
    assert WaveletShrinkage()(odd).shape == odd.shape
    torch.testing.assert_close(WaveletShrinkage(threshold=0.0)(odd), odd, rtol=0, atol=1e-12)
    with pytest.raises(BadImageError, match="divisible by 4"):
        WaveletShrinkage(levels=2, boundary="circular")(odd)
    with pytest.raises(ValueError, match="unknown wavelet"):
        WaveletShrinkage("db20")


# ------------------------------------------------------------------------------------------ the protocol, all at once
@pytest.mark.parametrize("name", list(ARC))
def test_batches_and_per_image_sigma_match_single_images(name):
    d = ARC[name]()
    y = noisy_batch(12, batch=3, seed=9)
    sigma = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64)
    for s in (sigma, None):
        out = d(y, s)
        single = torch.cat([d(y[i:i + 1], None if s is None else s[i]) for i in range(3)])
        torch.testing.assert_close(out, single, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(ARC))
def test_bias_free_flag_is_truthful(name):
    d = ARC[name]()
    y = noisy_batch(12, batch=2, seed=10)
    assert torch.allclose(d(2.5 * y), 2.5 * d(y), atol=1e-10) == d.bias_free


@pytest.mark.parametrize("name", list(ARC))
def test_jacobian_rows_and_products_match_full_autograd(name):
    """Rows by one batched VJP (``jacobian.row``) and JVPs (``jacobian.jvp``, vmap over forward mode)
    against ``torch.autograd.functional.jacobian`` on an 8 × 8 image, at a given σ and blind (σ̂ held)."""
    d = ARC[name]()
    h = ModelHandle(d, device="cpu", dtype=torch.float64)
    y = noisy_batch(8, seed=11)
    for sigma in (0.1, None):
        held = estimate_noise_sigma(y) if sigma is None else sigma
        J = torch.autograd.functional.jacobian(lambda z: d(z, held), y).reshape(64, 64)
        pixels = [(0, 0), (3, 4), (7, 2)]
        rows = jacobian.row(h, y, pixels, sigma).reshape(3, 64)
        torch.testing.assert_close(rows, J[[i * 8 + j for i, j in pixels]], rtol=0, atol=1e-10)
        V = torch.randn(2, 1, 8, 8, generator=gen(12), dtype=torch.float64)
        torch.testing.assert_close(jacobian.jvp(h, y, V, sigma).reshape(2, 64), V.reshape(2, 64) @ J.T, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", list(ARC))
def test_blind_analyses_hold_the_estimate_fixed(name):
    d = ARC[name]()
    y = noisy_batch(12, seed=13)
    t = torch.randn(y.shape, generator=gen(14), dtype=torch.float64)
    out, blind = jvp(lambda z: d(z), (y,), (t,))
    _, fixed = jvp(lambda z: d(z, estimate_noise_sigma(y)), (y,), (t,))
    torch.testing.assert_close(out, d(y, estimate_noise_sigma(y)))
    torch.testing.assert_close(blind, fixed)


@pytest.mark.parametrize("name", list(ARC))
def test_denoising_helps_and_constants_survive(name):
    d = ARC[name]()
    x = torch.as_tensor(pattern(32, 32, 0.0))[None, None]
    y = x + 0.1 * torch.randn(x.shape, generator=gen(15), dtype=torch.float64)
    assert float(((d(y) - x) ** 2).mean()) < 0.6 * 0.1**2
    c = torch.full((1, 1, 16, 16), 0.4, dtype=torch.float64)
    torch.testing.assert_close(d(c, 0.1), c, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(ARC))
def test_registered_rebuilt_and_saved(name, tmp_path):
    d = ARC[name]()
    rebuilt = build(name, d.config)
    assert type(rebuilt) is ARCHITECTURES[name] and rebuilt.config == d.config and rebuilt.blind
    img = np.random.default_rng(16).random((16, 16)).astype(np.float32)
    out = ModelHandle(rebuilt, device="cpu").denoise(img)
    assert out.shape == img.shape and np.isfinite(out).all()
    model, card = load_denoiser(save_model(d, name, tmp_path, f"classical-{name}"))
    y = torch.rand(1, 1, 16, 16, generator=gen(19), dtype=torch.float64)
    assert card["bias_free"] == d.bias_free
    torch.testing.assert_close(model.double()(y, 0.1), d(y, 0.1))


def test_bad_inputs_raise_clear_errors():
    d = NonLocalMeans()
    with pytest.raises(BadImageError, match=r"\(B, C, H, W\)"):
        d(torch.rand(8, 8))
    with pytest.raises(BadImageError, match="floating"):
        TotalVariation()(torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(BadSigmaError, match="sigma"):
        PeronaMalik()(torch.rand(1, 1, 8, 8), -0.1)
    with pytest.raises(BadSigmaError, match="sigma"):
        BilateralFilter()(torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))
    for make, match in [(lambda: NonLocalMeans(patch_size=4), "patch_size"), (lambda: NonLocalMeans(h_factor=0), "h_factor"),
                        (lambda: TotalVariation(iterations=-1), "iterations"), (lambda: BilateralFilter(spatial=-1), "spatial"),
                        (lambda: TikhonovGradient(lam=-1.0), "lam"), (lambda: WaveletShrinkage(boundary="zero"), "boundary")]:
        with pytest.raises(ValueError, match=match):
            make()


# ------------------------------------------------------------------------------------------ BM3D
def test_bm3d_denoises_and_refuses_derivatives_plainly():
    x = torch.as_tensor(pattern(32, 32, 0.0), dtype=torch.float32)[None, None]
    y = x + 0.1 * torch.randn(x.shape, generator=gen(17))
    d = BM3D()
    assert d.differentiable is False and "no Jacobian" in d.not_differentiable_reason
    assert float(((d(y, 0.1) - x) ** 2).mean()) < 0.3 * 0.1**2
    with pytest.raises(ValueError, match="not blind"):
        d(y)
    with pytest.raises(NotDifferentiableError, match="no Jacobian"):
        d(y.clone().requires_grad_(), 0.1)
    with pytest.raises(NotDifferentiableError, match="no Jacobian"):
        jvp(lambda z: d(z, 0.1), (y,), (y,))
    with pytest.raises(NotDifferentiableError, match="no Jacobian"):
        jacobian.row(ModelHandle(d, device="cpu"), y, (4, 4), 0.1)
    assert isinstance(build("bm3d", d.config), BM3D)


def test_the_picker_offers_the_arc():
    from explorer.ui.models import CLASSICAL, get_handle

    y = np.random.default_rng(18).random((16, 16)).astype(np.float32)
    for name in CLASSICAL:
        h = get_handle(name)
        out = h.denoise(y, None if h.blind else 0.1)
        assert out.shape == y.shape and np.isfinite(out).all()
    assert "classical: non-local means" in CLASSICAL and "classical: BM3D" in CLASSICAL


def test_evaluate_lists_the_arc_after_the_baselines():
    from explorer.evaluate import Lineup

    names = [h.name for h in Lineup(bm3d=True, classical_arc=True).open()]
    assert names == ["BM3D", "tikhonov", "perona-malik", "total-variation", "bilateral", "nl-means", "wavelet"]


def test_bm3d_low_complexity_profile_denoises_nearly_as_well_and_bad_profiles_are_refused():
    from explorer.denoisers import BM3D

    rng = np.random.default_rng(0)
    x = np.clip(np.cumsum(rng.normal(0, 0.05, (48, 48)), axis=1) + 0.5, 0, 1).astype(np.float32)
    y = torch.from_numpy(x + 0.1 * rng.standard_normal(x.shape).astype(np.float32))[None, None]
    err = {p: float(((BM3D(profile=p)(y, 0.1)[0, 0].numpy() - x) ** 2).mean()) for p in BM3D.PROFILES}
    noisy = float(((y[0, 0].numpy() - x) ** 2).mean())
    assert err["lc"] < 0.5 * noisy and err["lc"] < 1.25 * err["np"]
    assert BM3D(profile="lc").config == {"channels": 1, "profile": "lc"}
    with pytest.raises(ValueError, match="profile"):
        BM3D(profile="fast")
