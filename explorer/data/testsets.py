"""Built-in test sets for benchmarks, made on demand so that any process can make image i by itself.

- ``mnist``: the 500 held-out digits of :mod:`explorer.data.registry` (the last 500 that ship), padded
  to 32×32. (``bf-mnist``'s 44 494 steps predate the split and used all 10 000 digits, so it has seen these.)
- ``discs`` (40×40), ``calpha`` (40×40, α = 2) and ``dead-leaves`` (64×64): the registry's held-out
  synthetic images, drawn with seed ``TEST_SEED + i``, a stream the training sets never reach.

A name is written ``NAME`` or ``NAME:SIZE`` (synthetic sets only), e.g. ``discs:32``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import MNIST_HELD_OUT, NAMES, dataset

DEFAULT_COUNT = 100  # images of a synthetic set unless a limit says otherwise


@dataclass(frozen=True)
class SetImage:
    """Image ``index`` of the built-in set ``dataset`` at ``size`` pixels (picklable: workers make it)."""

    dataset: str
    index: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.size}/{self.index:04d}"

    def load(self) -> np.ndarray:
        """The (size, size) float32 image in [0, 1]: held-out image ``index`` of the registered set."""
        return dataset(self.dataset).test_image(self.index, self.size)


def is_builtin_set(spec: str) -> bool:
    """Whether ``spec`` names a built-in set (``NAME`` or ``NAME:SIZE``) rather than a folder."""
    return spec.split(":", 1)[0] in NAMES


def builtin_set(spec: str, count: int | None = None) -> tuple[str, list[SetImage]]:
    """(label, images) of the built-in set ``NAME[:SIZE]``: the first ``count`` images (default: all 500
    held-out digits, or 100 synthetic images). The label (e.g. ``discs-40``) keys the model card's metrics."""
    name, _, size_text = spec.partition(":")
    if name not in NAMES:
        raise ValueError(f"unknown built-in test set {name!r}; choose from {', '.join(NAMES)}")
    if name == "mnist":
        if size_text:
            raise ValueError("the mnist test set has a fixed size (32×32); drop ':SIZE'")
        size, available = 32, MNIST_HELD_OUT
    else:
        try:
            size = int(size_text) if size_text else dataset(name).size
        except ValueError:
            raise ValueError(f"{spec!r}: the size after ':' must be an integer") from None
        if size < 9:
            raise ValueError(f"{spec!r}: images must be at least 9 pixels wide")
        available = None
    n = count if count is not None else (available or DEFAULT_COUNT)
    if n < 1 or (available is not None and n > available):
        raise ValueError(f"{spec!r}: asked for {n} images; it has {available or 'any number ≥ 1'}")
    label = "mnist-heldout" if name == "mnist" else f"{name}-{size}"
    return label, [SetImage(name, i, size) for i in range(n)]
