"""The representation φ of bf-mnist against the issue #18 targets, measured in one run:

- cluster purity against the digit labels of k-means with k = 10 (5 k-means seeds: mean ± sd) on raw pixels
  and on φ of each block (raw and with standardized channels), 1000 training digits;
- robustness: the correlation across channels of φ(x + σz) with φ(x), per block, mean over held-out digits,
  and the most robust block;
- guided sampling (Algorithm 1 + the φ guidance step) towards 16 training digits vs unguided Algorithm 1 from
  the same seeds: median ‖φ(x̂) − φ*‖/‖φ*‖ and how often a sample's nearest held-out digit in pixels has the
  target's label (chance 0.1);
- timings: φ of 1000 digits (no cache), one guided sample (one chain).

    OMP_NUM_THREADS=1 python benchmarks/bench_representation.py [--model bf-mnist] [--threads 1]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import explorer
from explorer import sample
from explorer.guidance import STRENGTH, guided_sample, phi_distance
from explorer.representation import BOTTOM, block_names, features, robustness_curves
from explorer.representation_data import dataset, dataset_features
from explorer.representation_stats import kmeans, most_robust, nearest, purity, standardize

from bench_energy import best_time  # the benchmarks' one timer (run from benchmarks/: its folder is on sys.path)

SEEDS = range(5)


def purity_text(vectors: np.ndarray, classes: np.ndarray, k: int) -> str:
    p = [purity(kmeans(vectors, k, seed=s).labels, classes) for s in SEEDS]
    return f"{np.mean(p):.3f} ± {np.std(p):.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bf-mnist")
    p.add_argument("--count", type=int, default=1000, help="training digits clustered")
    p.add_argument("--sigma", type=float, default=0.5, help="σ_φ: the noise level φ is read at")
    p.add_argument("--draws", type=int, default=4, help="noise draws φ is averaged over")
    p.add_argument("--strength", type=float, default=STRENGTH, help="λ of the guidance step")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    handle = explorer.load(a.model)
    data = dataset("mnist:training", count=a.count)
    held = dataset("mnist:held-out")
    print(f"{a.model}, {a.count} training digits, φ at σ_φ = {a.sigma} averaged over {a.draws} draws, "
          f"{torch.get_num_threads()} thread(s)\n")

    print("| k-means, k = 10, on | purity (raw) | purity (standardized channels) |")
    print("|---|---|---|")
    print(f"| pixels (32×32) | {purity_text(data.images.reshape(len(data), -1), data.classes, 10)} | – |")
    for name in block_names(handle):
        phi = dataset_features(handle, data, name, a.sigma, a.draws, cache=False)
        print(f"| φ of {name} ({phi.shape[1]} channels) | {purity_text(phi, data.classes, 10)} | "
              f"{purity_text(standardize(phi), data.classes, 10)} |")
    clean = dataset_features(handle, data, BOTTOM, None, cache=False)
    print(f"| φ of {BOTTOM}, clean (σ_φ = 0) | {purity_text(clean, data.classes, 10)} | "
          f"{purity_text(standardize(clean), data.classes, 10)} |")

    sigmas = [0.05, 0.1, 0.2, 0.4, 0.8]
    curves = robustness_curves(handle, held.images[:200], sigmas)
    print("\n| block | " + " | ".join(f"corr at σ = {s}" for s in sigmas) + " | mean |")
    print("|---|" + "---|" * (len(sigmas) + 1))
    for name, c in curves.items():
        print(f"| {name} | " + " | ".join(f"{c[s]:.3f}" for s in sigmas) + f" | {np.mean(list(c.values())):.3f} |")
    print(f"\nmost robust block: {most_robust(curves)}")

    n = 16
    targets = torch.from_numpy(data.images[:n, None])
    target_phi = features(handle, targets, BOTTOM, a.sigma, 8)
    shape = (n, 1, 32, 32)
    kw = dict(beta=0.5, seed=0, snapshot_every=None)
    plain = sample(handle, shape, **kw).image
    guided = guided_sample(handle, target_phi, BOTTOM, shape, strength=a.strength, sigma=a.sigma, **kw).image
    pixels = held.images.reshape(len(held), -1)

    def agreement(images: torch.Tensor) -> float:
        labels = [held.classes[nearest(pixels, x.ravel(), 1)[0][0]] for x in images[:, 0].numpy()]
        return float(np.mean(np.array(labels) == data.classes[:n]))

    print(f"\n| {n} samples, seeds of one run, targets: training digits 0–{n - 1} | unguided | guided (λ = {a.strength}) |")
    print("|---|---|---|")
    d_plain = phi_distance(handle, plain, target_phi, BOTTOM, a.sigma, 8)
    d_guided = phi_distance(handle, guided, target_phi, BOTTOM, a.sigma, 8)
    print(f"| median ‖φ(x̂) − φ*‖/‖φ*‖ ({BOTTOM}, σ_φ = {a.sigma}) | {np.median(d_plain):.3f} | {np.median(d_guided):.3f} |")
    print(f"| nearest held-out digit has the target's label (chance 0.1) | {agreement(plain):.3f} | "
          f"{agreement(guided):.3f} |")

    t_features = best_time(lambda: dataset_features(handle, data, BOTTOM, a.sigma, a.draws, cache=False), 1)
    one = target_phi[:1]
    t_guided = best_time(lambda: guided_sample(handle, one, BOTTOM, (1, 1, 32, 32), strength=a.strength,
                                               sigma=a.sigma, **kw), 1)
    steps = int(guided_sample(handle, one, BOTTOM, (1, 1, 32, 32), strength=a.strength, sigma=a.sigma,
                              **kw).steps[0])
    print(f"\n| timing ({torch.get_num_threads()} thread(s)) | seconds | target |")
    print("|---|---|---|")
    print(f"| φ of {a.count} digits ({BOTTOM}, {a.draws} draws) | {t_features:.1f} | ≤ 30 |")
    print(f"| one guided sample ({steps} steps of Algorithm 1) | {t_guided:.1f} | ≤ 10 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
