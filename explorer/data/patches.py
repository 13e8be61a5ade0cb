"""Random square patches of a collection of images, with the 8 dihedral augmentations.

A patch is drawn uniformly over all (image, top, left) positions of the collection (so an image
contributes in proportion to its number of valid positions), then, when ``augment`` is on, mapped
by one of the 8 symmetries of the square drawn uniformly (:func:`dihedral`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def dihedral(x: Tensor | np.ndarray, k: int) -> Tensor | np.ndarray:
    """The k-th element of the dihedral group D4 acting on the last two axes, k = 0..7.

    D_k = rot90^(k mod 4) for k < 4 and rot90^(k mod 4) ∘ transpose for k ≥ 4 (a rotation by
    (k mod 4)·90° counter-clockwise, preceded by a transpose); D_0 is the identity.
    """
    if not 0 <= k < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    if isinstance(x, Tensor):
        y = x.transpose(-1, -2) if k >= 4 else x
        return torch.rot90(y, k % 4, dims=(-2, -1))
    y = np.swapaxes(x, -1, -2) if k >= 4 else x
    return np.rot90(y, k % 4, axes=(-2, -1))


def _as_chw(images: Sequence[np.ndarray]) -> list[Tensor]:
    if len(images) == 0:
        raise ValueError("need at least one image to sample patches from")
    out = []
    for idx, img in enumerate(images):
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3:
            a = np.moveaxis(a, -1, 0)
        else:
            raise ValueError(f"image {idx}: expected (H, W) or (H, W, C), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ValueError(f"image {idx}: values must be finite numbers")
        out.append(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
    channels = {t.shape[0] for t in out}
    if len(channels) > 1:
        raise ValueError(f"images have different channel counts {sorted(channels)}; convert them all alike")
    return out


class PatchSampler:
    """Endless source of (B, C, p, p) float32 patch batches, reproducible from ``seed``.

    ``sample(batch_size)`` draws a batch; iterating yields ``sample(self.batch_size)`` forever.
    All randomness comes from one :class:`torch.Generator`, whose state :meth:`state_dict` saves
    and :meth:`load_state_dict` restores, so a resumed run draws exactly the batches it would have.
    Images of one shape are stacked once and cropped with a single gather; otherwise each patch is
    cut from its own image. Pixel values are used as given (cast to float32, not rescaled).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        patch_size: int,
        batch_size: int = 64,
        seed: int | None = 0,
        augment: bool = True,
    ):
        if not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
        self.patch_size = int(patch_size)
        self.batch_size = self._check_batch(batch_size)
        self.augment = bool(augment)
        self._images = _as_chw(images)
        p = self.patch_size
        for idx, t in enumerate(self._images):
            if t.shape[1] < p or t.shape[2] < p:
                raise ValueError(
                    f"image {idx} is {t.shape[1]}×{t.shape[2]}, smaller than the {p}×{p} patch size"
                )
        self.channels = self._images[0].shape[0]
        shapes = {tuple(t.shape) for t in self._images}
        self._stack = torch.stack(self._images) if len(shapes) == 1 else None
        if self._stack is not None:
            self._images = list(self._stack)  # views into the stack: keep one copy of the pixels
        self._heights = torch.tensor([t.shape[1] for t in self._images])
        self._widths = torch.tensor([t.shape[2] for t in self._images])
        positions = ((self._heights - p + 1) * (self._widths - p + 1)).double()
        self._weights = positions / positions.sum()
        self._generator = torch.Generator()
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))

    @staticmethod
    def _check_batch(batch_size: int) -> int:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    def __len__(self) -> int:
        """Number of source images."""
        return len(self._images)

    def sample(self, batch_size: int | None = None) -> Tensor:
        """A (batch_size, C, p, p) float32 CPU tensor of random (augmented) patches."""
        b = self.batch_size if batch_size is None else self._check_batch(batch_size)
        p, g = self.patch_size, self._generator
        which = torch.multinomial(self._weights, b, replacement=True, generator=g)
        tops = (torch.rand(b, generator=g, dtype=torch.float64) * (self._heights[which] - p + 1)).long()
        lefts = (torch.rand(b, generator=g, dtype=torch.float64) * (self._widths[which] - p + 1)).long()
        if self._stack is not None:
            ar = torch.arange(p)
            rows = (tops[:, None] + ar)[:, None, :, None]
            cols = (lefts[:, None] + ar)[:, None, None, :]
            chans = torch.arange(self.channels)[None, :, None, None]
            batch = self._stack[which[:, None, None, None], chans, rows, cols]
        else:
            batch = torch.stack(
                [self._images[i][:, t : t + p, l : l + p] for i, t, l in zip(which.tolist(), tops.tolist(), lefts.tolist())]
            )
        if self.augment:
            ks = torch.randint(0, 8, (b,), generator=g)
            for k in range(1, 8):
                sel = ks == k
                if sel.any():
                    batch[sel] = dihedral(batch[sel], k)
        return batch.contiguous()

    def __iter__(self):
        while True:
            yield self.sample()

    def state_dict(self) -> dict[str, Any]:
        """What :meth:`load_state_dict` needs to continue the exact same stream of batches."""
        return {
            "generator": self._generator.get_state(),
            "num_images": len(self._images),
            "patch_size": self.patch_size,
            "augment": self.augment,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator saved by :meth:`state_dict` (the images and patch size must match)."""
        for key, mine in (("num_images", len(self._images)), ("patch_size", self.patch_size), ("augment", self.augment)):
            if key in state and state[key] != mine:
                raise ValueError(f"sampler state has {key}={state[key]!r}, this sampler has {mine!r}")
        if "generator" not in state:
            raise ValueError("sampler state has no 'generator' entry")
        self._generator.set_state(state["generator"])


def patch_positions(length: int, size: int, stride: int) -> np.ndarray:
    """Starts 0, s, 2s, … of the size-pixel windows along a side of ``length`` pixels that lie inside it.

    Every window is inside the image (no padding): the last start is ⌊(length − size)/s⌋·s, so the last
    (length − size) mod s pixels of the side are in no window (none are left out when length − size is a
    multiple of s, and for s ≤ size every other pixel is in one). None when length < size.
    """
    for name, v in (("size", size), ("stride", stride)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"patch {name} must be a positive integer, got {v!r}")
    return np.arange(0, length - size + 1, stride, dtype=np.int64) if length >= size else np.zeros(0, np.int64)


def extract_patches(image: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every size×size patch of an (H, W) or (H, W, C) image at the given stride, in row-major order:
    (patches (N, C, size, size) float32, tops (rows,), lefts (cols,)), N = rows·cols, patch k starting at
    (tops[k // cols], lefts[k % cols]) (positions of :func:`patch_positions`, never past the border)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {np.shape(image)}")
    tops, lefts = patch_positions(a.shape[0], size, stride), patch_positions(a.shape[1], size, stride)
    if not len(tops) or not len(lefts):
        raise ValueError(f"the image is {a.shape[0]}×{a.shape[1]}, smaller than the {size}×{size} patch")
    windows = np.lib.stride_tricks.sliding_window_view(a, (size, size), axis=(0, 1))  # (H−s+1, W−s+1, C, s, s)
    chosen = windows[tops][:, lefts]
    return np.ascontiguousarray(chosen.reshape(-1, a.shape[2], size, size)), tops, lefts


def random_patches(
    images: Sequence[np.ndarray], n: int, size: int, seed: int | None = None, augment: bool = True
) -> np.ndarray:
    """(n, C, size, size) float32 patches drawn as :meth:`PatchSampler.sample` draws them (C = 1 for gray)."""
    return PatchSampler(images, size, batch_size=n, seed=seed, augment=augment).sample().numpy()
