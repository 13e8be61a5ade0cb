"""Costs of the Energies tool on photographs (issue #17 targets, on 2 cores):

1. the histogram of ≥ 1000 held-out patches (Set68, 32×32, 16 per photograph: 1088), everything the tool does
   for it (listing, one batched pass per patch, references, the Gaussian baseline; cache off) — target ≤ 20 s;
2. the −log p map of one 256×256 photograph at stride 8 (29×29 = 841 patches of 32×32) — target ≤ 10 s;
3. for information, the scatter plots' denoising gains (the default denoiser on every patch), and the
   correlations the tool prints: −log p against the patches' gradient energy and against their gain.

With ``--draws 1`` (the default) an 8-bit model's bound is one pass per patch; 8 draws cost 8 passes.

    python benchmarks/bench_energy_photographs.py [--model energy-natural-gray] [--draws 1] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from bench_energy import best_time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="energy-natural-gray", help="a catalog energy model")
    p.add_argument("--draws", type=int, default=1, help="dequantization draws per patch of an 8-bit model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--photo", default="camera", help="a built-in photograph for the map")
    p.add_argument("--no-scatter", action="store_true", help="skip the denoising gains")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["EXPLORER_ENERGY_CACHE"] = tempfile.mkdtemp(prefix="bench-energies-")  # nothing cached

    from explorer.data import builtin_image, square_resize
    from explorer.energy_maps import nll_map
    from explorer.patch_measures import correlations
    from explorer.ui.energy_data import PATCH_FOLDERS
    from explorer.ui.energy_patch_state import EnergyPatchState
    from explorer.ui.energy_state import EnergyState
    from explorer.ui.models import get_handle

    handle = get_handle(args.model)
    dataset = next(iter(PATCH_FOLDERS))
    state = EnergyState(handle=handle, model_name=args.model, dataset=dataset, count=1088, draws=args.draws, use_cache=False)
    t0 = time.perf_counter()
    state.compute()
    t_hist = time.perf_counter() - t0
    if state.error:
        raise SystemExit(f"error: {state.error}")
    n = len(state.report.values)
    print(f"{args.model}, {args.threads} threads, {state.quantity.describe()}")
    print(f"  histogram of {n} {state.data_label}: {t_hist:.2f} s (target ≤ 20 s; listing, energies, references, "
          f"Gaussian baseline; cache off) → {n / t_hist:.0f} patches/s")

    img = square_resize(builtin_image(args.photo), 256)
    t_map = best_time(lambda: nll_map(handle, img, 32, 8, state.quantity), 1)
    m = nll_map(handle, img, 32, 8, state.quantity)
    print(f"  map of {args.photo} 256×256, stride 8: {m.nats.size} patches in {t_map:.2f} s (target ≤ 10 s; best of 1 "
          "after a warm-up)")
    if not args.no_scatter:
        patches = EnergyPatchState(state)
        t0 = time.perf_counter()
        patches.active = True  # computes the gradient energies, the denoising gains and the map (inline)
        t_all = time.perf_counter() - t0
        print(f"  scatter plots and map ({patches.denoiser} on {n} patches, then the map): {t_all:.2f} s")
        nll = state.report.values
        for what, values in (("gradient energy", patches.gradient), (f"{patches.denoiser}'s PSNR gain at σ = 25/255", patches.gain)):
            r = correlations(nll, values)
            print(f"  −log p against the {what}: Pearson {r['pearson']:+.3f}, Spearman {r['spearman']:+.3f}")


if __name__ == "__main__":
    main()
