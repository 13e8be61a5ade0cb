"""Benchmark the matrix-free Jacobian tools on the lab's 20-layer BF-DnCNN (trained on σ ∈ [0, 100]).

Measured in one run at one noisy crop (default 64×64 of Set68/test001, σ = 30 in 8-bit units):
- top-16 singular triplets, matrix-free (explorer.jacobian.top_singular) vs the dense route
  (full_jacobian: N batched JVPs, then a dense float32 SVD with vectors); target ≥ 10× faster;
- the adaptive filter of one pixel (explorer.jacobian.row) ÷ one forward pass; target ≤ 3.

Usage: python benchmarks/bench_jacobian.py [--size 64] [--sigma 30] [--checkpoint PATH] [--image PATH]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from explorer import jacobian
from explorer.convert import load_legacy
from explorer.data.files import load_image
from explorer.handle import ModelHandle

SHARED = Path(__file__).resolve().parents[2] / "shared"


def best_of(fn, reps: int) -> tuple[float, object]:
    """Smallest wall time of ``reps`` calls (after one warm-up) and the last result."""
    out = fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sigma", type=float, default=30.0, help="noise level in 8-bit units")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--checkpoint", default=str(SHARED / "lcv/bias_free_denoising/dncnn/bias_free/0-100.pt"))
    p.add_argument("--image", default=str(SHARED / "data/bsd/Set68/test001.png"))
    a = p.parse_args()

    model, _ = load_legacy(a.checkpoint)
    handle = ModelHandle(model, device="cpu")
    img = torch.as_tensor(load_image(a.image))
    top, left = (img.shape[0] - a.size) // 2, (img.shape[1] - a.size) // 2
    x = img[top : top + a.size, left : left + a.size][None, None]
    y = x + a.sigma / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    n = y.numel()
    print(f"model: {a.checkpoint} | image {a.size}×{a.size} (N = {n}) | σ = {a.sigma:g} | threads {torch.get_num_threads()}")

    t_fwd, _ = best_of(lambda: handle.denoise(y), 5)
    t_row, _ = best_of(lambda: jacobian.row(handle, y, (a.size // 2, a.size // 2)), 5)
    print(f"forward pass            {t_fwd * 1e3:9.1f} ms")
    print(f"adaptive filter (1 px)  {t_row * 1e3:9.1f} ms   ratio {t_row / t_fwd:5.2f} forward passes (target ≤ 3)")

    def matrix_free() -> tuple[float, jacobian.SVD]:
        t = time.perf_counter()
        out = jacobian.top_singular(handle, y, a.k)
        return time.perf_counter() - t, out

    t_before, svd = matrix_free()
    print(f"top-{a.k} matrix-free      {t_before:9.2f} s   (before the dense route)")

    t = time.perf_counter()
    A = jacobian.full_jacobian(handle, y)
    t_jac = time.perf_counter() - t
    t = time.perf_counter()
    _, s_dense, _ = torch.linalg.svd(A, full_matrices=False)
    t_svd = time.perf_counter() - t
    t_dense = t_jac + t_svd
    print(f"dense route             {t_dense:9.2f} s   (Jacobian {t_jac:.2f} s from {n} JVPs + SVD {t_svd:.2f} s)")
    t_after, _ = matrix_free()  # timed again after, so a change of machine load biases neither side
    t_free = 0.5 * (t_before + t_after)
    print(f"top-{a.k} matrix-free      {t_after:9.2f} s   (after the dense route; mean {t_free:.2f} s)")
    print(f"speed-up                {t_dense / t_free:9.1f}×   (target ≥ 10×)")
    rel = ((svd.values - s_dense[: a.k]).abs() / s_dense[: a.k]).max().item()
    print(f"max relative error of the top-{a.k} singular values vs dense: {rel:.2e}")
    print(f"top singular values: {[round(v, 4) for v in svd.values.tolist()]}")


if __name__ == "__main__":
    main()
