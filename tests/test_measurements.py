"""Properties of the matrix-free measurement operators: orthonormal columns, adjointness, sizes, errors."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.measurements import (
    Inpainting,
    Measurement,
    RandomBasis,
    RandomPixels,
    SpectralLowPass,
    SuperResolution,
    dct2,
    dct_matrix,
    idct2,
)

SHAPES = [(1, 8, 8), (3, 6, 10), (1, 12, 4)]
DTYPES = [torch.float32, torch.float64]
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _random_mask(shape, seed=0, density=0.4):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


FACTORIES = {
    "inpainting": lambda s: Inpainting(_random_mask(s)),
    "inpainting-shared-mask": lambda s: Inpainting(_random_mask(s[1:]), channels=s[0]),
    "random-pixels": lambda s: RandomPixels(s, 0.3, seed=1),
    "super-resolution": lambda s: SuperResolution(s, 2),
    "spectral-low-pass": lambda s: SpectralLowPass(s, 0.25),
    "random-basis": lambda s: RandomBasis(s, 0.4, seed=2),
}


def _rand(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _close(a, b, dtype):
    """‖a − b‖ ≤ rtol·max(‖a‖, ‖b‖, tiny): a relative comparison of whole tensors."""
    scale = max(float(a.norm()), float(b.norm()), 1e-30)
    return float((a - b).norm()) <= RTOL[dtype] * scale


def _explicit_matrix(op: Measurement) -> torch.Tensor:
    """The N × m matrix M, built column by column from the adjoint (small shapes only)."""
    eye = torch.eye(op.m, dtype=torch.float64)
    return op.adjoint(eye).reshape(op.m, -1).T


# --------------------------------------------------------------------------- DCT kernels
@pytest.mark.parametrize("n", [1, 2, 5, 8, 17])
def test_dct_matrix_is_orthonormal(n):
    d = dct_matrix(n)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose(d @ d.T, eye, atol=1e-12)
    assert torch.allclose(d.T @ d, eye, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 5, 12), (4, 7)])
def test_dct2_matches_scipy_and_inverts(shape, dtype):
    x = _rand(*shape, dtype=dtype)
    X = dct2(x)
    assert X.dtype == dtype and X.shape == x.shape
    reference = scipy.fft.dctn(x.double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert _close(X.double(), torch.from_numpy(reference), dtype)
    assert _close(idct2(X), x, dtype)
    assert math.isclose(float(X.norm()), float(x.norm()), rel_tol=RTOL[dtype])  # Parseval


def test_dct_rejects_bad_input():
    with pytest.raises(ValueError, match="positive integer"):
        dct_matrix(0)
    with pytest.raises(ValueError, match="floating-point"):
        dct2(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least 2 dims"):
        idct2(torch.ones(4))


# --------------------------------------------------------------------------- generic operator properties
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", FACTORIES)
def test_operator_is_orthonormal_and_adjoint(kind, shape, dtype):
    op = FACTORIES[kind](shape)
    assert op.shape == shape and op.n == math.prod(shape)
    x = _rand(3, *shape, dtype=dtype, seed=1)
    v = _rand(3, op.m, dtype=dtype, seed=2)

    fx, av = op.forward(x), op.adjoint(v)
    assert fx.shape == (3, op.m) and fx.dtype == dtype
    assert av.shape == (3, *shape) and av.dtype == dtype

    # ⟨Mᵀx, v⟩ = ⟨x, Mv⟩
    lhs, rhs = (fx * v).sum(), (x * av).sum()
    assert abs(float(lhs - rhs)) <= RTOL[dtype] * float(fx.norm() * v.norm())
    # MᵀM = I
    assert _close(op.forward(av), v, dtype)
    # MMᵀ is idempotent, and a projection: it does not grow the norm
    px = op.project(x)
    assert _close(op.project(px), px, dtype)
    assert float(px.norm()) <= float(x.norm()) * (1 + RTOL[dtype])
    # the pseudo-inverse is M and explains the measurements exactly
    assert torch.equal(op.pseudo_inverse(v), av)
    assert _close(op.forward(op.pseudo_inverse(fx)), fx, dtype)


@pytest.mark.parametrize("kind", FACTORIES)
def test_explicit_matrix_has_orthonormal_columns_and_matches_forward(kind):
    op = FACTORIES[kind]((3, 4, 6))
    m = _explicit_matrix(op)
    assert m.shape == (op.n, op.m)
    assert torch.allclose(m.T @ m, torch.eye(op.m, dtype=torch.float64), atol=1e-12)
    x = _rand(2, 3, 4, 6)
    assert torch.allclose(op.forward(x), x.flatten(1) @ m, atol=1e-12)


@pytest.mark.parametrize("kind", FACTORIES)
def test_gradients_flow_through_the_operators(kind):
    op = FACTORIES[kind]((1, 4, 4))
    x = _rand(1, 1, 4, 4).requires_grad_()
    op.project(x).pow(2).sum().backward()
    # ∇‖MMᵀx‖² = 2MMᵀx
    assert torch.allclose(x.grad, 2 * op.project(x.detach()), atol=1e-12)


@pytest.mark.parametrize("kind", FACTORIES)
def test_operators_reject_wrong_shapes_and_dtypes(kind):
    op = FACTORIES[kind]((1, 8, 8))
    with pytest.raises(ValueError, match="built for"):
        op.forward(torch.zeros(2, 1, 8, 6))
    with pytest.raises(ValueError, match="built for"):
        op.forward(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="built for"):
        op.forward(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        op.forward(torch.zeros(2, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="measurements"):
        op.adjoint(torch.zeros(2, op.m + 1))
    with pytest.raises(ValueError, match="measurements"):
        op.adjoint(torch.zeros(op.m))
    with pytest.raises(ValueError, match="torch.Tensor"):
        op.forward(np.zeros((2, 1, 8, 8)))


@pytest.mark.parametrize("kind", FACTORIES)
def test_describe_names_the_operator_and_counts(kind):
    op = FACTORIES[kind]((1, 8, 8))
    text = op.describe()
    assert op.name in text and f"{op.m} of {op.n}" in text
    assert text in repr(op)


# --------------------------------------------------------------------------- Inpainting / RandomPixels
@settings(max_examples=25, deadline=None)
@given(
    c=st.sampled_from([1, 3]),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    shared=st.booleans(),
)
def test_inpainting_observes_exactly_the_mask(c, h, w, density, seed, shared):
    mask = _random_mask((h, w) if shared else (c, h, w), seed, density)
    op = Inpainting(mask, channels=c) if shared else Inpainting(mask)
    full = mask.expand(c, h, w)
    assert op.shape == (c, h, w) and op.m == int(full.sum())
    x = _rand(2, c, h, w, seed=seed)
    assert torch.equal(op.forward(x), x[:, full])
    assert torch.equal(op.project(x), x * full)
    v = _rand(2, op.m, seed=seed + 1)
    assert torch.equal(op.forward(op.adjoint(v)), v)


def test_inpainting_allows_empty_and_full_masks():
    x = _rand(2, 1, 5, 7)
    empty = Inpainting(torch.zeros(5, 7, dtype=torch.bool))
    assert empty.m == 0 and empty.forward(x).shape == (2, 0)
    assert torch.equal(empty.project(x), torch.zeros_like(x))
    full = Inpainting(np.ones((5, 7), dtype=bool))
    assert full.m == 35 and torch.equal(full.project(x), x)
    assert full.describe() == "inpainting, 100% observed (35 of 35)"


def test_inpainting_rejects_bad_masks():
    with pytest.raises(ValueError, match="boolean"):
        Inpainting(torch.ones(4, 4))
    with pytest.raises(ValueError, match="boolean"):
        Inpainting(np.ones((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        Inpainting(torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        Inpainting(torch.ones(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        Inpainting(torch.ones(0, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="conflicts"):
        Inpainting(torch.ones(3, 4, 4, dtype=torch.bool), channels=1)
    with pytest.raises(ValueError, match="channels"):
        Inpainting(torch.ones(4, 4, dtype=torch.bool), channels=0)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.sampled_from([1, 3]), st.integers(1, 20), st.integers(1, 20)),
    per_mille=st.integers(1, 1000),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_pixels_keeps_floor_p_n_values(shape, per_mille, seed):
    p = per_mille / 1000
    op = RandomPixels(shape, p, seed)
    assert op.m == math.floor(Fraction(per_mille, 1000) * math.prod(shape))
    assert op.m == int(op.mask.sum())


def test_random_pixels_is_seeded():
    a, b, c = (RandomPixels((3, 16, 16), 0.2, s) for s in (5, 5, 6))
    assert torch.equal(a.mask, b.mask)
    assert not torch.equal(a.mask, c.mask)
    assert RandomPixels((1, 128, 128), 0.1, 0).describe() == "random pixels, 10% kept (1638 of 16384)"


# --------------------------------------------------------------------------- SuperResolution
@pytest.mark.parametrize("shape,factor", [((1, 8, 8), 2), ((3, 6, 12), 3), ((1, 4, 8), 4), ((2, 5, 5), 1)])
def test_super_resolution_is_block_average(shape, factor):
    op = SuperResolution(shape, factor)
    c, h, w = shape
    assert op.m == op.n // factor**2
    x = _rand(2, *shape)
    means = x.reshape(2, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))
    # the measurement is the block sum / s, i.e. s × the block mean
    assert torch.allclose(op.forward(x), factor * means.flatten(1), atol=1e-12)
    # the pseudo-inverse is the nearest-neighbour up-sampled block mean
    upsampled = torch.kron(means, torch.ones(factor, factor, dtype=x.dtype))
    assert torch.allclose(op.pseudo_inverse(op.forward(x)), upsampled, atol=1e-12)
    # block-constant images are in the range of M: the projection leaves them unchanged
    assert torch.allclose(op.project(upsampled), upsampled, atol=1e-12)


def test_super_resolution_rejects_bad_factors():
    with pytest.raises(ValueError, match="not divisible"):
        SuperResolution((1, 8, 6), 4)
    with pytest.raises(ValueError, match="not divisible"):
        SuperResolution((1, 9, 8), 2)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            SuperResolution((1, 8, 8), bad)


# --------------------------------------------------------------------------- SpectralLowPass
@settings(max_examples=20, deadline=None)
@given(
    shape=st.tuples(st.sampled_from([1, 3]), st.integers(1, 12), st.integers(1, 12)),
    per_cent=st.integers(1, 100),
)
def test_spectral_low_pass_keeps_the_lowest_frequencies(shape, per_cent):
    c, h, w = shape
    op = SpectralLowPass(shape, per_cent / 100)
    k = math.floor(Fraction(per_cent, 100) * h * w + Fraction(1, 2))
    assert op.m == k * c
    # M's range is spanned by DCT basis images: which frequencies pass through the projection?
    kept = torch.zeros(h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            coeffs = torch.zeros(1, c, h, w, dtype=torch.float64)
            coeffs[0, :, i, j] = 1.0
            basis = idct2(coeffs)
            out = op.project(basis)
            passed = torch.allclose(out, basis, atol=1e-10)
            assert passed or torch.allclose(out, torch.zeros_like(out), atol=1e-10)
            kept[i, j] = passed
    assert int(kept.sum()) == k
    radius = torch.arange(h)[:, None] ** 2 + torch.arange(w)[None, :] ** 2
    if 0 < k < h * w:
        assert radius[kept].max() <= radius[~kept].min()


def test_spectral_low_pass_with_p_one_is_the_identity():
    op = SpectralLowPass((3, 5, 7), 1.0)
    x = _rand(2, 3, 5, 7)
    assert op.m == op.n and torch.allclose(op.project(x), x, atol=1e-12)


# --------------------------------------------------------------------------- RandomBasis
def test_random_basis_is_deterministic_per_seed():
    x = _rand(2, 3, 8, 8)
    a, b, c = (RandomBasis((3, 8, 8), 0.3, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.forward(x), b.forward(x))
    assert not torch.allclose(a.forward(x), c.forward(x))
    assert a.m == round(0.3 * 192)


def test_random_basis_with_p_one_is_an_orthonormal_basis():
    op = RandomBasis((3, 4, 6), 1.0, seed=3)
    q = _explicit_matrix(op)
    assert q.shape == (72, 72)
    assert torch.allclose(q @ q.T, torch.eye(72, dtype=torch.float64), atol=1e-12)
    # and not a trivial one: the basis vectors are spread over many pixels
    assert (q.abs() > 1e-9).sum(dim=0).float().mean() > 10


def test_random_basis_stays_matrix_free_at_256():
    shape = (1, 256, 256)
    op = RandomBasis(shape, 0.1, seed=0)
    stored = sum(t.numel() * t.element_size() for t in vars(op).values() if isinstance(t, torch.Tensor))
    dct = 2 * dct_matrix(256, torch.float32).numel() * 4
    assert stored + dct < 10e6  # an N × N float32 matrix would be 65536² · 4 B ≈ 17 GB
    x = _rand(1, *shape, dtype=torch.float32)
    v = _rand(1, op.m, dtype=torch.float32, seed=1)
    fx, av = op.forward(x), op.adjoint(v)
    lhs, rhs = (fx * v).sum(), (x * av).sum()
    assert abs(float(lhs - rhs)) <= 1e-5 * float(fx.norm() * v.norm())
    assert _close(op.forward(av), v, torch.float32)


# --------------------------------------------------------------------------- argument validation
@pytest.mark.parametrize("make", [
    lambda p: RandomPixels((1, 8, 8), p),
    lambda p: SpectralLowPass((1, 8, 8), p),
    lambda p: RandomBasis((1, 8, 8), p),
])
@pytest.mark.parametrize("p", [0.0, -0.1, 1.01, float("nan"), "0.5", True])
def test_fractions_out_of_range_are_rejected(make, p):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        make(p)


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8, 1), (0, 8, 8), (1, -8, 8), (1, 8.5, 8), "abc", 8])
def test_bad_image_shapes_are_rejected(shape):
    for make in (lambda: RandomPixels(shape, 0.5), lambda: SuperResolution(shape, 2),
                 lambda: SpectralLowPass(shape, 0.5), lambda: RandomBasis(shape, 0.5)):
        with pytest.raises(ValueError, match=r"\(C, H, W\)"):
            make()


def test_bad_seeds_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        RandomPixels((1, 8, 8), 0.5, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        RandomBasis((1, 8, 8), 0.5, seed="a")
