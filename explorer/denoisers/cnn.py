"""DnCNN-style denoisers: the bias-free CNN and its biased twin (Zhang et al. 2017; Mohan et al. 2020).

Architecture: conv → ReLU → (depth − 2) × [conv → norm → ReLU] → conv, predicting the residual,
so x̂(y) = y − net(y). With ``bias_free=True`` no layer adds a constant (convolutions have no bias,
norms are :class:`BFNorm2d`), hence net(αy) = α net(y) for α > 0 and x̂(y) = A_y y.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ResidualNetwork
from .layers import conv3x3, norm


class DnCNN(ResidualNetwork):
    """DnCNN with ``depth`` convolutions of ``width`` channels; blind (no σ input)."""

    blind = True

    def __init__(self, channels: int = 1, depth: int = 20, width: int = 64, bias_free: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError("DnCNN needs depth >= 2")
        self.channels = channels
        self.bias_free = bias_free
        self.config = dict(channels=channels, depth=depth, width=width, bias_free=bias_free)
        bias = not bias_free
        self.convs = nn.ModuleList(
            [conv3x3(channels, width, bias)]
            + [conv3x3(width, width, bias) for _ in range(depth - 2)]
            + [conv3x3(width, channels, bias)]
        )
        self.norms = nn.ModuleList([norm(width, bias_free) for _ in range(depth - 2)])

    def predict_residual(self, y: Tensor) -> Tensor:
        h = F.relu(self.convs[0](y))
        for conv, nrm in zip(self.convs[1:-1], self.norms):
            h = F.relu(nrm(conv(h)))
        return self.convs[-1](h)
