"""Per-step cost of the sampler relative to one bare denoiser forward pass (target: ratio ≤ 1.10).

Run:  python benchmarks/bench_sampler.py [--size 64] [--repeats 60] [--threads N]

For a small bias-free DnCNN and UNet (random weights: only the timing matters) it alternates one
bare forward pass ``model(y)`` (under no_grad) with one ``Sampler.step()`` on a (1, 1, size, size)
batch, so both see the same machine load, and prints the median times and their ratio. On a busy
machine that ratio is noisy, so it also times the sampler's own work alone (a step with a denoiser
that costs nothing, x̂ = y/2) and prints (forward + that overhead) / forward.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from explorer import ModelHandle, Sampler
from explorer.denoisers import Denoiser, DnCNN, UNet


class Halving(Denoiser):
    """x̂ = y/2: a denoiser that costs nothing, to time the sampler's own arithmetic."""

    def forward(self, y: torch.Tensor, sigma=None) -> torch.Tensor:
        return 0.5 * y


def fresh_sampler(handle: ModelHandle, size: int, seed: int) -> Sampler:
    """A sampler that keeps running: no convergence threshold in reach, no divergence guard."""
    return Sampler(handle, (1, 1, size, size), beta=0.5, h0=0.01, sigma_L=1e-12, seed=seed,
                   max_steps=10**6, snapshot_every=None, divergence_factor=float("inf"))


def measure(model: torch.nn.Module, size: int, repeats: int) -> tuple[float, float, float]:
    """Median seconds of (bare forward, sampler step, sampler step with a cost-free denoiser), interleaved."""
    handle, free = ModelHandle(model, device="cpu"), ModelHandle(Halving(), device="cpu")
    y = torch.rand(1, 1, size, size)
    samplers = [fresh_sampler(handle, size, 0), fresh_sampler(free, size, 0)]
    times: list[list[float]] = [[], [], []]
    with torch.no_grad():
        for i in range(repeats + 3):  # the first 3 are warm-up
            t0 = time.perf_counter()
            handle.model(y)
            elapsed = [time.perf_counter() - t0]
            for k, sampler in enumerate(samplers):
                if sampler.done:
                    samplers[k] = sampler = fresh_sampler(sampler.handle, size, i + 1)
                t0 = time.perf_counter()
                sampler.step()
                elapsed.append(time.perf_counter() - t0)
            if i >= 3:
                for record, value in zip(times, elapsed):
                    record.append(value)
    fwd, stp, overhead = (statistics.median(t) for t in times)
    return fwd, stp, overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "DnCNN(depth=8, width=32)": DnCNN(depth=8, width=32, bias_free=True),
        "UNet(width=16, levels=3)": UNet(width=16, levels=3, bias_free=True),
    }
    print(f"{args.size}×{args.size}, batch 1, CPU, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats")
    for name, model in models.items():
        fwd, stp, overhead = measure(model, args.size, args.repeats)
        print(f"{name:26s} forward {fwd * 1e3:7.2f} ms   step {stp * 1e3:7.2f} ms   ratio {stp / fwd:.3f}   "
              f"sampler overhead {overhead * 1e3:.3f} ms → (forward + overhead) / forward {(fwd + overhead) / fwd:.3f}")


if __name__ == "__main__":
    main()
