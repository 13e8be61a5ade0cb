"""explorer.jacobian against known answers: dense Jacobians, linear denoisers with known matrices, the lab's BF-DnCNN."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import jacrev

from explorer import jacobian as J
from explorer.denoisers import Denoiser, DnCNN, UNet
from explorer.handle import ModelHandle

from conftest import SHARED, calibrated

H = W = 32
LAB = SHARED / "lcv/bias_free_denoising/dncnn/bias_free/0-100.pt"
SET68 = SHARED / "data/bsd/Set68/test001.png"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


class MatrixDenoiser(Denoiser):
    """x̂(y) = M vec(y): a linear denoiser with a known matrix (generic autodiff path)."""

    def __init__(self, M: torch.Tensor, shape: tuple[int, int, int]):
        super().__init__()
        self.register_buffer("M", M)
        self.shape = shape

    def forward(self, y, sigma=None):
        return (y.flatten(1) @ self.M.T).reshape(len(y), *self.shape)


class Smoothing(Denoiser):
    """x̂ = k ∗ y with a fixed symmetric 5×5 Gaussian kernel and zero padding: a symmetric matrix."""

    def __init__(self, width: float = 1.2):
        super().__init__()
        t = torch.arange(-2, 3, dtype=torch.float32)
        g = torch.exp(-(t**2) / (2 * width**2))
        self.register_buffer("kernel", (g[:, None] * g[None, :] / g.sum() ** 2)[None, None])

    def forward(self, y, sigma=None):
        return F.conv2d(y, self.kernel, padding=2)


def _rand_image(seed: int, size: int = H) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 1, size, size, generator=g) + 0.2 * torch.randn(1, 1, size, size, generator=g)).float()


def _net(cls, bias_free: bool = True, **kw) -> torch.nn.Module:
    """A tiny random network calibrated on 32×32 images; the output conv is scaled up so that the
    residual is a sizeable part of y and A = I − ∂net/∂y has a spread spectrum."""
    torch.manual_seed(0)
    net = calibrated(cls(bias_free=bias_free, **kw), shape=(8, 1, H, W))
    last = net.convs[-1] if isinstance(net, DnCNN) else net.head
    with torch.no_grad():
        last.weight.mul_(4.0)
    return net


@pytest.fixture(scope="module")
def bf() -> ModelHandle:
    return ModelHandle(_net(DnCNN, depth=5, width=8), device="cpu")


@pytest.fixture(scope="module")
def biased() -> ModelHandle:
    return ModelHandle(_net(DnCNN, bias_free=False, depth=5, width=8), device="cpu")


@pytest.fixture(scope="module")
def bf_unet() -> ModelHandle:
    return ModelHandle(_net(UNet, width=8, levels=3, convs_per_block=1), device="cpu")


@pytest.fixture(scope="module")
def y() -> torch.Tensor:
    return _rand_image(3)


@pytest.fixture(scope="module")
def dense_bf(bf, y) -> torch.Tensor:
    """The reference Jacobian from torch.func.jacrev (independent of explorer.jacobian), float64."""
    return jacrev(lambda t: bf.model(t))(y).reshape(H * W, H * W).double()


# --------------------------------------------------------------------------- the linearization


@pytest.mark.parametrize("name", ["bf", "biased", "bf_unet"])
def test_replay_fast_path_equals_forward_mode_autodiff(request, name, y):
    """The ReLU-mask replay (biased nets: minus the replayed offset) equals torch.func.jvp to float precision."""
    handle = request.getfixturevalue(name)
    assert J.is_piecewise_affine(handle.model)
    V = torch.randn(6, 1, H, W, generator=torch.Generator().manual_seed(4))
    fast = J.jvp(handle, y, V, path="replay")
    slow = J.jvp(handle, y, V, path="autodiff")
    assert _rel(fast, slow) < 1e-5


def test_dense_jacobian_equals_jacrev(bf, y, dense_bf):
    assert _rel(J.full_jacobian(bf, y).double(), dense_bf) < 1e-5
    assert _rel(J.linearize(bf, y, path="autodiff").dense().double(), dense_bf) < 1e-5


@pytest.mark.parametrize("name", ["bf", "bf_unet"])
def test_euler_identity_for_bias_free(request, name, y):
    """x̂ positively homogeneous ⇒ J(y) y = x̂(y) (relative error < 1e-4), on both paths."""
    handle = request.getfixturevalue(name)
    xhat = handle.denoise(y)[0]
    for path in ("replay", "autodiff"):
        assert _rel(J.jvp(handle, y, y[0], path=path), xhat) < 1e-4


def test_euler_identity_fails_for_biased_twin(biased, y):
    assert _rel(J.jvp(biased, y, y[0]), biased.denoise(y)[0]) > 1e-3


def test_vjp_is_the_transpose_of_jvp(bf_unet, y):
    """⟨A v, u⟩ = ⟨v, Aᵀ u⟩ for random u, v."""
    g = torch.Generator().manual_seed(5)
    V, U = torch.randn(4, 1, H, W, generator=g), torch.randn(4, 1, H, W, generator=g)
    lin = J.linearize(bf_unet, y)
    lhs = (lin.jvp(V) * U).sum((1, 2, 3))
    rhs = (V * lin.vjp(U)).sum((1, 2, 3))
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- rows


def test_row_equals_dense_row(bf, y, dense_bf):
    r = J.row(bf, y, (7, 19))
    assert r.shape == (1, H, W)
    assert _rel(r.flatten().double(), dense_bf[7 * W + 19]) < 1e-5


def test_rows_batched_equal_rows_one_by_one(bf, y):
    pixels = [(0, 0), (5, 9), (31, 31), (16, 2)]
    batched = J.row(bf, y, pixels)
    assert batched.shape == (4, 1, H, W)
    for p, r in zip(pixels, batched):
        torch.testing.assert_close(r, J.row(bf, y, p), rtol=0, atol=1e-6)


def test_row_sums_are_A_times_ones(bf, y, dense_bf):
    assert _rel(J.row_sums(bf, y).flatten().double(), dense_bf.sum(1)) < 1e-5


def test_row_rejects_pixels_outside_the_image(bf, y):
    with pytest.raises(IndexError, match="outside"):
        J.row(bf, y, (H, 0))


def test_replay_refused_where_it_would_not_be_exact(y):
    with pytest.raises(ValueError, match="replay"):
        J.jvp(ModelHandle(Smoothing(), device="cpu"), y, y[0], path="replay")


# --------------------------------------------------------------------------- spectra of the network


def test_top_singular_matches_dense_svd(bf, y, dense_bf):
    """Matrix-free top-16 values within 1e-3 relative; every pair has ‖A v_k − s_k u_k‖ ≤ 1e-2 s_1."""
    k = 16
    s, U, V = J.top_singular(bf, y, k)
    exact = torch.linalg.svdvals(dense_bf)[:k]
    assert ((s.double() - exact).abs() / exact).max().item() < 1e-3
    U, V = U.reshape(k, -1).double(), V.reshape(k, -1).double()
    residual = (V @ dense_bf.T - s.double()[:, None] * U).norm(dim=1)
    assert residual.max().item() <= 1e-2 * exact[0].item()
    torch.testing.assert_close(U @ U.T, torch.eye(k, dtype=U.dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(V @ V.T, torch.eye(k, dtype=V.dtype), atol=1e-5, rtol=0)


def test_exact_trace_frobenius_symmetry_of_network(bf, y, dense_bf):
    assert J.effective_dim(bf, y, method="exact").value == pytest.approx(dense_bf.trace().item(), rel=1e-5)
    assert J.sum_sq_singular(bf, y, method="exact").value == pytest.approx(dense_bf.square().sum().item(), rel=1e-5)
    asym = ((dense_bf - dense_bf.T).norm() / dense_bf.norm()).item()
    assert J.symmetry(bf, y, method="exact").value == pytest.approx(asym, rel=1e-4)


def test_hutchinson_estimates_within_stated_tolerance(bf, y, dense_bf):
    """|estimate − exact| ≤ 4 × the theoretical Rademacher standard deviation / √probes."""
    probes = 128
    A = dense_bf
    As = 0.5 * (A + A.T)
    sd_trace = math.sqrt(2 * (As.square().sum() - As.diagonal().square().sum()).item() / probes)
    est = J.effective_dim(bf, y, method="hutchinson", probes=probes)
    assert est.probes == probes and est.method == "hutchinson"
    assert abs(est.value - A.trace().item()) <= 4 * sd_trace
    assert est.stderr == pytest.approx(sd_trace, rel=0.5)  # the reported error bar is the right size
    fro = J.sum_sq_singular(bf, y, method="hutchinson", probes=probes)
    assert abs(fro.value - A.square().sum().item()) <= 4 * fro.stderr
    asym = ((A - A.T).norm() / A.norm()).item()
    assert J.symmetry(bf, y, method="hutchinson", probes=probes).value == pytest.approx(asym, rel=0.1)


def test_shrinkage_matches_dense_eigendecomposition(bf, y, dense_bf):
    k = 8
    lam, E, recon = J.shrinkage(bf, y, k)
    As = 0.5 * (dense_bf + dense_bf.T)
    exact = torch.linalg.eigvalsh(As).flip(0)[:k]
    assert ((lam.double() - exact).abs() / exact.abs().max()).max().item() < 1e-3
    Ef = E.reshape(k, -1).double()
    assert (Ef @ As.T - lam.double()[:, None] * Ef).norm(dim=1).max().item() < 1e-2 * exact[0].item()
    yf = y.flatten().double()
    torch.testing.assert_close(recon.flatten().double(), (lam.double() * (Ef @ yf)) @ Ef)


# --------------------------------------------------------------------------- linear denoisers with known matrices


@pytest.fixture(scope="module")
def known() -> tuple[ModelHandle, torch.Tensor, torch.Tensor, torch.Tensor]:
    """M = Q_u diag(s) Q_vᵀ on 12×12 images with a cluster of 5 equal singular values at the top."""
    n, g = 144, torch.Generator().manual_seed(7)
    Qu, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    Qv, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    s = torch.cat([torch.full((5,), 1.0), torch.linspace(0.9, 0.01, n - 5)]).double()
    M = (Qu * s) @ Qv.T
    return ModelHandle(MatrixDenoiser(M.float(), (1, 12, 12)), device="cpu"), M, s, Qv


def test_linear_denoiser_known_answers(known):
    handle, M, s, _ = known
    y = _rand_image(8, 12)
    assert J.linearize(handle, y).path == "autodiff"
    torch.testing.assert_close(J.full_jacobian(handle, y).double(), M, atol=1e-6, rtol=0)
    torch.testing.assert_close(J.row(handle, y, (3, 4)).flatten().double(), M[3 * 12 + 4], atol=1e-6, rtol=0)
    assert J.effective_dim(handle, y).value == pytest.approx(M.trace().item(), abs=1e-4)
    assert J.sum_sq_singular(handle, y).value == pytest.approx(s.square().sum().item(), rel=1e-5)
    assert J.symmetry(handle, y).value == pytest.approx(((M - M.T).norm() / M.norm()).item(), rel=1e-5)


def test_top_singular_resolves_a_cluster(known):
    """Five equal top singular values: values exact, and the 5 right vectors span the true 5-dim space."""
    handle, M, s, Qv = known
    k = 8
    vals, U, V = J.top_singular(handle, _rand_image(8, 12), k)
    torch.testing.assert_close(vals.double(), s[:k], atol=1e-4, rtol=0)
    V5 = V[:5].reshape(5, -1).double()
    assert torch.linalg.svdvals(V5 @ Qv[:, :5]).min().item() > 1 - 1e-4  # principal angles ≈ 0
    residual = (V.reshape(k, -1).double() @ M.T - vals.double()[:, None] * U.reshape(k, -1).double()).norm(dim=1)
    assert residual.max().item() < 1e-3


def test_effective_dim_curve_is_flat_for_a_linear_denoiser(known):
    handle, M, s, _ = known
    curve = J.effective_dim_curve(handle, _rand_image(9, 12)[0, 0].numpy(), [0.05, 0.1, 0.4], seed=1)
    np.testing.assert_allclose(curve.trace, M.trace().item(), atol=1e-4)
    np.testing.assert_allclose(curve.sum_sq, s.square().sum().item(), rtol=1e-5)
    assert curve.method == "exact" and curve.probes == 0


def test_symmetric_smoothing_has_zero_asymmetry():
    handle = ModelHandle(Smoothing(), device="cpu")
    y = _rand_image(10, 48)  # N = 2304 > EXACT_LIMIT: 'auto' estimates
    est = J.symmetry(handle, y, probes=16)
    assert est.method == "hutchinson" and est.probes == 16
    assert est.value < 1e-6
    small = _rand_image(10, 16)
    assert J.symmetry(handle, small).value < 1e-6
    A = J.full_jacobian(handle, small).double()
    lam, E, recon = J.shrinkage(handle, small, 6)
    torch.testing.assert_close(lam.double(), torch.linalg.eigvalsh(A).flip(0)[:6], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- one Krylov space for both spectra


def _check_triplets(A: torch.Tensor, svd: J.SVD, k: int, tol: float) -> None:
    """Rayleigh–Ritz triplets: orthonormal, and A v = s u or Aᵀ u = s v exact (whichever side was kept)."""
    s, U, V = svd.values.double(), svd.U.reshape(k, -1).double(), svd.V.reshape(k, -1).double()
    torch.testing.assert_close(U @ U.T, torch.eye(k, dtype=U.dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(V @ V.T, torch.eye(k, dtype=V.dtype), atol=1e-5, rtol=0)
    right = (V @ A.T - s[:, None] * U).norm(dim=1).max().item()
    left = (U @ A - s[:, None] * V).norm(dim=1).max().item()
    assert min(right, left) < tol * s[0].item()


def test_harmonic_basis_on_a_symmetric_linear_denoiser():
    """Symmetric A (5×5 Gaussian smoothing): the one-space SVD is the eigendecomposition, both exact."""
    handle = ModelHandle(Smoothing(), device="cpu")
    y = _rand_image(10, 16)
    A = J.full_jacobian(handle, y).double()
    k = 12
    svd, sh = J.harmonic_basis(handle, y, k, block=8, steps=12)
    exact = torch.linalg.eigvalsh(A).flip(0)[:k]  # A is positive semi-definite here: s = λ
    torch.testing.assert_close(svd.values.double(), torch.linalg.svdvals(A)[:k], atol=1e-5, rtol=0)
    torch.testing.assert_close(sh.eigenvalues.double(), exact, atol=1e-5, rtol=0)
    _check_triplets(A, svd, k, 1e-4)
    torch.testing.assert_close(sh.eigenvalues, J.shrinkage(handle, y, k).eigenvalues, atol=1e-5, rtol=0)
    E = sh.eigenvectors.reshape(k, -1).double()
    assert (E @ A.T - sh.eigenvalues.double()[:, None] * E).norm(dim=1).max().item() < 1e-3
    yf = y.flatten().double()
    torch.testing.assert_close(sh.reconstruction.flatten().double(), (sh.eigenvalues.double() * (E @ yf)) @ E)


def test_harmonic_basis_on_a_non_symmetric_matrix(known):
    """M = Q_u diag(s) Q_vᵀ with unrelated random Q_u, Q_v: far from symmetric. On a partial space both
    spectra are Rayleigh–Ritz lower bounds and the singular values measurably short of the truth (M_s's
    space is not M's); once the space fills all N dimensions both are exact."""
    handle, M, s, _ = known
    y, k = _rand_image(8, 12), 6
    lam = torch.linalg.eigvalsh(0.5 * (M + M.T)).flip(0)[:k]
    svd, sh = J.harmonic_basis(handle, y, k, block=12, steps=3)
    vals = svd.values.double()
    assert (vals <= s[:k] + 1e-5).all() and (sh.eigenvalues.double() <= lam + 1e-5).all()
    assert ((s[:k] - vals) / s[:k]).max().item() > 0.05  # not accurate: this A is not nearly symmetric
    _check_triplets(M, svd, k, 1e-4)
    full, sh_full = J.harmonic_basis(handle, y, k, block=24, steps=10, tol=0)  # 6 blocks of 24 = N = 144
    torch.testing.assert_close(full.values.double(), s[:k], atol=1e-5, rtol=0)
    torch.testing.assert_close(sh_full.eigenvalues.double(), lam, atol=1e-5, rtol=0)
    _check_triplets(M, full, k, 1e-4)


def test_harmonic_basis_on_a_bias_free_network(bf, y, dense_bf):
    """The tiny BF-DnCNN (a clustered spectrum): converged eigenpairs, singular values within 1 %."""
    k = 16
    svd, sh = J.harmonic_basis(bf, y, k, block=16, steps=40, tol=1e-6)
    As = 0.5 * (dense_bf + dense_bf.T)
    lam = torch.linalg.eigvalsh(As).flip(0)[:k]
    assert ((sh.eigenvalues.double() - lam).abs() / lam.abs().max()).max().item() < 1e-3
    exact = torch.linalg.svdvals(dense_bf)[:k]
    assert ((svd.values.double() - exact).abs() / exact).max().item() < 1e-2
    _check_triplets(dense_bf, svd, k, 1e-4)


# --------------------------------------------------------------------------- the lab's BF-DnCNN


def _lab_handle() -> ModelHandle:
    from explorer.convert import load_legacy

    model, _ = load_legacy(LAB)
    return ModelHandle(model, device="cpu")


def test_lab_bf_dncnn_adaptive_filters():
    """BF-DnCNN [0, 100] on a 40×40 crop of Set68/test001: Σs² falls as σ^(−0.6…−1.2) from σ = 10 to 100
    (Hutchinson, 64 Rademacher probes: 328 ± 3 and 30.5 ± 1.4, slope −1.03; the exact dense value at
    σ = 10 is 331.1, but 1 600 JVPs per σ took 90 s of the suite's time); mean row sum within 0.05 of 1 at σ = 10, 30; top singular pairs nearly symmetric at σ = 30
    (|u_kᵀv_k| > 0.9 for ≥ 15 of the top 16; measured: only the first, s_1 ≈ 2.1, is 0.79, the rest
    0.91–0.98); J(y) y = x̂(y) to 1e-4 (forward-mode autodiff, not the replay)."""
    from explorer.data.files import load_image

    if not LAB.exists() or not SET68.exists():
        pytest.fail(f"the lab check needs {LAB} and {SET68}")
    handle = _lab_handle()
    x = torch.as_tensor(load_image(SET68))[100:140, 100:140][None, None]
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy = {s: x + s / 255 * z for s in (10, 30, 100)}

    for s in (10, 30):
        assert abs(J.row_sums(handle, noisy[s]).mean().item() - 1) < 0.05

    y = noisy[30]
    assert _rel(J.jvp(handle, y, y[0], path="autodiff"), handle.denoise(y)[0]) < 1e-4

    _, U, V = J.top_singular(handle, y, 16, steps=3)
    alignment = (U * V).flatten(1).sum(1).abs()
    assert (alignment > 0.9).sum().item() >= 15 and alignment.min().item() > 0.7, alignment

    est = {s: J.sum_sq_singular(handle, noisy[s], method="hutchinson", probes=64) for s in (10, 100)}
    assert all(e.stderr < 0.06 * e.value for e in est.values()), est
    dims = {s: e.value for s, e in est.items()}
    assert dims[10] > dims[100]
    slope = math.log(dims[100] / dims[10]) / math.log(10)
    assert -1.2 < slope < -0.6, dims


def test_partial_shrinkage_sums_the_first_terms_in_numpy_and_torch(bf, y):
    lam, E, recon = J.shrinkage(bf, y, 6)
    torch.testing.assert_close(J.partial_shrinkage(lam, E, y[0]), recon, rtol=1e-5, atol=1e-6)
    part = J.partial_shrinkage(lam.numpy(), E[:, 0].numpy(), y[0, 0].numpy(), 3)  # one channel, as the GAHB tool
    Ef = E[:3, 0].reshape(3, -1).double().numpy()
    expected = ((lam[:3].double().numpy() * (Ef @ y[0, 0].double().numpy().ravel())) @ Ef).reshape(part.shape)
    assert part.dtype == np.float64 and part.shape == tuple(y.shape[-2:])
    np.testing.assert_allclose(part, expected, rtol=1e-10, atol=1e-12)


def test_sigma_is_the_first_optional_argument_of_every_function():
    """One name and one place for σ: f(handle, y[, V | U | pixel | k], sigma=None, *, options)."""
    import inspect

    for name in ("jvp", "vjp", "row", "row_sums", "full_jacobian", "top_singular", "shrinkage", "effective_dim",
                 "sum_sq_singular", "symmetry", "linearize"):
        params = list(inspect.signature(getattr(J, name)).parameters.values())
        first_optional = next(p for p in params if p.default is not inspect.Parameter.empty)
        assert first_optional.name == "sigma", name
        later = params[params.index(first_optional) + 1:]
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL) for p in later), name


def test_the_old_positional_order_of_the_estimators_still_works_deprecated(bf, y):
    new = J.effective_dim(bf, y, None, method="hutchinson", probes=8, seed=3)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = J.effective_dim(bf, y, "hutchinson", 8, None, 3)
    assert old == new
    with pytest.warns(DeprecationWarning):
        assert J.symmetry(bf, y, "exact") == J.symmetry(bf, y, method="exact")
    with pytest.raises(TypeError, match="keyword"):
        J.sum_sq_singular(bf, y, None, "exact")


def test_a_second_filter_at_the_same_image_costs_one_vjp_and_a_new_image_a_new_linearization():
    """linearize() keeps each handle's last linearizations: a further click reuses the forward pass."""
    from explorer.denoisers import DnCNN
    from explorer.linearization import CACHED_LINEARIZATIONS, Linearization, forget_linearizations, linearize

    torch.manual_seed(0)
    handle = ModelHandle(DnCNN(depth=3, width=8), device="cpu")
    forwards = []
    handle.model.register_forward_hook(lambda *_: forwards.append(1))
    y = torch.rand(1, 1, 12, 12)
    first = J.row(handle, y, (3, 4))
    after_first = len(forwards)
    assert after_first >= 1
    second = J.row(handle, y, (7, 2))
    assert len(forwards) == after_first  # no forward pass: the pullback of the recorded graph only
    fresh = Linearization(handle.model, y, None)
    E = torch.zeros(2, 1, 12, 12)
    E[0, 0, 3, 4] = E[1, 0, 7, 2] = 1
    torch.testing.assert_close(torch.stack([first, second]), fresh.vjp(E))
    assert linearize(handle, y.clone()) is linearize(handle, y)  # keyed by content, not identity
    assert linearize(handle, y + 1e-3) is not linearize(handle, y)  # a new image
    assert linearize(handle, y, 0.1) is not linearize(handle, y)  # a new σ
    for k in range(CACHED_LINEARIZATIONS + 2):
        linearize(handle, y + k)
    n = len(forwards)
    J.row(handle, y, (3, 4))  # evicted: recorded again
    assert len(forwards) > n
    forget_linearizations(handle)
    n = len(forwards)
    J.row(handle, y, (3, 4))
    assert len(forwards) > n
