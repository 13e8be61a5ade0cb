"""A map of −log p over one photograph: the NLL of every size×size patch at a stride, in one batched pass.

Patch (i, j) starts at (tops[i], lefts[j]) (:func:`explorer.data.patches.extract_patches`, never past the
border); its value is −log p of the patch alone under the model, in the quantity asked for
(:func:`explorer.energies.energies_and_spread`: the continuous density, or the b-bit bound with draws
seeded by each patch's content, so a patch gets the same value in the map as on its own). Drawn as a heat
map, cell (i, j) is the stride×stride square centred on its patch's centre, so the cells tile the region
[left₀ + (size − stride)/2, left_last + (size + stride)/2] × (the same in rows) at the stride's pitch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data.patches import extract_patches
from .energies_cache import Target, _module
from .energies_compute import energies_and_spread
from .likelihood import CONTINUOUS, NLLQuantity, in_unit


@dataclass
class NLLMap:
    """``nats`` (rows, cols): −log p of the patch at (tops[i], lefts[j]) in nats per patch of ``quantity``;
    ``draw_sd`` its spread over the dequantization draws (NaN for a continuous density); d = C·size²."""

    nats: np.ndarray
    draw_sd: np.ndarray
    tops: np.ndarray
    lefts: np.ndarray
    size: int
    stride: int
    d: int
    quantity: NLLQuantity

    def in_unit(self, unit: str) -> np.ndarray:
        """The map in ``unit`` (:func:`explorer.likelihood.in_unit`)."""
        return np.asarray(in_unit(self.nats, self.d, unit), dtype=np.float64)

    def extent(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in pixels of the region the cells cover (row 0 at the top)."""
        half_gap = (self.size - self.stride) / 2
        return (float(self.lefts[0] + half_gap), float(self.tops[0] + half_gap),
                float(self.lefts[-1] + half_gap + self.stride), float(self.tops[-1] + half_gap + self.stride))


def nll_map(target: Target, image: np.ndarray, size: int, stride: int, quantity: NLLQuantity = CONTINUOUS,
            batch: int = 256) -> NLLMap:
    """−log p of every size×size patch of a gray (H, W) image in [0, 1] at ``stride``, batched ``batch``
    patches per model call (a patch is repeated over the channels of a colour model)."""
    patches, tops, lefts = extract_patches(image, size, stride)
    channels = int(_module(target).channels)
    if patches.shape[1] == 1 and channels > 1:
        patches = np.repeat(patches, channels, axis=1)
    nats, sd = energies_and_spread(target, torch.from_numpy(patches), batch, quantity)
    shape = (len(tops), len(lefts))
    return NLLMap(nats.reshape(shape), sd.reshape(shape), tops, lefts, int(size), int(stride),
                  int(np.prod(patches.shape[1:])), quantity)
