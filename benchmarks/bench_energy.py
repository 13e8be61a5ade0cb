"""Throughput of energy evaluation for 32×32 gray images.

Prints (1) energies/second of U(x, t_min) (no gradient: the NLL needs U only) as a ratio to the bare
forward pass of the network N_θ on the same batch (target ≥ 0.8), and (2) how much faster the one-pass
NLL is than the probability-flow ODE estimate (RK4, Hutchinson probes).

    python benchmarks/bench_energy.py [--model energy-mnist] [--batch 64] [--repeats 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

from explorer.energy import EnergyUNet, nll_ode


def best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` runs (seconds), after one warm-up: the least disturbed by other load."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="", help="a catalog energy model (default: a fresh EnergyUNet width 16, 3 levels)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--ode-images", type=int, default=2)
    p.add_argument("--ode-steps", type=int, default=50)
    p.add_argument("--probes", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        from explorer.checkpoints import load

        model = load(args.model, device="cpu").model
    else:
        torch.manual_seed(0)
        model = EnergyUNet(channels=1, width=16, levels=3)
        model.log_z.fill_(0.0)
    model.eval()
    x = torch.rand(args.batch, model.channels, 32, 32)
    tau = torch.full((args.batch,), float(model.t_min)).log()
    with torch.no_grad():
        v = x - model.data_mean.view(1, -1, 1, 1)
        t_net = best_time(lambda: model.network(v, model.embedding(tau)), args.repeats)
        t_energy = best_time(lambda: model.nll(x), args.repeats)
    print(f"EnergyUNet {sum(q.numel() for q in model.parameters())} parameters, batch {args.batch} of 32×32, {args.threads} threads")
    print(f"  bare network forward: {args.batch / t_net:8.1f} images/s")
    print(f"  energy / NLL:         {args.batch / t_energy:8.1f} images/s   ratio {t_net / t_energy:.3f} (target ≥ 0.8)")
    few = x[: args.ode_images]
    t_one = best_time(lambda: model.nll(few), 3)
    t_ode = best_time(lambda: nll_ode(model, few, steps=args.ode_steps, probes=args.probes), 1)
    print(f"  {args.ode_images} images: one pass {t_one * 1e3:.1f} ms, probability-flow ODE ({args.ode_steps} RK4 steps, "
          f"{args.probes} probe) {t_ode:.2f} s → one pass is {t_ode / t_one:.0f}× faster")


if __name__ == "__main__":
    main()
