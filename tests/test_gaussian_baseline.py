"""The stationary Gaussian baseline (explorer.gaussian_baseline): its NLL is the dense Gaussian's, its fit on data
drawn from a known stationary Gaussian approaches the true entropy and NLL, the dequantized fit is the fit of x + u;
the conversions between nats, bits/dim and dB/dim; patch extraction at the borders; the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from explorer.data.patches import extract_patches, patch_positions
from explorer.denoisers.exact import StationaryGaussianDenoiser, power_law
from explorer.energies import log10_probability_ratio, patch_items
from explorer.gaussian_baseline import (NLLColumn, compare, dequantized, entropy, fit_stationary_gaussian, is_8bit,
                                        main, margin)
from explorer.likelihood import LN2, LN10, bits_per_dim, db_per_dim, in_unit

torch.set_num_threads(1)


def true_model(h: int = 8, w: int = 8, mean: float = 0.4) -> StationaryGaussianDenoiser:
    """A stationary Gaussian with a 1/f² spectrum plus a floor (positive everywhere), as an (h, w) array."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(w, dtype=torch.float64).view(1, -1)
    spectrum = power_law(2e-3, 2.0)(fy, fx) + 1e-3
    return StationaryGaussianDenoiser(spectrum.expand(h, w).clone(), mean=mean)


def test_nll_is_the_dense_gaussian_log_density():
    """−log N(x; m𝟙, Σ) with Σ = Fᴴ diag(S) F built densely, column by column, on a non-square 6×5 grid."""
    model = true_model(6, 5)
    d = 30
    basis = torch.eye(d, dtype=torch.float64).view(d, 1, 6, 5)
    cov = torch.fft.ifft2(torch.fft.fft2(basis, norm="ortho") * model.spectrum, norm="ortho").real.view(d, d)
    assert torch.allclose(cov, cov.T, atol=1e-12)  # a real symmetric covariance: the spectrum is even
    x = model.sample(5, (6, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dense = stats.multivariate_normal(mean=np.full(d, 0.4), cov=cov.numpy()).logpdf(x.view(5, d).numpy())
    np.testing.assert_allclose(model.nll(x).numpy(), -dense, rtol=1e-10)
    # the entropy is the expected NLL, ½ log det(2πeΣ)
    assert entropy(model) == pytest.approx(0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov.numpy())[1], rel=1e-10)


def test_the_fit_on_samples_of_a_known_gaussian_approaches_its_entropy_and_nll():
    truth = true_model(8, 8)
    g = torch.Generator().manual_seed(1)
    train = truth.sample(20000, (8, 8), generator=g, dtype=torch.float64)
    held = truth.sample(4000, (8, 8), generator=g, dtype=torch.float64)
    fit = fit_stationary_gaussian(train)
    assert fit.mean == pytest.approx(0.4, abs=5 * math.sqrt(float(truth.spectrum[0, 0]) / (20000 * 64)))
    ratio = (fit.spectrum / truth.spectrum).numpy()
    # each S(f) is a mean of 20000 (two when f ≠ −f pairs share it) χ²-distributed periodogram values
    assert np.abs(ratio - 1).max() < 6 * math.sqrt(2 / 20000) and abs(ratio.mean() - 1) < 0.01
    true_nll, fit_nll = truth.nll(held).numpy(), fit.nll(held).numpy()
    h = entropy(truth)
    assert true_nll.mean() == pytest.approx(h, abs=4 * true_nll.std() / math.sqrt(len(held)))  # E[−log p] = H
    excess = fit_nll - true_nll  # its mean estimates KL(truth ‖ fit) ≥ 0, about d/(2N) nats here
    assert 0 < excess.mean() < 0.05 and abs(entropy(fit) - h) < 0.2


def test_the_dequantized_fit_is_the_fit_of_x_plus_u():
    truth = true_model(8, 8, mean=0.5)
    x = truth.sample(6000, (8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    bits, delta = 4, 2.0**-4  # coarse bins, so that δ²/12 is visible next to S
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * delta
    closed, drawn = fit_stationary_gaussian(x, bits), fit_stationary_gaussian(x + u)
    assert closed.mean == pytest.approx(drawn.mean, abs=2e-4)
    assert closed.mean == pytest.approx(fit_stationary_gaussian(x).mean + delta / 2, abs=1e-12)
    np.testing.assert_allclose(closed.spectrum.numpy(), drawn.spectrum.numpy(), rtol=0.05)
    np.testing.assert_allclose((closed.spectrum - fit_stationary_gaussian(x).spectrum).numpy(), delta**2 / 12, rtol=1e-9)
    assert dequantized(truth, 0) is truth
    with pytest.raises(ValueError, match="constant patches"):
        fit_stationary_gaussian(torch.full((4, 1, 8, 8), 0.5))


def test_unit_conversions():
    nats, d = 1234.5, 1024
    assert in_unit(nats, d, "bits/dim") == pytest.approx(nats / (d * LN2)) == bits_per_dim(nats, d)
    assert in_unit(nats, d, "dB/dim") == pytest.approx(10 * nats / (d * LN10)) == db_per_dim(nats, d)
    assert in_unit(nats, d, "dB/dim") / in_unit(nats, d, "bits/dim") == pytest.approx(10 * math.log10(2))  # 3.0103
    assert in_unit(nats, d, "nats/dim") * d == pytest.approx(nats) and in_unit(nats, d, "nats") == nats
    # the spread as a probability ratio 10^k: k = Δnats / ln 10 = d·ΔdB/10 (the paper's 2.55 … 36.95 dB/dim, 64×64)
    d64 = 64 * 64
    lo, hi = 2.55 * d64 * LN10 / 10, 36.95 * d64 * LN10 / 10
    assert log10_probability_ratio(np.array([hi, lo, (lo + hi) / 2])) == pytest.approx(14090.2, abs=0.1)
    col_a = NLLColumn("a", None, np.array([10.0, 20.0, 30.0]), 4)
    col_b = NLLColumn("b", None, np.array([9.0, 18.0, 27.0]), 4)
    assert col_a.mean("bits/dim") == pytest.approx(20 / (4 * LN2))
    assert margin(col_a, col_b, "nats") == pytest.approx((2.0, 1 / math.sqrt(3)))  # paired: differences 1, 2, 3


def test_patch_positions_and_extraction_at_the_borders():
    assert patch_positions(10, 4, 3).tolist() == [0, 3, 6]  # the last window ends at the border
    assert patch_positions(11, 4, 3).tolist() == [0, 3, 6]  # (11 − 4) mod 3 = 1 pixel is in no window
    assert patch_positions(4, 4, 2).tolist() == [0] and patch_positions(3, 4, 1).tolist() == []
    with pytest.raises(ValueError, match="stride"):
        patch_positions(10, 4, 0)
    img = np.random.default_rng(0).random((11, 13)).astype(np.float32)
    patches, tops, lefts = extract_patches(img, 4, 3)
    assert tops.tolist() == [0, 3, 6] and lefts.tolist() == [0, 3, 6, 9] and patches.shape == (12, 1, 4, 4)
    for k, (r, c) in enumerate((r, c) for r in tops for c in lefts):
        np.testing.assert_array_equal(patches[k, 0], img[r:r + 4, c:c + 4])
    assert tops[-1] + 4 <= 11 and lefts[-1] + 4 == 13  # inside the image, flush with the right border
    with pytest.raises(ValueError, match="smaller than the 16×16 patch"):
        extract_patches(img, 16, 4)


def test_patch_items_of_a_folder_at_a_stride(tmp_path):
    rng = np.random.default_rng(1)
    a = (rng.random((20, 18)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    every = patch_items(tmp_path, 8, None, stride=5)
    assert [it.label for it in every] == [f"a.png@{r},{c}" for r in (0, 5, 10) for c in (0, 5, 10)]
    for it in every:
        r, c = map(int, it.label.split("@")[1].split(","))
        np.testing.assert_array_equal(it.load(), a[r:r + 8, c:c + 8] / np.float32(255))
    tiles = patch_items(tmp_path, 8, 16)  # the default: non-overlapping tiles, as before
    assert [it.label for it in tiles] == ["a.png@0,0", "a.png@0,8", "a.png@8,0", "a.png@8,8"]
    assert len(patch_items(tmp_path, 8, 4, stride=5)) == 4


def test_compare_and_the_cli(tmp_path, capsys):
    truth = StationaryGaussianDenoiser(power_law(1e-3, 2.0), mean=0.5)  # any image size
    g = torch.Generator().manual_seed(4)
    for name, n in (("train", 6), ("held", 3)):
        (tmp_path / name).mkdir()
        for i in range(n):
            img = truth.sample(1, (32, 32), generator=g)[0, 0].clamp(0, 1).numpy()
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(tmp_path / name / f"{i}.png")
    out = tmp_path / "r.json"
    assert main(["--train", str(tmp_path / "train"), "--heldout", str(tmp_path / "held"), "--patch", "16",
                 "--per-image", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "periodic boundary" in printed and "uniform noise (mean) under the Gaussian" in printed
    r = json.loads(out.read_text())
    assert r["train_patches"] == 6 * 9 and r["heldout_patches"] == 3 * 4 and r["d"] == 256  # stride 8, then 16
    cont, disc = r["quantities"]
    assert cont["bits"] == 0 and disc["bits"] == 8 and disc["draws"] == 8
    # the 8-bit bound is about the continuous NLL of the dequantized Gaussian + 8 bits/dim
    assert disc["gaussian"]["bits/dim"]["mean"] == pytest.approx(cont["gaussian"]["bits/dim"]["mean"] + 8, abs=0.05)
    assert cont["gaussian"]["dB/dim"]["mean"] == pytest.approx(cont["gaussian"]["bits/dim"]["mean"] * 10 * math.log10(2))
    noise = cont["references"]["uniform noise (mean)"]["bits/dim"]
    assert noise > cont["gaussian"]["bits/dim"]["mean"] + 1  # white noise is far less probable than the patches
    # a model evaluated on the same patches: the Gaussian itself gives a margin of exactly 0
    train = torch.rand(50, 1, 8, 8, generator=g)
    held = torch.round(torch.rand(10, 1, 8, 8, generator=g) * 255) / 255
    same = compare(train, held, bits=8, model=fit_stationary_gaussian(train, 8), model_name="itself")
    assert same["quantities"][1]["margin"]["bits/dim"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert is_8bit(held) and not is_8bit(held + 1e-2) and len(compare(train, held + 1e-2)["quantities"]) == 1
