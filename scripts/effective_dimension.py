"""Effective dimension of a denoiser against the noise level, averaged over synthetic images.

For each image x and noise level σ, y = x + σz and the effective dimension is tr A_y (A = ∂x̂/∂y,
the degrees of freedom of the locally linear denoiser; Mohan*, Kadkhodaie* et al. 2020). For the
5-parameter disc images (centre x/y, radius, foreground, background) a denoiser that has learned the
disc manifold should approach dimension 5 as σ → 0 (it can only move along the manifold) and fall
further as σ grows (Kadkhodaie et al., ICLR 2024).

    python scripts/effective_dimension.py bf-discs --data discs --size 40 --images 4 --sigmas 0.01,0.02,0.05,0.1,0.2,0.4 [--write-card]

Prints mean ± std of tr A and of Σ s² = ‖A‖_F² over the images at every σ ([0,1] units); with
``--write-card`` stores the table as ``metrics["effective_dim_<data>"]`` in the model's card.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import explorer
from explorer import jacobian
from explorer.checkpoints import resolve
from explorer.data.registry import dataset
from explorer.evaluate import write_card_metrics

DATA = ("discs", "calpha", "dead-leaves")  # synthetic sets of explorer.data.registry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data", choices=DATA, default="discs")
    p.add_argument("--size", type=int, default=40)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--sigmas", type=lambda s: [float(v) for v in s.split(",")], default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--write-card", action="store_true")
    a = p.parse_args(argv)
    handle = explorer.load(a.model)
    images = [dataset(a.data).test_image(i, a.size) for i in range(a.images)]  # the held-out test images
    curves = [jacobian.effective_dim_curve(handle, x, a.sigmas, seed=a.seed + k, method="exact")
              for k, x in enumerate(images)]
    tr = np.stack([c.trace for c in curves])
    fro = np.stack([c.sum_sq for c in curves])
    print(f"{a.model} on {a.images} {a.data} images {a.size}×{a.size} (N = {a.size ** 2}), exact Jacobians")
    print(f"{'σ':>6s} {'tr A':>16s} {'Σ s²':>16s}")
    for j, s in enumerate(a.sigmas):
        print(f"{s:6.3f} {tr[:, j].mean():9.2f} ± {tr[:, j].std():5.2f} {fro[:, j].mean():9.2f} ± {fro[:, j].std():5.2f}")
    if a.write_card:
        entry = {"images": a.images, "size": a.size, "seed": a.seed, "sigma_units": "[0,1]",
                 "sigmas": a.sigmas, "trace_mean": tr.mean(0).round(3).tolist(), "sum_sq_mean": fro.mean(0).round(3).tolist(),
                 "command": "python scripts/effective_dimension.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        write_card_metrics(resolve(a.model), f"effective_dim_{a.data}", entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
