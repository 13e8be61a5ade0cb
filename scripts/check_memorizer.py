"""How exactly a published generalization model reproduces its own training digits (issue #16).

For ``gen-mnist-N{N}-{A|B}``: the RMS distance from x̂(x) to x at σ = 0 in eval mode (the network that
is evaluated and sampled) and in train mode (normalized by the batch's own statistics, on a training-like
batch of noisy copies), and the drift after applying x̂ 30 times to a training digit. A memorizer that
Algorithm 1 can sample is a near fixed point of its own digits in eval mode.
Usage: OMP_NUM_THREADS=1 python scripts/check_memorizer.py gen-mnist-N1-A
"""
from __future__ import annotations

import copy
import sys

import torch

import explorer
from explorer.generalization_pairs import card_subset
from explorer.data.registry import mnist_training_digits
from explorer.train import sample_sigmas


def main(name: str) -> None:
    torch.set_num_threads(1)
    handle = explorer.load(name, device="cpu")
    indices = card_subset(handle.card)
    x = torch.tensor(mnist_training_digits()[indices[:8]])[:, None].float()  # the training split is digits 0–9499
    model = handle.model.eval()
    gen = torch.Generator().manual_seed(1)
    batch = x.repeat_interleave(32 // len(x) + 1, 0)[:32]
    sigma = sample_sigmas(32, 0, 1, "sqrt", gen).view(-1, 1, 1, 1)
    sigma[: len(x)] = 0.0  # the first rows are the clean digits themselves
    trained = copy.deepcopy(model).train()
    with torch.no_grad():
        eval_rms = (model(x) - x).pow(2).mean().sqrt().item()
        train_rms = (trained(batch + sigma * torch.randn(batch.shape, generator=gen))[: len(x)] - x).pow(2).mean().sqrt().item()
        y = x.clone()
        for _ in range(30):
            y = model(y)
        drift = (y - x).pow(2).mean().sqrt().item()
    print(f"{name}: RMS ‖x̂(x) − x‖ at σ = 0, eval mode {eval_rms:.4f}, train mode {train_rms:.4f}; "
          f"after 30 applications {drift:.4f} (over {len(x)} training digits)")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["gen-mnist-N1-A"]:
        main(arg)
