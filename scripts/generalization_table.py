"""Memorization → generalization table of the published MNIST pairs (issue #16; Kadkhodaie et al., ICLR 2024).

For every N with both ``gen-mnist-N{N}-A`` and ``-B`` published (or those of ``--sizes``; missing ones
are skipped with a note), the two models and the empirical (perfectly memorizing) denoiser of subset A
each draw one 32×32 sample per seed by Algorithm 1 from the same initial noise and the same injected
noise (:func:`explorer.generalization.same_noise_samples`), and the table reports

- the median over seeds of cos(x_A, x_B), the mean-subtracted cosine of the paired samples;
- the median nearest-training cosine of A's samples to subset A and of B's to subset B;
- the fraction of samples whose nearest cosine is ≥ 0.95 (A / B / the empirical model);
- the mean denoising PSNR in dB (images in [0, 1], peak 1; output clipped) on the model's training
  digits and on held-out digits at σ = 0.2 ([0, 1] units, 51/255), and the gap training − held-out;
- the median wall time of one seed (one chain, 32×32) for A, B and the empirical model.

    OMP_NUM_THREADS=1 python scripts/generalization_table.py [--seeds 16] [--beta 0.5] [--h0 0.01] [--sizes 1,10,100]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from explorer import generalization_pairs as pairs
from explorer.checkpoints import CheckpointError

EXPECTED = (1, 10, 100, 1000, 4750)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help=f"comma-separated N (default: every published pair; expected {','.join(map(str, EXPECTED))})")
    p.add_argument("--seeds", type=int, default=16, help="seeds 0 … S−1, one chain each")
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--h0", type=float, default=0.01)
    p.add_argument("--sigma-L", type=float, default=0.01, help="a chain stops once σ_t ≤ σ_L")
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--psnr-sigma", type=float, default=0.2, help="noise level of the PSNR gap, [0, 1] units")
    p.add_argument("--psnr-images", type=int, default=200, help="at most this many training and held-out digits")
    p.add_argument("--runs", action="store_true",
                   help="take the models from the training run folders instead of the catalog (before publication; "
                        "a run folder's card may be an unfinished checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    published = pairs.published_sizes(runs=a.runs)
    sizes = a.sizes if a.sizes is not None else published
    where = "in the run folders" if a.runs else "published"
    notes = [f"N = {n}: not {where} (needs gen-mnist-N{n}-A and -B), skipped"
             for n in (a.sizes if a.sizes is not None else EXPECTED) if n not in published]
    summaries = []
    for n in sizes:
        if n not in published:
            continue
        start = time.perf_counter()
        try:
            pair = pairs.load_pair(n, device=a.device, runs=a.runs)
        except (CheckpointError, pairs.SubsetRecordError) as e:
            notes.append(f"N = {n}: skipped ({e})")
            continue
        s = pairs.summarize(pair, seeds=range(a.seeds), beta=a.beta, h0=a.h0, sigma_L=a.sigma_L,
                          psnr_sigma=a.psnr_sigma, psnr_images=a.psnr_images, max_steps=a.max_steps)
        summaries.append(s)
        for k, frac in s.converged.items():
            if frac < 1:
                notes.append(f"N = {n}: {1 - frac:.0%} of the {k} chains did not reach σ_L = {a.sigma_L:g} (max steps or "
                             "diverged; their sample is the last good x̂)")
        print(f"N = {n}: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    source = "run folders (unpublished)" if a.runs else "published"
    print(f"Models: {source}. Same-noise samples, 32×32, β = {a.beta:g}, h₀ = {a.h0:g}, σ_L = {a.sigma_L:g}, "
          f"seeds 0–{a.seeds - 1}; "
          f"cosines of mean-subtracted images; PSNR in dB at σ = {a.psnr_sigma:g} ([0, 1] units) on at most "
          f"{a.psnr_images} training and held-out digits; 'emp.' is the empirical denoiser of subset A.\n")
    if summaries:
        print(pairs.markdown_table(summaries))
    else:
        print("No pair to tabulate.")
    if notes:
        print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
