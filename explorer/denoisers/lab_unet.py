"""The two UNets of the LCV lab's published checkpoints, reproduced layer for layer.

``LabUNet`` is the small UNet of Mohan*, Kadkhodaie* et al. (ICLR 2020, repository
LabForComputationalVision/bias_free_denoising, ``models/unet.py``)::

    y  → zero-pad right/bottom to even H, W
    s  = relu(c2(relu(c1(y))))                       c1: 5×5, 1→32;  c2: 3×3, 32→32
    h  = relu(c6(relu(c5(relu(c4(relu(c3(s))))))))   c3: 3×3 stride 2; c5, c6: dilation 2, 4
    h  = relu(c7(h))                                 c7: 4×4 transposed conv, stride 2 (back to H×W)
    o  = c9(relu(c8([h, s])))                        c8: 3×3, 96→32;  c9: 5×5, 32→1, never a bias
    x̂  = o            (``residual=False``)   or   x̂ = y − o   (``residual=True``), cropped to H×W

``LabUNet2024`` is the bias-free UNet of Kadkhodaie et al., "Generalization in diffusion models
arises from geometry-adaptive harmonic representations" (ICLR 2024, repository
LabForComputationalVision/memorization_generalization_in_diffusion_models, ``code/network.py``):
``num_blocks`` encoder blocks (convs + bias-free norms + ReLU, then average pooling by 2), a middle
block doubling the width, and decoder blocks (2×2 transposed conv up, concatenation with the
encoder output, convs). It predicts the residual: x̂(y) = y − net(y). Its bias-free norm in eval
mode is z = γ · x / s with stored ``running_sd`` s — exactly :class:`BFNorm2d`.

The state-dict layouts follow the originals (conv1..conv9; ``encoder.b.i`` / ``mid_block.i`` /
``upsample.b`` / ``decoder.b.i`` with the original Sequential indices) so the importer in
:mod:`explorer.convert` maps keys one to one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Denoiser, ResidualNetwork, SigmaLike
from .layers import BFNorm2d


class LabUNet(Denoiser):
    """The lab's 2020 UNet (blind); bias-free when ``bias=False`` (every conv bias removed)."""

    blind = True
    concurrent_forward = True

    def __init__(self, bias: bool = False, residual: bool = False, channels: int = 1):
        super().__init__()
        self.channels = channels
        self.bias_free = not bias
        self.residual_connection = residual
        self.config = dict(bias=bias, residual=residual, channels=channels)
        self.conv1 = nn.Conv2d(channels, 32, 5, padding=2, bias=bias)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=bias)
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=bias)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=bias)
        self.conv5 = nn.Conv2d(64, 64, 3, dilation=2, padding=2, bias=bias)
        self.conv6 = nn.Conv2d(64, 64, 3, dilation=4, padding=4, bias=bias)
        self.conv7 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1, bias=bias)
        self.conv8 = nn.Conv2d(96, 32, 3, padding=1, bias=bias)
        self.conv9 = nn.Conv2d(32, channels, 5, padding=2, bias=False)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        h, w = y.shape[-2:]
        x = F.pad(y, (0, w % 2, 0, h % 2))
        saved = F.relu(self.conv2(F.relu(self.conv1(x))))
        out = saved
        for conv in (self.conv3, self.conv4, self.conv5, self.conv6, self.conv7):
            out = F.relu(conv(out))
        out = self.conv9(F.relu(self.conv8(torch.cat([out, saved], dim=1))))
        if self.residual_connection:
            out = x - out
        return out[..., :h, :w]


def _conv(c_in: int, c_out: int, k: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=(k - 1) // 2, bias=bias)


class LabUNet2024(ResidualNetwork):
    """The lab's 2024 bias-free UNet (blind, predicts the residual).

    Block b works at width ``num_kernels·2^b``; the middle block at ``num_kernels·2^num_blocks``.
    Images whose sides are not multiples of 2^num_blocks are zero-padded right/bottom and the
    output cropped (the original requires such sizes; for them the two agree exactly, and zero
    padding keeps the network positively homogeneous).
    """

    blind = True

    def __init__(
        self,
        channels: int = 1,
        num_kernels: int = 64,
        kernel_size: int = 3,
        num_blocks: int = 3,
        num_enc_conv: int = 2,
        num_mid_conv: int = 2,
        num_dec_conv: int = 2,
        pool_window: int = 2,
        bias: bool = False,
    ):
        super().__init__()
        if num_blocks < 1 or min(num_enc_conv, num_mid_conv) < 1 or num_dec_conv < 2:
            raise ValueError("LabUNet2024 needs num_blocks >= 1, num_enc_conv, num_mid_conv >= 1 and num_dec_conv >= 2")
        self.channels = channels
        self.bias_free = not bias
        self.num_blocks = num_blocks
        self.pool_window = pool_window
        self.config = dict(
            channels=channels, num_kernels=num_kernels, kernel_size=kernel_size, num_blocks=num_blocks,
            num_enc_conv=num_enc_conv, num_mid_conv=num_mid_conv, num_dec_conv=num_dec_conv,
            pool_window=pool_window, bias=bias,
        )
        k, n = kernel_size, num_kernels
        self.encoder = nn.ModuleDict()
        for b in range(num_blocks):
            layers: list[nn.Module] = []
            for i in range(num_enc_conv):
                c_in = (channels if b == 0 else n * 2 ** (b - 1)) if i == 0 else n * 2**b
                layers.append(_conv(c_in, n * 2**b, k, bias))
                if not (b == 0 and i == 0):  # the very first conv is followed by ReLU only
                    layers.append(BFNorm2d(n * 2**b))
                layers.append(nn.ReLU())
            self.encoder[str(b)] = nn.Sequential(*layers)
        width = n * 2**num_blocks
        mid: list[nn.Module] = []
        for i in range(num_mid_conv):
            mid += [_conv(width // 2 if i == 0 else width, width, k, bias), BFNorm2d(width), nn.ReLU()]
        self.mid_block = nn.Sequential(*mid)
        self.upsample = nn.ModuleDict()
        self.decoder = nn.ModuleDict()
        for b in range(num_blocks - 1, -1, -1):
            c = n * 2**b
            self.upsample[str(b)] = nn.ConvTranspose2d(2 * c, c, kernel_size=2, stride=2, bias=False)
            convs = num_dec_conv - 1 if b == 0 else num_dec_conv
            dec: list[nn.Module] = []
            for i in range(convs):
                dec += [_conv(2 * c, c, k, False) if i == 0 else _conv(c, c, k, bias), BFNorm2d(c), nn.ReLU()]
            if b == 0:
                dec.append(_conv(c, channels, k, False))
            self.decoder[str(b)] = nn.Sequential(*dec)

    def predict_residual(self, y: Tensor) -> Tensor:
        h, w = y.shape[-2:]
        m = 2**self.num_blocks
        x = F.pad(y, (0, -w % m, 0, -h % m))
        skips = []
        for b in range(self.num_blocks):
            x = self.encoder[str(b)](x)
            skips.append(x)
            x = F.avg_pool2d(x, self.pool_window, stride=2, padding=(self.pool_window - 1) // 2)
        x = self.mid_block(x)
        for b in range(self.num_blocks - 1, -1, -1):
            x = self.decoder[str(b)](torch.cat([self.upsample[str(b)](x), skips[b]], dim=1))
        return x[..., :h, :w]
