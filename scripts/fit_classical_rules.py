"""Fit the σ rules of the classical denoisers on BSD400 training crops (never on a test set).

Data: 8 gray 96×96 centre crops of ../shared/data/bsd/Train400 (every 50th image in name order),
σ ∈ {15, 25, 50}/255, one seeded noise draw per crop and σ. Every denoiser is told the true σ;
its output is clamped to [0, 1] as in ``explorer.evaluate``; the score is the mean PSNR over the
crops. For each rule the script searches a grid of its constants and prints the best ones:

- Tikhonov, λ = a σ^p: the best λ on a log grid for each σ, then (a, p) by least squares on log λ;
- Perona–Malik, κ = cσ with K steps of Δt = 1/4; total variation, λ = cσ (100 Chambolle iterations);
  bilateral, σ_r = cσ with σ_s; non-local means, h = cσ (7×7 patches, 21×21 window); wavelet
  shrinkage, τ = kσ (sym8, 4 levels, 4 × 4 cycle spins): the constants with the highest PSNR
  averaged over the three σ.

The fitted constants are written by hand into explorer/denoisers/{variational,nonlocal_filters,
wavelets}.py. Usage: OMP_NUM_THREADS=1 python scripts/fit_classical_rules.py [--data DIR] (about 1 CPU-minute).
"""
from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from explorer.data.files import list_images, load_image
from explorer.denoisers import (BilateralFilter, Denoiser, NonLocalMeans, PeronaMalik, TikhonovGradient, TotalVariation,
                                WaveletShrinkage)

SIGMAS = (15 / 255, 25 / 255, 50 / 255)
CROP, CROPS, EVERY = 96, 8, 50


def training_crops(folder: Path) -> torch.Tensor:
    """(CROPS, 1, CROP, CROP) float64 centre crops of every EVERY-th training image."""
    files = list_images(folder)[::EVERY][:CROPS]
    crops = []
    for f in files:
        x = load_image(f, gray=True)
        i, j = (x.shape[0] - CROP) // 2, (x.shape[1] - CROP) // 2
        crops.append(x[i:i + CROP, j:j + CROP])
    return torch.as_tensor(np.stack(crops)[:, None], dtype=torch.float64)


def noisy(x: torch.Tensor, sigma: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(round(sigma * 255))
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    mse = ((x_hat.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse)).mean())


def scores(make: Callable[[], Denoiser], x: torch.Tensor, ys: dict[float, torch.Tensor]) -> dict[float, float]:
    d = make()
    with torch.no_grad():
        return {s: psnr(d(y, s), x) for s, y in ys.items()}


def grid_search(label: str, make: Callable[..., Denoiser], grid: dict[str, Sequence[float]], x: torch.Tensor,
                ys: dict[float, torch.Tensor]) -> dict[str, float]:
    """The grid point with the best PSNR averaged over σ; prints the per-σ optimum too."""
    start = time.process_time()
    results = []
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values))
        results.append((kw, scores(lambda: make(**kw), x, ys)))
    best_kw, best = max(results, key=lambda r: np.mean(list(r[1].values())))
    for s in ys:
        kw, sc = max(results, key=lambda r: r[1][s])
        print(f"  {label}: best at σ = {s * 255:g}: {kw} → {sc[s]:.2f} dB")
    cells = ", ".join(f"σ={s * 255:g}: {v:.2f}" for s, v in best.items())
    print(f"{label}: fitted {best_kw} → {cells} dB (mean {np.mean(list(best.values())):.2f}; "
          f"{time.process_time() - start:.0f} CPU-s)")
    return best_kw


def fit_tikhonov(x: torch.Tensor, ys: dict[float, torch.Tensor]) -> tuple[float, float]:
    """The best λ per σ on a log grid, then log λ = log a + p log σ by least squares."""
    lams = np.exp(np.linspace(math.log(0.05), math.log(50), 61))
    best = {}
    for s, y in ys.items():
        ps = [scores(lambda: TikhonovGradient(lam=float(lam)), x, {s: y})[s] for lam in lams]
        best[s] = float(lams[int(np.argmax(ps))])
        print(f"  tikhonov: best λ at σ = {s * 255:g}: {best[s]:.3g} → {max(ps):.2f} dB")
    p, log_a = np.polyfit(np.log(list(best)), np.log(list(best.values())), 1)
    a = float(math.exp(log_a))
    rule = scores(lambda: TikhonovGradient(scale=a, power=float(p)), x, ys)
    print(f"tikhonov: fitted λ = {a:.3g} σ^{p:.3f} → " + ", ".join(f"σ={s * 255:g}: {v:.2f}" for s, v in rule.items()) + " dB")
    return a, float(p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/bsd/Train400")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = training_crops(args.data)
    ys = {s: noisy(x, s) for s in SIGMAS}
    print(f"{len(x)} crops of {CROP}×{CROP} from {args.data.resolve()}; noisy PSNR "
          + ", ".join(f"σ={s * 255:g}: {psnr(y, x):.2f}" for s, y in ys.items()))
    fit_tikhonov(x, ys)
    grid_search("perona-malik", lambda edge, steps: PeronaMalik(edge=edge, steps=int(steps)),
                {"edge": [0.4, 0.5, 0.6, 0.7, 0.85], "steps": [8, 12, 16, 20, 25]}, x, ys)
    grid_search("total-variation", lambda weight: TotalVariation(weight=weight),
                {"weight": [0.7, 0.8, 0.9, 1.0, 1.1]}, x, ys)
    grid_search("bilateral", lambda range_factor, spatial: BilateralFilter(range_factor=range_factor, spatial=spatial),
                {"range_factor": [2.0, 2.4, 2.8, 3.4, 4.0], "spatial": [1.5, 2.0, 2.5]}, x, ys)
    grid_search("nl-means", lambda h_factor: NonLocalMeans(h_factor=h_factor),
                {"h_factor": [0.6, 0.7, 0.8, 0.9, 1.0]}, x, ys)
    grid_search("wavelet", lambda threshold: WaveletShrinkage(threshold=threshold),
                {"threshold": [1.25, 1.5, 1.75, 2.0, 2.25]}, x, ys)


if __name__ == "__main__":
    main()
