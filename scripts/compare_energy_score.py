"""Denoising PSNR of an energy model against its score-only twin, on held-out images.

The energy model denoises by x̂ = y − t∇_yU(y, t) (autograd through U = ½⟨v, s_θ⟩ + d·b_θ); the
score-only twin (``--objective score``, :class:`explorer.energy.ScoreUNet`) is the same network read
directly as the score, x̂ = y − t·s_θ. Both are non-blind (told σ). Protocol of ``explorer.evaluate``:
one noise draw per image and σ (seed 0), output clamped to [0, 1], PSNR and SSIM averaged over the
images. ``--data`` is what ``python -m explorer.energies`` takes: ``mnist:held-out`` (the registry's 500
held-out MNIST digits, :func:`explorer.data.registry.mnist_held_out_digits`, each once, padded to 32×32)
or ``patches:DIR`` (``--per-image`` evenly spread ``--patch``-pixel tiles of each image of DIR, e.g.
Set68, which neither natural-image model trained on).

    python scripts/compare_energy_score.py energy-mnist score-mnist --sigma 0.05,0.1,0.2,0.4 --write-card
    python scripts/compare_energy_score.py energy-natural-gray score-natural-gray --data patches:../shared/data/bsd/Set68 --write-card

``--write-card`` stores the table in both model cards as ``metrics["mnist-heldout"]`` (MNIST) or
``metrics["denoising patches:DIR"]``.
"""
from __future__ import annotations

import argparse
import sys

import explorer
from explorer.energies_sources import items_for
from explorer.evaluate import evaluate_models, format_table, relabel, write_card_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="catalog names, e.g. energy-mnist score-mnist")
    p.add_argument("--sigma", default="0.05,0.1,0.2,0.4", help="noise levels in [0,1] units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="mnist:held-out", help="mnist:held-out or patches:DIR")
    p.add_argument("--patch", type=int, default=32, help="patches: tile size")
    p.add_argument("--per-image", type=int, default=16, help="patches: tiles per image")
    p.add_argument("--batch", type=int, default=64, help="images of one shape denoised in one pass (the table is the same)")
    p.add_argument("--write-card", action="store_true")
    args = p.parse_args()
    sigmas = [float(s) for s in args.sigma.split(",")]
    items = items_for(args.data, gray=True, patch=args.patch, per_image=args.per_image)
    images = [item.load() for item in items]
    what = (f"the {len(images)} held-out MNIST digits" if args.data.startswith("mnist") else
            f"{len(images)} {args.patch}×{args.patch} patches of {args.data.split(':', 1)[-1]} ({args.per_image} per image)")
    handles = [explorer.load(name) for name in args.models]
    table = relabel(evaluate_models(handles, images, sigmas, seed=args.seed, batch=args.batch), 1.0)
    print(format_table(table, f"PSNR (dB) / SSIM on {what}, σ in [0,1] units"))
    if args.write_card:
        key = "mnist-heldout" if args.data == "mnist:held-out" else f"denoising {args.data}"
        for h in handles:
            entry = {"sigma_scale": 1.0, "seed": args.seed, "images": len(images), "data": what,
                     **({} if args.data.startswith("mnist") else {"patch": args.patch, "per_image": args.per_image}),
                     "results": table[h.name],
                     "compared_with": [n for n in args.models if n != h.name],
                     "command": "python scripts/compare_energy_score.py " + " ".join(sys.argv[1:])}
            write_card_metrics(h.card["_card_path"], key, entry)


if __name__ == "__main__":
    main()
