"""The representation φ (explorer.representation, _stats, _data) and the sampler guided by it (explorer.guidance)."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer import ModelHandle, sample
from explorer.data import mnist
from explorer.data.files import ImageFileError
from explorer.denoisers import DnCNN, GaussianSmoothing, LabUNet, LabUNet2024, UNet
from explorer.guidance import RepresentationGuidance, guided_sample, phi_distance
from explorer.representation import (activations, block_names, bottom_block, features, features_of_images,
                                     robustness_curves)
from explorer.representation_data import dataset, dataset_features, read_cache
from explorer.representation_stats import (active, channel_activity, class_selectivity, correlation, kmeans,
                                           majority, nearest, pca_2d, purity, sparsity, standardize)

from conftest import calibrated

torch.set_num_threads(1)


def _shapes(model, size=16):
    y = torch.rand(2, 1, size, size)
    with torch.no_grad():
        return {n: tuple(activations(model, y, n).shape[1:]) for n in block_names(model)}


# ------------------------------------------------------------------ blocks and hooks
def test_unet_blocks_have_the_widths_and_resolutions_of_their_levels():
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1))
    assert _shapes(m) == {"enc0": (4, 16, 16), "enc1": (8, 8, 8), "mid": (16, 4, 4), "dec1": (8, 8, 8),
                          "dec0": (4, 16, 16)}
    y = torch.rand(2, 1, 16, 16)
    with torch.no_grad():  # the hooked bottom block is the network's own encoder output at level 2
        manual = m.encoders[2](F.avg_pool2d(m.encoders[1](F.avg_pool2d(m.encoders[0](y), 2)), 2))
        assert torch.equal(activations(m, y, "mid"), manual)
    assert bottom_block(m) == "mid"


def test_other_architectures_name_their_blocks_and_dncnn_says_it_has_no_bottom():
    lab = LabUNet2024(num_kernels=4, num_blocks=2).eval()
    assert _shapes(lab) == {"enc0": (4, 16, 16), "enc1": (8, 8, 8), "mid": (16, 4, 4), "dec1": (8, 8, 8),
                            "dec0": (4, 16, 16)}
    assert _shapes(LabUNet().eval()) == {"enc0": (32, 16, 16), "mid": (64, 8, 8), "up": (64, 16, 16),
                                         "dec0": (32, 16, 16)}
    cnn = DnCNN(depth=4, width=6).eval()
    assert _shapes(cnn) == {f"layer{i}": (6, 16, 16) for i in (1, 2, 3)}
    with torch.no_grad():  # a DnCNN's layers are read after their ReLU
        assert (activations(cnn, torch.randn(1, 1, 8, 8), "layer1") >= 0).all()
    with pytest.raises(ValueError, match="DnCNN has no bottom block 'mid'.*offers layer1, layer2, layer3"):
        bottom_block(cnn)
    with pytest.raises(ValueError, match="UNet has no block 'layer1'; it offers enc0"):
        features(UNet(width=4), torch.rand(1, 1, 8, 8), "layer1")
    with pytest.raises(ValueError, match="GaussianSmoothing has no network blocks"):
        block_names(GaussianSmoothing())


def test_phi_of_a_constant_image_is_homogeneous_and_the_noise_draws_are_averaged():
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1))
    handle = ModelHandle(m, device="cpu")
    ones = torch.ones(1, 1, 16, 16)
    phi1 = features(handle, ones, "mid")
    assert phi1.shape == (1, 16) and (phi1 >= 0).all() and phi1.sum() > 0
    assert torch.allclose(features(handle, 0.3 * ones, "mid"), 0.3 * phi1, rtol=1e-5, atol=1e-7)  # bias-free
    assert torch.equal(features(handle, 0 * ones, "mid"), torch.zeros(1, 16))
    biased = calibrated(UNet(width=4, levels=3, convs_per_block=1, bias_free=False))
    assert not torch.allclose(features(biased, 0.3 * ones, "mid"), 0.3 * features(biased, ones, "mid"), rtol=1e-3)
    # φ(x; σ) with D draws is the mean of φ over D noisy copies from the seeded generator
    g = torch.Generator().manual_seed(5)
    copies = [0.5 * ones + 0.2 * torch.randn(ones.shape, generator=g) for _ in range(3)]
    expected = torch.stack([features(handle, c, "mid") for c in copies]).mean(0)
    assert torch.allclose(features(handle, 0.5 * ones, "mid", sigma=0.2, draws=3, seed=5), expected, atol=1e-6)
    with pytest.raises(ValueError, match="several noise draws need a noise level"):
        features(handle, ones, "mid", sigma=None, draws=2)
    images = np.random.default_rng(0).random((5, 16, 16), dtype=np.float32)
    stacked = features_of_images(handle, images, "enc1", batch=2)
    assert stacked.shape == (5, 8)
    assert np.allclose(stacked, features(handle, torch.from_numpy(images[:, None]), "enc1").numpy(), atol=1e-6)


# ------------------------------------------------------------------ statistics
def test_kmeans_recovers_separable_clusters_and_purity_counts_majorities():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 20
    classes = np.repeat([0, 1, 2], 30)
    vectors = centres[classes] + rng.normal(size=(90, 6))
    c = kmeans(vectors, 3, seed=1)
    assert purity(c.labels, classes) == 1.0
    assert c.centroids.shape == (3, 6) and c.inertia < 90 * 6 * 2
    assert purity(np.zeros(90, int), classes) == pytest.approx(1 / 3)
    assert purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7])) == 0.75
    assert majority(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]), 3) == [(5, 1.0), (5, 0.5), (None, 0.0)]
    with pytest.raises(ValueError, match="k must be an integer in"):
        kmeans(vectors, 0)


def test_nearest_sparsity_selectivity_correlation_and_pca():
    v = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    idx, dist = nearest(v, v[0], 2, exclude=0)
    assert idx.tolist() == [1, 3] and dist.tolist() == [1.0, 2.0]
    phi = np.array([[1.0, 0.05, 0.5, 0.0], [0.0, 2.0, 0.1, 0.0]])
    assert active(phi).tolist() == [[True, False, True, False], [False, True, False, False]]
    assert sparsity(phi).tolist() == [0.5, 0.75]
    assert np.allclose(sparsity(7 * phi), sparsity(phi))  # relative threshold: contrast does not change it
    assert channel_activity(phi).tolist() == [0.5, 0.5, 0.5, 0.0]
    phi3 = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # channel 0 only for class 0
    assert np.allclose(class_selectivity(phi3, np.array([0, 0, 1, 1])), [1.0, 0.0])
    a = np.random.default_rng(1).random((4, 10))
    assert np.allclose(correlation(a, 3 * a + 1), 1.0) and np.allclose(correlation(a, -a), -1.0)
    z = standardize(np.c_[a, np.ones(4)])
    assert np.allclose(z[:, :10].std(0), 1) and np.allclose(z[:, 10], 0)
    line = np.outer(np.arange(5.0), [1.0, 2.0, 0.0])
    coords, share = pca_2d(line)
    assert coords.shape == (5, 2) and share[0] == pytest.approx(1.0) and np.allclose(coords[:, 1], 0, atol=1e-9)


def test_robustness_is_one_at_tiny_noise_and_falls_with_sigma():
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1))
    images = np.random.default_rng(0).random((6, 16, 16), dtype=np.float32)
    curves = robustness_curves(m, images, [1e-4, 1.0], ["enc0", "mid"])
    assert set(curves) == {"enc0", "mid"}
    for c in curves.values():
        assert c[1e-4] == pytest.approx(1.0, abs=1e-3) and c[1.0] < c[1e-4]


# ------------------------------------------------------------------ data sets and the cache
def test_mnist_labels_are_read_and_aligned_with_the_images(shared_dir):
    images = mnist.load_mnist(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz", pad_to=32)
    labels = mnist.load_mnist_labels(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    assert labels.shape == (len(images),) and labels.dtype == np.uint8 and set(labels.tolist()) == set(range(10))
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the first t10k digits
    ink = images[:1000].mean(axis=(1, 2))
    first = labels[:1000]
    assert ink[first == 1].mean() < 0.6 * ink[first == 0].mean()  # 1s carry far less ink than 0s: aligned
    held = dataset("mnist:held-out", count=4)
    assert held.classes.tolist() == labels[9500:9504].tolist() and held.images.shape == (4, 32, 32)
    assert np.array_equal(held.images, images[9500:9504]) and held.names[0] == "held-out digit 9500"


def test_a_bad_label_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "t-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(struct.pack(">2I", 2051, 2) + b"\x01\x02"))
    with pytest.raises(ImageFileError, match="bad magic number 2051"):
        mnist.read_idx_labels(bad)
    bad.write_bytes(struct.pack(">2I", 2049, 3) + b"\x01")
    with pytest.raises(ImageFileError, match="announces 3 labels, found 1"):
        mnist.read_idx_labels(bad)


def test_dataset_features_are_cached_per_item(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_REPRESENTATION_CACHE", str(tmp_path))
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1))
    data = dataset("mnist:held-out", count=6)
    first = dataset_features(m, data, "mid", batch=4)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and set(read_cache(files[0])) == set(data.keys)
    calls = []
    monkeypatch.setattr("explorer.representation_data.features_of_images",
                        lambda *a, **k: calls.append(len(a[1])) or np.zeros((len(a[1]), 16), np.float32))
    assert np.array_equal(dataset_features(m, data, "mid", batch=4), first) and calls == []
    more = dataset("mnist:held-out", count=8)
    assert np.array_equal(dataset_features(m, more, "mid", batch=4)[:6], first) and calls == [2]


# ------------------------------------------------------------------ guided sampling
def test_the_guidance_step_lowers_the_phi_distance():
    torch.manual_seed(0)
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1), shape=(8, 1, 16, 16))
    handle = ModelHandle(m, device="cpu")
    target = features(handle, torch.rand(1, 1, 16, 16), "mid")[0]
    guide = RepresentationGuidance(handle, target, "mid", strength=1.0)
    y = 0.5 + 0.3 * torch.randn(3, 1, 16, 16)
    d = handle.denoise(y) - y
    chains = torch.arange(3)
    g = guide(y, d, chains)
    assert torch.allclose(g.flatten(1).norm(dim=1), d.flatten(1).norm(dim=1), rtol=1e-4)  # λ = 1: ‖g‖ = ‖d‖
    with torch.no_grad():
        before = guide.objective(y, chains)
        after = guide.objective(y + 0.01 * g, chains)
    assert (after < before).all()
    assert torch.equal(RepresentationGuidance(handle, target, "mid", strength=0.0)(y, d, chains), torch.zeros_like(d))
    sigmas = d.flatten(1).norm(dim=1) / 16  # σ_t = ‖d‖/√N, N = 256
    late = RepresentationGuidance(handle, target, "mid", until=float(sigmas.median()))(y, d, chains)
    assert torch.equal(late.flatten(1).norm(dim=1) > 0, sigmas > sigmas.median())  # guided only while σ_t > until
    with pytest.raises(ValueError, match="non-zero"):
        RepresentationGuidance(handle, torch.zeros(16), "mid")


def test_guided_samples_end_closer_to_the_target_than_unguided_ones_from_the_same_seed():
    torch.manual_seed(0)
    m = calibrated(UNet(width=4, levels=3, convs_per_block=1), shape=(8, 1, 16, 16))
    handle = ModelHandle(m, device="cpu")
    target = features(handle, torch.rand(1, 1, 16, 16), "mid")[0]
    kw = dict(shape=(4, 1, 16, 16), seed=3, sigma_L=0.05, max_steps=300, snapshot_every=None)
    plain = sample(handle, **kw)
    zero = guided_sample(handle, target, "mid", strength=0.0, **kw)
    assert torch.equal(zero.image, plain.image)  # λ = 0 is Algorithm 1 with the same noise
    guided = guided_sample(handle, target, "mid", strength=1.0, **kw)
    assert np.median(phi_distance(handle, guided.image, target, "mid")) < \
        np.median(phi_distance(handle, plain.image, target, "mid"))
