"""The one registry of named data sets: name → training images, held-out test images, default parameters.

Every part of the explorer that takes a data set by name (``train``, ``train_energy``, ``evaluate``,
``energies``, the scripts and the tools' image sources) looks it up here, so one name always means
the same images:

- ``mnist``: the 10 000 MNIST digits that ship (``$EXPLORER_MNIST``), zero-padded to 32×32. The last
  :data:`MNIST_HELD_OUT` = 500 (indices 9500–9999) are held out, each once; the first 9500 are the
  training digits. Models trained before this split existed saw all 10 000 (``bf-mnist``; README says so).
- ``discs`` (40×40), ``calpha`` (40×40, α = 2) and ``dead-leaves`` (64×64): synthetic images. Training
  image i is drawn with seed ``seed + i`` (training seeds start at 0); test image i with seed
  ``TEST_SEED + i`` = 10⁶ + i, a stream that training never reaches.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from . import mnist, synthetic

TEST_SEED = 10**6
MNIST_HELD_OUT = 500
SYNTHETIC_TRAINING_IMAGES = 4000  # images a synthetic training set holds (dead leaves: an eighth, larger)


@dataclass(frozen=True)
class DataSet:
    """A named data set: how to make its images and which of them are held out.

    ``make(n, size, seed)`` returns n float32 (size, size) images in [0, 1] (synthetic sets);
    ``params`` are the generator's fixed settings (e.g. the C^α exponent), shown in cards and on screen.
    ``test_count`` is the number of held-out images (None: as many as asked for).
    """

    name: str
    description: str
    size: int
    make: Callable[[int, int, int], list[np.ndarray]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    test_count: int | None = None

    def training_images(self, patch: int, seed: int = 0) -> list[np.ndarray]:
        """The images training cuts patches from (never the held-out ones)."""
        if self.name == "mnist":
            return list(mnist_training_digits())
        if self.name == "dead-leaves":
            return self.make(SYNTHETIC_TRAINING_IMAGES // 8, max(patch, self.size), seed)
        return self.make(SYNTHETIC_TRAINING_IMAGES, patch, seed)

    def test_image(self, index: int, size: int | None = None) -> np.ndarray:
        """Held-out image ``index`` (at ``size`` pixels for synthetic sets; MNIST digits are 32×32)."""
        if self.name == "mnist":
            return mnist_held_out_digits()[index]
        return self.make(1, size or self.size, TEST_SEED + index)[0]


def _dead_leaves(n: int, size: int, seed: int) -> list[np.ndarray]:
    return [synthetic.dead_leaves(size, seed=seed + i).astype(np.float32) for i in range(n)]


def _discs(n: int, size: int, seed: int) -> list[np.ndarray]:
    return list(synthetic.random_discs(n, size, seed=seed).astype(np.float32))


CALPHA_ALPHA = 2.0


def _calpha(n: int, size: int, seed: int) -> list[np.ndarray]:
    return list(synthetic.random_calpha(n, size, alpha=CALPHA_ALPHA, seed=seed).astype(np.float32))


DATASETS: dict[str, DataSet] = {
    d.name: d for d in (
        DataSet("mnist", "MNIST digits padded to 32×32 (9500 training, the last 500 held out)", 32,
                test_count=MNIST_HELD_OUT),
        DataSet("discs", "discs: one disc of random centre, radius and two gray levels", 40, _discs),
        DataSet("calpha", f"C^α images: two regions split by a C^α contour (α = {CALPHA_ALPHA:g})", 40, _calpha,
                params={"alpha": CALPHA_ALPHA}),
        DataSet("dead-leaves", "dead leaves: occluding discs of random gray levels and sizes", 64, _dead_leaves),
    )
}
NAMES = tuple(DATASETS)


def dataset(name: str) -> DataSet:
    """The registered data set ``name``; a ``ValueError`` lists the names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(NAMES)} or give a folder") from None


def mnist_split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices of ``count`` MNIST digits: the last :data:`MNIST_HELD_OUT` are held out."""
    if count <= MNIST_HELD_OUT:
        raise ValueError(f"{count} digits: not more than the {MNIST_HELD_OUT} held out")
    idx = np.arange(count)
    return idx[: count - MNIST_HELD_OUT], idx[count - MNIST_HELD_OUT:]


@lru_cache(maxsize=1)
def _all_digits() -> np.ndarray:
    digits = mnist.load_mnist(pad_to=32)
    digits.setflags(write=False)
    return digits


def mnist_training_digits() -> np.ndarray:
    """The (9500, 32, 32) training digits (read-only)."""
    digits = _all_digits()
    return digits[mnist_split(len(digits))[0]]


def mnist_held_out_digits() -> np.ndarray:
    """The (500, 32, 32) held-out digits, each once (read-only)."""
    digits = _all_digits()
    return digits[mnist_split(len(digits))[1]]


def mnist_subsets(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets A, B of ``n`` training-digit indices each (Kadkhodaie et al., ICLR 2024).

    A random permutation π of the 9500 training indices (``numpy.random.default_rng(seed)``) gives
    A = π[:n] and B = π[n:2n]; so for n = 4750, A ∪ B is the whole training split. Sorted index arrays.
    """
    train = mnist_split(10_000)[0]
    if not 1 <= n <= len(train) // 2:
        raise ValueError(f"subset size {n} must be in [1, {len(train) // 2}] for two disjoint subsets")
    perm = np.random.default_rng(seed).permutation(train)
    return np.sort(perm[:n]), np.sort(perm[n:2 * n])


def mnist_subset_digits(n: int, part: str, seed: int = 0) -> np.ndarray:
    """The (n, 32, 32) digits of subset ``part`` ("A" or "B") of :func:`mnist_subsets` (read-only)."""
    if part not in ("A", "B"):
        raise ValueError(f"subset part {part!r} must be 'A' or 'B'")
    a, b = mnist_subsets(n, seed)
    return _all_digits()[a if part == "A" else b]


def indices_digest(indices: np.ndarray) -> str:
    """sha256 of the comma-separated indices: a model card's short record of its training subset."""
    import hashlib

    return hashlib.sha256(",".join(str(int(i)) for i in np.sort(indices)).encode()).hexdigest()


def is_held_out_digit(index: int, count: int = 10_000) -> bool:
    """Whether MNIST digit ``index`` (of ``count``) is one of the held-out digits."""
    return count - MNIST_HELD_OUT <= index < count
