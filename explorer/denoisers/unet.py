"""UNet denoisers, bias-free and biased.

Encoder levels of [conv → norm → ReLU] × ``convs_per_block``; 2×2 average pooling down; bilinear
upsampling (a fixed linear map) up; skip connections by concatenation; a final 1×1 ... 3×3 conv to
the residual, x̂(y) = y − net(y). Average pooling, bilinear interpolation, concatenation and ReLU are
all positively homogeneous, so with bias-free convolutions and :class:`BFNorm2d` the whole network
is bias-free. Image sides must be divisible by 2^(levels−1); :meth:`forward` reflect-pads otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ResidualNetwork
from .layers import conv3x3, norm


class _Block(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, n_convs: int, bias_free: bool):
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [conv3x3(c_in if i == 0 else c_out, c_out, not bias_free), norm(c_out, bias_free), nn.ReLU()]
        super().__init__(*layers)


class UNet(ResidualNetwork):
    """UNet with ``levels`` resolutions, widths ``width · 2^level``; blind (no σ input)."""

    blind = True

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        levels: int = 3,
        convs_per_block: int = 2,
        bias_free: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.bias_free = bias_free
        self.levels = levels
        self.config = dict(
            channels=channels, width=width, levels=levels, convs_per_block=convs_per_block, bias_free=bias_free
        )
        widths = [width * 2**i for i in range(levels)]
        self.encoders = nn.ModuleList()
        c_in = channels
        for w in widths:
            self.encoders.append(_Block(c_in, w, convs_per_block, bias_free))
            c_in = w
        self.decoders = nn.ModuleList(
            _Block(widths[i + 1] + widths[i], widths[i], convs_per_block, bias_free) for i in reversed(range(levels - 1))
        )
        self.head = conv3x3(widths[0], channels, not bias_free)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this for the network itself (forward pads otherwise)."""
        return 2 ** (self.levels - 1)

    @property
    def min_size(self) -> int:
        """Reflect-padding to a multiple needs at least ``multiple`` pixels per side."""
        return self.multiple

    def predict_residual(self, y: Tensor) -> Tensor:
        h, w = y.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(y, (0, pw, 0, ph), mode="reflect") if (ph or pw) else y
        skips = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for dec, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)[..., :h, :w]
