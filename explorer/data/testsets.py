"""Built-in test sets for benchmarks, made on demand so that any process can make image i by itself.

- ``mnist``: the last 500 of the MNIST digits that ship (``$EXPLORER_MNIST``), padded to 32×32: the
  digits the energy models hold out. (Only the 10 000 test digits ship, so models trained on all of
  them, like ``bf-mnist``, have seen these.)
- ``discs`` (40×40), ``calpha`` (40×40, α = 2) and ``dead-leaves`` (64×64): synthetic images drawn
  with seed ``TEST_SEED + i``, a stream the training sets (seeds 0 upwards) never reach.

A name is written ``NAME`` or ``NAME:SIZE`` (synthetic sets only), e.g. ``discs:32``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import mnist, synthetic

TEST_SEED = 10**6
MNIST_HELD_OUT = 500
DEFAULT_SIZES = {"discs": 40, "calpha": 40, "dead-leaves": 64}
DEFAULT_COUNT = 100  # images of a synthetic set unless a limit says otherwise
NAMES = ("mnist", *DEFAULT_SIZES)


@lru_cache(maxsize=1)
def _held_out_digits() -> np.ndarray:
    digits = mnist.load_mnist(pad_to=32)
    return digits[len(digits) - MNIST_HELD_OUT:]


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
        """The (size, size) float32 image in [0, 1]."""
        seed = TEST_SEED + self.index
        if self.dataset == "mnist":
            return _held_out_digits()[self.index]
        if self.dataset == "discs":
            return synthetic.random_discs(1, self.size, seed=seed)[0]
        if self.dataset == "calpha":
            return synthetic.random_calpha(1, self.size, alpha=2.0, seed=seed)[0]
        if self.dataset == "dead-leaves":
            return synthetic.dead_leaves(self.size, seed=seed)
        raise ValueError(f"unknown built-in test set {self.dataset!r}; choose from {', '.join(NAMES)}")


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
            size = int(size_text) if size_text else DEFAULT_SIZES[name]
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
