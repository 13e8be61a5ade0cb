"""Cross-check of a trained energy model: −log p(x) from one forward pass against the probability-flow ODE.

One pass: NLL(x) = U(x, t_min) + log Z. ODE: transport x from t_min to T = t_max along
dy/dt = ½∇_yU(y, t) and add the Gaussian −log N(y_T; m, T·I) minus ∫ (t/2) ΔU dτ, the Laplacian by
Hutchinson's estimator (:func:`explorer.energy.nll_ode`), which uses only the model's space score. The
two agree when the energy's time dependence (learned by the time-score term of dual score matching) is
consistent with its space score. Images: the first ``--images`` of ``--data``, ``mnist:held-out``
(the registry's held-out MNIST digits, :func:`explorer.data.registry.mnist_held_out_digits`, never
trained on) or ``patches:DIR`` (tiles of DIR as ``python -m explorer.energies`` lists them, e.g. Set68
for the natural-image model), plus one draw of U(0, 2^-8) dequantization noise as in training; both
estimates are of the continuous density at that dequantized point.

The gap is reported in bits/dim (|one pass − ODE| / (d ln 2)), the unit of the model's likelihood; a
percentage of the NLL in nats would be a percentage of a large negative number and says nothing.
For the padded MNIST digits d = 1024 (32×32, of which 240 values are always 0).

    python scripts/check_nll_ode.py energy-mnist --images 4 --write-card
    python scripts/check_nll_ode.py energy-natural-gray --data patches:../shared/data/bsd/Set68 --images 4 --write-card
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

import explorer
from explorer.energies_sources import items_for
from explorer.energy import bits_per_dim, nll_ode
from explorer.evaluate import write_card_metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an energy model, e.g. energy-mnist")
    p.add_argument("--images", type=int, default=4, help="the first N images of --data")
    p.add_argument("--data", default="mnist:held-out", help="mnist:held-out or patches:DIR")
    p.add_argument("--patch", type=int, default=32, help="patches: tile size")
    p.add_argument("--per-image", type=int, default=16, help="patches: tiles per image")
    p.add_argument("--steps", type=int, default=50, help="RK4 steps in log t")
    p.add_argument("--probes", type=int, default=8, help="Hutchinson probes per image and evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-card", action="store_true", help='store the result as metrics["ode_cross_check"]')
    return p.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Both estimates for the first ``--images`` images: the card's ``ode_cross_check`` entry (without its
    command), plus the seconds each took."""
    handle = explorer.load(args.model, device="cpu")
    gen = torch.Generator().manual_seed(args.seed)
    items = items_for(args.data, gray=True, patch=args.patch, per_image=args.per_image)[: args.images]
    clean = torch.stack([torch.as_tensor(item.load(), dtype=torch.float32) for item in items])[:, None]
    x = clean + torch.rand(clean.shape, generator=gen) / 256
    mnist = args.data.startswith("mnist")
    what = "held-out digits" if mnist else f"{args.patch}×{args.patch} patches of {args.data.split(':', 1)[-1]} ({args.per_image} per image)"
    d = x[0].numel()
    start = time.perf_counter()
    one = handle.nll(x).double()
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    with handle.lock:
        ode = nll_ode(handle.model, x, steps=args.steps, probes=args.probes, generator=gen).double()
    ode_s = time.perf_counter() - start
    one_b, ode_b = bits_per_dim(one, d), bits_per_dim(ode, d)
    gap = (one_b - ode_b).abs()
    return {"name": handle.name, "card_path": handle.card["_card_path"], "what": what, "seconds": (one_s, ode_s),
            "at_training_step": (handle.card.get("training") or {}).get("steps"), "images": len(x),
            "data": (f"the first {len(x)} held-out MNIST digits (registry)" if mnist else f"the first {len(x)} {what}")
            + f", + one U(0, 2^-8) draw (seed {args.seed})",
            "dims": d, "rk4_steps": args.steps, "hutchinson_probes": args.probes,
            "one_pass_nats": [round(v, 2) for v in one.tolist()], "ode_nats": [round(v, 2) for v in ode.tolist()],
            "one_pass_bits_per_dim": [round(v, 4) for v in one_b.tolist()],
            "ode_bits_per_dim": [round(v, 4) for v in ode_b.tolist()],
            "gap_bits_per_dim": [round(v, 4) for v in gap.tolist()],
            "max_gap_bits_per_dim": round(gap.max().item(), 4), "mean_gap_bits_per_dim": round(gap.mean().item(), 4),
            "units": ("continuous density at x + u per value of the padded 32×32 digit (d = 1024, 240 always 0)"
                      if mnist else f"continuous density at x + u per pixel value (d = {d})")}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    r = measure(args)
    one_s, ode_s = r.pop("seconds")
    name, card_path, what = r.pop("name"), r.pop("card_path"), r.pop("what")
    print(f"{name}: −log p(x + u) of {r['images']} {what} (d = {r['dims']}; one pass {one_s:.2f} s, ODE {ode_s:.1f} s)")
    print("  continuous density at the dequantized image, nats per image and bits/dim; the gap in bits/dim")
    for a, b, ab, bb, g in zip(r["one_pass_nats"], r["ode_nats"], r["one_pass_bits_per_dim"], r["ode_bits_per_dim"],
                               r["gap_bits_per_dim"]):
        print(f"  one pass {a:9.1f} nats = {ab:7.4f} bits/dim   ODE {b:9.1f} nats = {bb:7.4f} bits/dim   "
              f"gap {g:.4f} bits/dim ({100 * g / (ab + 8):.1f} % of the 8-bit {ab + 8:.3f})")
    print(f"largest gap {r['max_gap_bits_per_dim']:.4f} bits/dim, mean {r['mean_gap_bits_per_dim']:.4f} bits/dim")
    if args.write_card:
        command = "python scripts/check_nll_ode.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_card_metrics(card_path, "ode_cross_check", {"command": command, **r})


if __name__ == "__main__":
    main()
