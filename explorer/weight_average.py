"""An exponential moving average of a network's weights (Polyak averaging), the weights a run ships.

After each optimizer step n = 1, 2, … since the average started, every parameter θ updates its average θ̄:

    θ̄ ← d_n θ̄ + (1 − d_n) θ,     d_n = min(d, (1 + n)/(10 + n)),

so the first updates follow the weights closely (θ̄ starts at the weights of the step it starts at) and
later ones average over about 1/(1 − d) steps. Only parameters are averaged: buffers (the norm layers'
running statistics) are the network's own; a trainer re-averages them for the averaged weights at the end.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def average_decay(decay: float, updates: int) -> float:
    """d_n = min(d, (1 + n)/(10 + n)) for the n-th update (n ≥ 1)."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """θ̄ of a module's parameters; ``updates`` counts the steps averaged so far."""

    def __init__(self, module: torch.nn.Module, decay: float, updates: int = 0):
        if not 0 < decay < 1:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = updates
        self.tensors = {name: p.detach().clone() for name, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """θ̄ ← d_n θ̄ + (1 − d_n) θ after one more step."""
        self.updates += 1
        d = average_decay(self.decay, self.updates)
        for name, p in module.named_parameters():
            self.tensors[name].mul_(d).add_(p.detach(), alpha=1 - d)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Set the module's parameters to θ̄."""
        _load(module, self.tensors)

    @contextmanager
    def applied(self, module: torch.nn.Module) -> Iterator[None]:
        """The module holds θ̄ inside the block and its own weights again after it."""
        own = {name: p.detach().clone() for name, p in module.named_parameters()}
        self.copy_to(module)
        try:
            yield
        finally:
            _load(module, own)


@torch.no_grad()
def _load(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    for name, p in module.named_parameters():
        p.copy_(tensors[name])
