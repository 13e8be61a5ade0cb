"""Where the Algorithm 2 samples disagree vs the Jacobian's uncertainty at the last step (issue #20).

For each measurement, ``--chains`` samples of Algorithm 2 (the inverse tool's defaults: β = 0.1,
h₀ = 0.01, σ_L = 0.01) on a 64×64 built-in photograph, then
:meth:`explorer.ui.inverse_state.InverseRun.uncertainty`: the per-pixel spread of the samples and
√(σ_T² diag(P A P)) at each chain's last iterate; prints their correlation over the unmeasured pixels
(all pixels for non-pixel measurements) and the ratio of their medians.

    OMP_NUM_THREADS=1 python scripts/inverse_uncertainty.py [--model bf-natural-gray] [--image camera] [--chains 4]
"""
from __future__ import annotations

import argparse

import numpy as np

import explorer
from explorer.data.builtin import builtin_image
from explorer.ui.inverse_state import InverseRun
from explorer.ui.mask import MaskDrawing, preset_mask


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=explorer.DEFAULT_MODEL)
    p.add_argument("--image", default="camera")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    handle = explorer.load(a.model, device="cpu")
    image = builtin_image(a.image, a.size)
    print(f"{a.model}, {a.image} {a.size}×{a.size}, {a.chains} chains, seed {a.seed}")
    print("| measurement | steps | median spread | median Jacobian std at σ_T | ratio | correlation r |")
    print("|---|---|---|---|---|---|")
    for kind in ("inpainting (draw the mask)", "random pixels", "super-resolution"):
        run = InverseRun(image, chains=a.chains, seed=a.seed, kind=kind)
        if kind.startswith("inpainting"):
            run.drawing = MaskDrawing((a.size, a.size), base=preset_mask((a.size, a.size), "centre square"))
            run.update_measurement()
        run.build_for(handle)
        run.play()
        run.join(3600)
        u = run.uncertainty(handle)
        where = u["unknown"] if u["unknown"] is not None else np.ones_like(u["spread"], bool)
        print(f"| {run.measurement.describe()} | {run.sampler.t} | {np.median(u['spread'][where]):.4f} | "
              f"{np.median(u['jacobian'][where]):.4f} (σ_T {u['sigma_T']:.4f}) | {u['ratio']:.2f} | {u['correlation']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
