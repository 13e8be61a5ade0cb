"""A grid of Algorithm 1 samples from a denoiser's implicit prior, saved as a PNG.

    python scripts/sample_grid.py bf-mnist --size 32 --count 16 --beta 0.5 --out docs/mnist_samples.png

Each tile is x̂(y_T) of one chain, shown in gray on the fixed range [0, 1] (clipped), magnified by
nearest-neighbour ``--zoom`` so the pixels stay square. Prints the steps and wall time per chain.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

import explorer
from explorer.sampling import sample


def tile(images: np.ndarray, columns: int, zoom: int, gap: int = 2) -> np.ndarray:
    """(B, H, W) in [0, 1] → one uint8 mosaic with ``gap``-pixel white separators."""
    b, h, w = images.shape
    rows = -(-b // columns)
    out = np.full((rows * (h * zoom + gap) + gap, columns * (w * zoom + gap) + gap), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, columns)
        big = np.kron(np.clip(im, 0, 1), np.ones((zoom, zoom)))
        y0, x0 = gap + r * (h * zoom + gap), gap + c * (w * zoom + gap)
        out[y0:y0 + h * zoom, x0:x0 + w * zoom] = np.round(big * 255).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--h0", type=float, default=0.01)
    p.add_argument("--sigma-L", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zoom", type=int, default=3)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    handle = explorer.load(a.model)
    start = time.perf_counter()
    result = sample(handle, (a.count, handle.channels, a.size, a.size), beta=a.beta, h0=a.h0,
                    sigma_L=a.sigma_L, seed=a.seed, snapshot_every=None)
    seconds = time.perf_counter() - start
    Image.fromarray(tile(result.image[:, 0].cpu().numpy(), a.columns, a.zoom)).save(a.out)
    steps = result.steps.tolist()
    print(f"{a.model}: {a.count} samples of {a.size}×{a.size}, β={a.beta}, h0={a.h0}, σ_L={a.sigma_L}: "
          f"steps {min(steps)}–{max(steps)} (median {int(np.median(steps))}), {seconds:.1f} s wall, "
          f"status {sorted(set(result.status))} → {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
