"""Cross-check of a trained energy model: −log p(x) from one forward pass against the probability-flow ODE.

One pass: NLL(x) = U(x, t_min) + log Z. ODE: transport x from t_min to T = t_max along
dy/dt = ½∇_yU(y, t) and add the Gaussian −log N(y_T; m, T·I) minus ∫ (t/2) ΔU dτ, the Laplacian by
Hutchinson's estimator (:func:`explorer.energy.nll_ode`), which uses only the model's space score. The
two agree when the energy's time dependence (learned by the time-score term of dual score matching) is
consistent with its space score. Images: the last ``--heldout`` MNIST digits (not trained on), plus
U(0, 2^-8) dequantization noise as in training.

    python scripts/check_nll_ode.py energy-mnist --images 4 --write-card
"""
from __future__ import annotations

import argparse
import time

import torch

import explorer
from explorer.data import mnist
from explorer.energy import nll_ode
from explorer.evaluate import write_card_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an energy model, e.g. energy-mnist")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--heldout", type=int, default=500)
    p.add_argument("--steps", type=int, default=50, help="RK4 steps in log t")
    p.add_argument("--probes", type=int, default=8, help="Hutchinson probes per image and evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-card", action="store_true", help='store the result as metrics["ode_cross_check"]')
    args = p.parse_args()
    handle = explorer.load(args.model, device="cpu")
    gen = torch.Generator().manual_seed(args.seed)
    digits = torch.from_numpy(mnist.load_mnist(pad_to=32)[-args.heldout:][: args.images].copy())[:, None]
    x = digits + torch.rand(digits.shape, generator=gen) / 256
    start = time.perf_counter()
    one = handle.nll(x).double()
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    with handle.lock:
        ode = nll_ode(handle.model, x, steps=args.steps, probes=args.probes, generator=gen).double()
    ode_s = time.perf_counter() - start
    rel = ((one - ode) / ode.abs()).abs()
    print(f"{args.model}: −log p(x) in nats for {len(x)} held-out digits (one pass {one_s:.2f} s, ODE {ode_s:.1f} s)")
    for a, b, r in zip(one.tolist(), ode.tolist(), rel.tolist()):
        print(f"  one pass {a:10.1f}   ODE {b:10.1f}   relative difference {100 * r:5.2f} %")
    print(f"largest relative difference {100 * rel.max().item():.2f} %  [{'PASS' if rel.max() < 0.02 else 'FAIL'} < 2 %]")
    if args.write_card:
        write_card_metrics(handle.card["_card_path"], "ode_cross_check", {
            "at_training_step": (handle.card.get("training") or {}).get("steps"), "images": len(x), "rk4_steps": args.steps, "hutchinson_probes": args.probes,
            "one_pass_nats": [round(v, 2) for v in one.tolist()], "ode_nats": [round(v, 2) for v in ode.tolist()],
            "max_relative_difference": round(rel.max().item(), 5)})


if __name__ == "__main__":
    main()
