"""The classical arc's costs at 64×64 (issue #19 targets), measured in one run on camera:

- one adaptive filter (a Jacobian row, :func:`explorer.jacobian.row`) of each differentiable classical
  denoiser, and its ratio to one forward pass; target for non-local means ≤ 0.5 s on 2 cores;
- one Algorithm 1 run (β = 0.5, h₀ = 0.01, σ_L = 0.01, one chain, seed 0) with each, BM3D included
  (the sampler only calls x̂); target ≤ 30 s each.

    OMP_NUM_THREADS=1 python benchmarks/bench_classical.py [--size 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import explorer
from explorer import jacobian
from explorer.data.builtin import builtin_image
from explorer.linearization import forget_linearizations
from explorer.ui.models import CLASSICAL, get_handle

from bench_energy import best_time  # the benchmarks' one timer (run from benchmarks/: its folder is on sys.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    x = builtin_image("camera", a.size)
    y = (x + 0.1 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    pixel = (a.size // 2, a.size // 3)
    print(f"camera {a.size}×{a.size}, σ = 0.1, {torch.get_num_threads()} threads")
    print("| denoiser | forward (s) | filter row (s) | row ÷ forward | Algorithm 1 (s) | steps |")
    print("|---|---|---|---|---|---|")
    for name in CLASSICAL:
        handle = get_handle(name)
        told = None if handle.blind else 0.1
        forward = best_time(lambda: handle.denoise(y, told), 3)
        if getattr(handle.model, "differentiable", True):
            def first_click() -> None:
                forget_linearizations(handle)
                jacobian.row(handle, y, pixel, told)

            row = best_time(first_click, 3)
            row_text = f"{row:.3f} | {row / forward:.1f}"
        else:
            row_text = "— (no Jacobian) | —"
        t = time.perf_counter()
        result = explorer.sample(handle, (1, 1, a.size, a.size), seed=0, snapshot_every=None)
        seconds = time.perf_counter() - t
        print(f"| {name.removeprefix('classical: ')} | {forward:.3f} | {row_text} | {seconds:.1f} | "
              f"{int(result.steps[0])} ({result.status[0]}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
