"""Building blocks shared by the networks: the bias-free norm and conv helpers."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class BFNorm2d(nn.Module):
    """Bias-free batch norm (Mohan*, Kadkhodaie* et al., ICLR 2020).

    z_c = γ_c · x_c / s_c, with s_c the standard deviation of channel c: the batch statistic while
    training (tracked into ``running_sd`` by an exponential average), ``running_sd`` in eval mode.
    No mean is ever subtracted and nothing is added, so in eval mode the layer is linear and
    positively homogeneous: BFNorm(αx) = α BFNorm(x).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_sd", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            sd = torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + self.eps)
            with torch.no_grad():
                self.running_sd.lerp_(sd.detach(), self.momentum)
        else:
            sd = self.running_sd
        return x * (self.weight / sd).view(1, -1, 1, 1)


def conv3x3(c_in: int, c_out: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)


def norm(channels: int, bias_free: bool) -> nn.Module:
    """BFNorm2d for bias-free networks, ordinary BatchNorm2d (with its additive β) otherwise."""
    return BFNorm2d(channels) if bias_free else nn.BatchNorm2d(channels)
