"""Denoising PSNR of an energy model against its score-only twin, on the held-out MNIST digits.

The energy model denoises by x̂ = y − t∇_yU(y, t) (autograd through U = ½⟨v, s_θ⟩ + d·b_θ); the
score-only twin (``--objective score``, :class:`explorer.energy.ScoreUNet`) is the same network read
directly as the score, x̂ = y − t·s_θ. Both are non-blind (told σ). Protocol of ``explorer.evaluate``:
one noise draw per image and σ (seed 0), output clamped to [0, 1], PSNR and SSIM averaged over the
images: the registry's 500 held-out MNIST digits (:func:`explorer.data.registry.mnist_held_out_digits`,
the last 500, each once, padded to 32×32), which neither model trained on.

    python scripts/compare_energy_score.py energy-mnist score-mnist --sigma 0.05,0.1,0.2,0.4 --write-card

``--write-card`` stores the table in both model cards as ``metrics["mnist-heldout"]``.
"""
from __future__ import annotations

import argparse

import explorer
from explorer.data.registry import mnist_held_out_digits
from explorer.evaluate import evaluate_models, format_table, relabel, write_card_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="catalog names, e.g. energy-mnist score-mnist")
    p.add_argument("--sigma", default="0.05,0.1,0.2,0.4", help="noise levels in [0,1] units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-card", action="store_true")
    args = p.parse_args()
    sigmas = [float(s) for s in args.sigma.split(",")]
    images = list(mnist_held_out_digits())
    handles = [explorer.load(name) for name in args.models]
    table = relabel(evaluate_models(handles, images, sigmas, seed=args.seed), 1.0)
    print(format_table(table, f"PSNR (dB) / SSIM on the {len(images)} held-out MNIST digits, σ in [0,1] units"))
    if args.write_card:
        for h in handles:
            entry = {"sigma_scale": 1.0, "seed": args.seed, "images": len(images), "results": table[h.name],
                     "compared_with": [n for n in args.models if n != h.name]}
            write_card_metrics(h.card["_card_path"], "mnist-heldout", entry)


if __name__ == "__main__":
    main()
