"""Benchmark the matrix-free Jacobian tools on the lab's 20-layer BF-DnCNN (trained on σ ∈ [0, 100]).

Measured in one run at one noisy crop (default 64×64 of Set68/test001, σ = 30 in 8-bit units):
- top-16 singular triplets, matrix-free (explorer.jacobian.top_singular) vs the dense route
  (full_jacobian: N batched JVPs, then a dense float32 SVD with vectors); target ≥ 10× faster;
- the adaptive filter of one pixel (explorer.jacobian.row) ÷ one forward pass: a first click (a fresh
  linearization at the image; target ≤ 3) and a further click at the same image (the kept linearization:
  one VJP; target ≤ 1.3, issue #21);
- with ``--gahb K``: the GAHB tool's top-K SVD + eigen-shrinkage, the new one-space path
  (explorer.jacobian.harmonic_basis with the tool's settings) ÷ the old separate top_singular +
  shrinkage (3 steps, 1 %, block K + max(8, K/4)), both timed in this run, and both against converged
  solves (12 steps, 1e-4): relative errors of s_1..s_K, of λ_1..λ_K (÷ λ_1) and of x̂_K.

Usage: python benchmarks/bench_jacobian.py [--size 64] [--sigma 30] [--checkpoint PATH | --model NAME]
       [--image PATH] [--gahb 64 [--gahb-only]]
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
from explorer.linearization import forget_linearizations

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
    p.add_argument("--model", default=None, help="a catalogue name for explorer.load (instead of --checkpoint)")
    p.add_argument("--image", default=str(SHARED / "data/bsd/Set68/test001.png"))
    p.add_argument("--gahb", type=int, default=0, help="also time the GAHB tool's spectra at this k")
    p.add_argument("--gahb-only", action="store_true", help="skip the SVD-vs-dense and row benchmarks")
    a = p.parse_args()

    if a.model:
        import explorer

        handle = explorer.load(a.model, device="cpu")
        a.checkpoint = a.model
    else:
        model, _ = load_legacy(a.checkpoint)
        handle = ModelHandle(model, device="cpu")
    img = torch.as_tensor(load_image(a.image))
    top, left = (img.shape[0] - a.size) // 2, (img.shape[1] - a.size) // 2
    x = img[top : top + a.size, left : left + a.size][None, None]
    y = x + a.sigma / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    n = y.numel()
    print(f"model: {a.checkpoint} | image {a.size}×{a.size} (N = {n}) | σ = {a.sigma:g} | threads {torch.get_num_threads()}")
    if a.gahb:
        gahb(handle, y, a.gahb)
        if a.gahb_only:
            return

    t_fwd, _ = best_of(lambda: handle.denoise(y), 5)
    pixel = (a.size // 2, a.size // 2)
    t_row, _ = best_of(lambda: (forget_linearizations(handle), jacobian.row(handle, y, pixel))[1], 5)
    t_next, _ = best_of(lambda: jacobian.row(handle, y, pixel), 5)
    print(f"forward pass            {t_fwd * 1e3:9.1f} ms")
    print(f"adaptive filter (1 px)  {t_row * 1e3:9.1f} ms   ratio {t_row / t_fwd:5.2f} forward passes (first click; target ≤ 3)")
    print(f"  a further click       {t_next * 1e3:9.1f} ms   ratio {t_next / t_fwd:5.2f} forward passes (same image; target ≤ 1.3)")

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


def gahb(handle: ModelHandle, y: torch.Tensor, k: int) -> None:
    """The GAHB tool's spectra: the new one-space path ÷ the old separate solves (at the old tool's
    settings, and at the new path's residual tolerance), all against converged solves."""
    from explorer.ui.gahb_state import krylov_options

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    def separate(**opts):
        return lambda: (jacobian.top_singular(handle, y, k, **opts), jacobian.shrinkage(handle, y, k, **opts))

    new_opts = krylov_options(k)
    old_tool = separate(steps=3, tol=1e-2, oversample=max(8, k // 4))
    t_old, old = timed(old_tool)
    t_new, hb = timed(lambda: jacobian.harmonic_basis(handle, y, k, **new_opts))
    t_old2, _ = timed(old_tool)
    t_old = 0.5 * (t_old + t_old2)  # timed before and after the new path, so a change of load biases neither
    t_same, same = timed(separate(steps=new_opts["steps"], tol=new_opts["tol"]))
    t_ref, (svd_ref, sh_ref) = timed(separate(steps=12, tol=1e-4, seed=1))
    print(f"GAHB k={k} (top-k SVD + eigen-shrinkage): new harmonic_basis {t_new:.2f} s | old separate solves at the "
          f"old tool's settings {t_old:.2f} s (mean of 2), ratio new/old {t_new / t_old:.2f} | separate solves at "
          f"tol {new_opts['tol']:g} {t_same:.2f} s, ratio new/those {t_new / t_same:.2f} | converged {t_ref:.1f} s")
    s_ref, lam_ref, rec_ref = svd_ref.values.double(), sh_ref.eigenvalues.double(), sh_ref.reconstruction.double()
    for name, (svd, sh) in (("old tool", old), ("new", hb), (f"separate, tol {new_opts['tol']:g}", same)):
        rs = ((svd.values.double() - s_ref).abs() / s_ref)
        rl = ((sh.eigenvalues.double() - lam_ref).abs() / lam_ref[0]).max().item()
        rr = ((sh.reconstruction.double() - rec_ref).norm() / rec_ref.norm()).item()
        print(f"  {name:>20}: |Δs|/s max {rs.max().item():.2e} (s_1 {rs[0].item():.1e}) | |Δλ|/λ_1 max {rl:.2e} | "
              f"‖x̂_K − converged‖/‖converged‖ {rr:.2e}")


if __name__ == "__main__":
    main()
