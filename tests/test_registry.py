"""The data-set registry: one name, one set of images, one held-out split."""
import numpy as np
import pytest

from explorer.data import registry, testsets
from explorer.data.synthetic import random_calpha


def test_mnist_split_holds_out_each_of_the_last_500_once():
    train, held = registry.mnist_split(10_000)
    assert len(held) == registry.MNIST_HELD_OUT == 500 and len(np.unique(held)) == 500
    assert len(train) == 9500 and not set(train) & set(held)
    assert held.min() == 9500 and held.max() == 9999
    assert registry.is_held_out_digit(9500) and registry.is_held_out_digit(9999) and not registry.is_held_out_digit(9499)
    with pytest.raises(ValueError, match="held out"):
        registry.mnist_split(500)


def test_mnist_digits_match_the_split():
    from explorer.data import mnist

    all_digits = mnist.load_mnist(pad_to=32)
    held = registry.mnist_held_out_digits()
    train = registry.mnist_training_digits()
    assert held.shape == (500, 32, 32) and train.shape == (9500, 32, 32)
    np.testing.assert_array_equal(held, all_digits[9500:])
    np.testing.assert_array_equal(train, all_digits[:9500])
    assert len({d.tobytes() for d in held}) > 490  # distinct digits, not resampled with replacement
    assert registry.dataset("mnist").training_images(32)[0].shape == (32, 32)
    assert len(registry.dataset("mnist").training_images(32)) == 9500


def test_calpha_means_alpha_two_everywhere():
    ds = registry.dataset("calpha")
    assert ds.params == {"alpha": 2.0}
    np.testing.assert_array_equal(ds.test_image(3, 24), random_calpha(1, 24, alpha=2.0, seed=registry.TEST_SEED + 3)[0])
    from explorer.ui.sources import synthetic_image

    np.testing.assert_array_equal(synthetic_image("C^α contour", 24, 5), random_calpha(1, 24, alpha=2.0, seed=5)[0])


@pytest.mark.parametrize("name", ["discs", "calpha", "dead-leaves"])
def test_synthetic_test_images_never_come_from_the_training_stream(name):
    ds = registry.dataset(name)
    train = ds.make(50, 24, 0)  # images from the training seeds
    assert train[0].dtype == np.float32 and train[0].shape == (24, 24)
    test = ds.test_image(0, 24)
    assert not any(np.array_equal(test, t) for t in train)
    # the evaluation sets are the registry's test images
    _, images = testsets.builtin_set(f"{name}:24", count=2)
    np.testing.assert_array_equal(images[1].load(), ds.test_image(1, 24))


def test_synthetic_training_sets():
    discs = registry.dataset("discs").training_images(patch=16, seed=0)
    assert len(discs) == registry.SYNTHETIC_TRAINING_IMAGES and discs[0].shape == (16, 16)
    np.testing.assert_array_equal(discs[7], registry.dataset("discs").make(registry.SYNTHETIC_TRAINING_IMAGES, 16, 0)[7])


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match="mnist, discs, calpha, dead-leaves"):
        registry.dataset("cifar")


@pytest.mark.parametrize("n", [1, 10, 4750])
def test_mnist_subsets_are_disjoint_reproducible_training_digits(n):
    a, b = registry.mnist_subsets(n, seed=3)
    assert len(a) == len(b) == n and not set(a) & set(b)
    assert max(a.max(), b.max()) < 9500  # never a held-out digit
    a2, b2 = registry.mnist_subsets(n, seed=3)
    np.testing.assert_array_equal(a, a2) and np.testing.assert_array_equal(b, b2)
    assert registry.indices_digest(a) == registry.indices_digest(a2[::-1]) != registry.indices_digest(b)
    if n == 4750:
        assert len(set(a) | set(b)) == 9500
    with pytest.raises(ValueError, match="disjoint"):
        registry.mnist_subsets(4751)
