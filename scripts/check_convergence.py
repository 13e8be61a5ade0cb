"""Does Algorithm 1 converge on a model? Counts the chains that reach σ_L, diverge or hit the step limit.

    python scripts/check_convergence.py bf-mnist --size 32 --chains 64 --betas 0.1,0.5 --sigma-L 0.01 [--write-card]

A good blind denoiser makes every chain of Algorithm 1 (Kadkhodaie & Simoncelli 2021) converge: σ_t
falls below σ_L. A chain 'diverges' when σ_t grows ``divergence_factor`` times above its schedule
(the denoiser fails at some noise level) and stops at 'max_steps' when σ_t stalls. All chains of one
β run as one batch from ``--seed`` (h₀ = 0.01, σ₀ = 1 by default, the sampler tool's defaults).
With ``--write-card`` the counts go into the card as ``metrics["convergence_<size>"]`` with this command.
"""
from __future__ import annotations

import argparse
import sys
import time

import explorer
from explorer.checkpoints import resolve
from explorer.evaluate import write_card_metrics


def convergence(handle, size: int, chains: int, beta: float, sigma_L: float, h0: float = 0.01, seed: int = 0,
                max_steps: int = 3000) -> dict:
    """{status: count} of ``chains`` chains of Algorithm 1 at one β, their median steps and the seconds taken."""
    start = time.perf_counter()
    result = explorer.sample(handle, shape=(chains, handle.channels, size, size), beta=beta, h0=h0,
                             sigma_L=sigma_L, seed=seed, max_steps=max_steps, snapshot_every=None)
    counts = {s: result.status.count(s) for s in ("converged", "diverged", "max_steps")}
    steps = sorted(int(n) for n in result.steps)
    return {"beta": beta, **counts, "median_steps": steps[len(steps) // 2], "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--chains", type=int, default=64)
    p.add_argument("--betas", type=lambda s: [float(v) for v in s.split(",")], default=[0.1, 0.5])
    p.add_argument("--sigma-L", type=float, default=0.01)
    p.add_argument("--h0", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--write-card", action="store_true")
    a = p.parse_args(argv)
    handle = explorer.load(a.model)
    rows = [convergence(handle, a.size, a.chains, b, a.sigma_L, a.h0, a.seed, a.max_steps) for b in a.betas]
    print(f"{a.model}: Algorithm 1, {a.chains} chains of {a.size}×{a.size}, h₀ = {a.h0:g}, σ₀ = 1, σ_L = {a.sigma_L:g}, seed {a.seed}")
    for r in rows:
        print(f"β = {r['beta']:g}: {r['converged']} converged, {r['diverged']} diverged, {r['max_steps']} at the step limit; "
              f"median {r['median_steps']} steps, {r['seconds']} s")
    if a.write_card:
        entry = {"chains": a.chains, "size": a.size, "h0": a.h0, "sigma0": 1.0, "sigma_L": a.sigma_L, "seed": a.seed,
                 "max_steps": a.max_steps, "results": rows,
                 "command": "python scripts/check_convergence.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        write_card_metrics(resolve(a.model), f"convergence_{a.size}", entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
