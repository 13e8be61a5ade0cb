"""explorer.data: image files, built-in photographs, synthetic generators, MNIST, patches."""
from __future__ import annotations

import gzip
import io
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.data import (
    BUILTIN_IMAGES,
    ImageFileError,
    PatchSampler,
    builtin_image,
    builtin_images,
    calpha_image,
    calpha_regions,
    dead_leaves,
    dihedral,
    disc_image,
    list_images,
    load_folder,
    load_image,
    load_mnist,
    random_calpha,
    random_disc_params,
    random_discs,
    random_patches,
)
from explorer.data import builtin as builtin_module
from explorer.data.mnist import default_mnist_path
from explorer.data.synthetic import holder_field, holder_series

LUMA = np.array([0.299, 0.587, 0.114])


# ------------------------------------------------------------------------------------ files
def test_16bit_png_keeps_full_precision(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, (9, 7), dtype=np.uint16)
    a[0, :3] = [0, 1, 65535]
    Image.fromarray(a).save(tmp_path / "deep.png")
    img = load_image(tmp_path / "deep.png")
    assert img.dtype == np.float32 and img.shape == (9, 7)
    np.testing.assert_array_equal(np.rint(img.astype(np.float64) * 65535).astype(np.uint16), a)


def test_16bit_png_of_dark_values_is_not_mistaken_for_8bit(tmp_path):
    a = np.arange(40, dtype=np.uint16).reshape(5, 8) * 5  # all values <= 255
    Image.fromarray(a).save(tmp_path / "dark16.png")
    np.testing.assert_allclose(load_image(tmp_path / "dark16.png"), a / 65535.0, rtol=0, atol=1e-7)


def test_rgba_drops_alpha_and_uses_luma(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(load_image(tmp_path / "a.png", gray=False), rgba[..., :3] / 255.0, atol=1e-7)
    np.testing.assert_allclose(load_image(tmp_path / "a.png"), rgba[..., :3] @ LUMA / 255.0, atol=1e-6)


def test_palette_image_is_expanded(tmp_path):
    idx = np.random.default_rng(2).integers(0, 4, (6, 6), dtype=np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(colours.ravel().tolist())
    im.save(tmp_path / "pal.png")
    np.testing.assert_allclose(load_image(tmp_path / "pal.png", gray=False), colours[idx] / 255.0, atol=1e-7)
    np.testing.assert_allclose(load_image(tmp_path / "pal.png"), colours[idx] @ LUMA / 255.0, atol=1e-6)


def test_one_bit_image_gives_zero_and_one(tmp_path):
    bits = np.random.default_rng(3).random((8, 9)) > 0.5
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    img = load_image(tmp_path / "bits.png")
    np.testing.assert_array_equal(img, bits.astype(np.float32))


def test_gray_alpha_keeps_gray_channel(tmp_path):
    la = np.random.default_rng(4).integers(0, 256, (5, 6, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(load_image(tmp_path / "la.png"), la[..., 0] / 255.0, atol=1e-7)
    assert load_image(tmp_path / "la.png", gray=False).shape == (5, 6, 3)


def test_jpeg_is_close_to_its_source(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = (127 + 100 * np.sin(xx / 6.0) * np.cos(yy / 7.0)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "s.jpg", quality=95)
    img = load_image(tmp_path / "s.jpg")
    assert img.shape == (32, 32) and img.dtype == np.float32
    assert np.abs(img - smooth / 255.0).mean() < 0.01


def test_jpeg_exif_orientation_is_applied(tmp_path):
    a = np.random.default_rng(13).integers(0, 256, (8, 20), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    assert load_image(tmp_path / "phone.jpg").shape == (20, 8)


def test_float_tiff_roundtrip_and_nan_rejected(tmp_path):
    a = np.random.default_rng(5).random((7, 5)).astype(np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "ok.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "ok.tif"), a)
    a[2, 3] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageFileError, match="nan.tif.*NaN"):
        load_image(tmp_path / "nan.tif")


def _broken_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "notes.png").write_text("this is not an image\n")
    return {
        "empty": tmp_path / "empty.png",
        "truncated": tmp_path / "truncated.png",
        "text": tmp_path / "notes.png",
        "missing": tmp_path / "nowhere.png",
    }


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "missing"])
def test_unreadable_files_raise_naming_the_file(tmp_path, kind):
    path = _broken_files(tmp_path)[kind]
    with pytest.raises(ImageFileError) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_folder_is_listed_in_sorted_order_and_skips_non_images(tmp_path):
    for name in ["c.png", "a.png", "b.tif", "B.jpg"]:
        Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    names = [p.name for p in list_images(tmp_path)]
    assert names == sorted(names) == ["B.jpg", "a.png", "b.tif", "c.png"]
    assert len(load_folder(tmp_path)) == 4
    with pytest.raises(ImageFileError, match="readme.txt"):
        list_images(tmp_path / "readme.txt")


# ---------------------------------------------------------------------------------- builtin
def test_builtin_images_come_from_the_skimage_package_without_network(monkeypatch):
    package_dir = Path(builtin_module.SKIMAGE_DATA_DIR)
    assert "camera" in BUILTIN_IMAGES and len(BUILTIN_IMAGES) >= 10
    for name in BUILTIN_IMAGES:
        assert builtin_module.builtin_path(name).resolve().is_relative_to(package_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("built-in images must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    builtin_module._load.cache_clear()
    images = builtin_images(size=24)
    assert list(images) == list(BUILTIN_IMAGES)
    for img in images.values():
        assert img.shape == (24, 24) and img.dtype == np.float32
        assert 0.0 <= img.min() <= img.max() <= 1.0


def test_builtin_full_image_is_gray_float_in_unit_range():
    cam = builtin_image("camera")
    assert cam.shape == (512, 512) and cam.dtype == np.float32 and cam.max() <= 1.0 and cam.min() >= 0.0
    coffee = builtin_image("coffee")  # 400 x 600 colour photograph → gray
    assert coffee.ndim == 2 and coffee.shape == (400, 600)


def test_builtin_size_is_centre_square_area_downsample():
    full = builtin_image("coffee")  # 400 x 600: centre square is columns 100..499
    small = builtin_image("coffee", size=100)  # 400 → 100: means of 4x4 blocks
    square = full[:, 100:500].astype(np.float64)
    blocks = square.reshape(100, 4, 100, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(small, blocks, atol=1e-5)
    assert builtin_image("text", size=256).shape == (256, 256)  # upsampled beyond the 172-pixel side


def test_builtin_returns_copies_and_rejects_bad_input():
    a = builtin_image("camera", size=16)
    a[:] = -1
    assert builtin_image("camera", size=16).min() >= 0
    with pytest.raises(ValueError, match="camera") as info:
        builtin_image("lenna")
    assert "lenna" in str(info.value)
    with pytest.raises(ValueError, match="size"):
        builtin_image("camera", size=0)


# -------------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize(
    "make",
    [
        lambda seed: dead_leaves(48, seed=seed),
        lambda seed: dead_leaves(32, n=50, seed=seed, radius_range=(2, 8), alpha=2.0),
        lambda seed: random_discs(3, 24, seed=seed),
        lambda seed: random_calpha(3, 32, 0.7, seed=seed),
        lambda seed: calpha_image(32, 2.0, seed=seed),
    ],
    ids=["dead_leaves", "dead_leaves_n", "discs", "calpha_batch", "calpha"],
)
def test_generators_are_seeded_and_in_unit_range(make):
    a, b, c = make(1), make(1), make(2)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.std() > 0.02


def test_dead_leaves_covers_the_frame_with_many_gray_levels():
    img = dead_leaves(48, seed=3)
    assert np.unique(np.round(img, 3)).size > 50


def test_disc_has_its_radius_and_values():
    size, cx, cy, r, f, b = 64, 30.3, 33.7, 12.5, 0.8, 0.2
    img = disc_image(size, cx, cy, r, f, b)
    inside = (img - b) / (f - b)  # soft indicator of the disc
    assert abs(inside.sum() / (np.pi * r**2) - 1) < 0.02
    assert img[int(round(cy)), int(round(cx))] == pytest.approx(f, abs=1e-6)
    assert img[0, 0] == pytest.approx(b, abs=1e-6) and img[-1, -1] == pytest.approx(b, abs=1e-6)
    reversed_contrast = disc_image(size, cx, cy, r, b, f)
    np.testing.assert_allclose(img + reversed_contrast, f + b, atol=1e-6)


def test_disc_is_a_smooth_function_of_its_parameters():
    base = np.array([16.2, 15.1, 6.3, 0.9, 0.1])
    for p in range(5):
        step = np.zeros(5)
        step[p] = 1e-2
        d1 = disc_image(32, *(base + step)) - disc_image(32, *base)
        d2 = disc_image(32, *(base + step / 2)) - disc_image(32, *base)
        assert np.abs(d1).max() > 0
        # differentiable: halving the step halves the change (to first order)
        assert np.abs(d1).sum() / np.abs(d2).sum() == pytest.approx(2.0, rel=0.05)


def test_random_discs_match_their_parameters():
    params = random_disc_params(4, 32, seed=5)
    imgs = random_discs(4, 32, seed=5)
    assert imgs.shape == (4, 32, 32)
    for img, p in zip(imgs, params):
        np.testing.assert_array_equal(img, disc_image(32, *p))
        cx, cy, r = p[:3]
        assert r + 1 <= cx <= 32 - 2 - r and r + 1 <= cy <= 32 - 2 - r


def test_calpha_image_has_two_regions_split_by_a_graph():
    size = 48
    img, mask = calpha_regions(size, 0.8, seed=7, contrast=0.5, texture=0.1)
    np.testing.assert_array_equal(img, calpha_image(size, 0.8, seed=7, contrast=0.5, texture=0.1))
    assert 0 < mask.mean() < 1
    # the boundary is the graph of a function of x: above it, in every column, a run of rows from the top
    heights = mask.sum(axis=0)
    np.testing.assert_array_equal(mask, np.arange(size)[:, None] < heights[None, :])
    assert size / 4 - 1 <= heights.min() and heights.max() <= 3 * size / 4 + 1
    # each region is a texture of amplitude <= texture around its level; levels differ by >= contrast
    top, bottom = img[mask], img[~mask]
    assert np.ptp(top) <= 0.2 + 1e-6 and np.ptp(bottom) <= 0.2 + 1e-6
    assert abs(top.mean() - bottom.mean()) >= 0.5 - 0.2
    assert top.max() < bottom.min() or bottom.max() < top.min()


def _increment_exponent(make, alpha: float, size: int, reps: int) -> float:
    """Slope of log E|h(t + δ) − h(t)| against log δ: the Hölder exponent for a C^α random function."""
    rng = np.random.default_rng(0)
    deltas = np.array([1, 2, 4, 8])
    mean_increment = np.zeros(len(deltas))
    for _ in range(reps):
        h = make(size, alpha, rng)
        mean_increment += [np.abs(np.roll(h, -d, axis=-1) - h).mean() for d in deltas]
    return float(np.polyfit(np.log(deltas), np.log(mean_increment), 1)[0])


@pytest.mark.parametrize("alpha", [0.4, 0.6])
def test_random_functions_have_the_requested_holder_exponent(alpha):
    assert _increment_exponent(holder_series, alpha, 1024, 10) == pytest.approx(alpha, abs=0.1)
    assert _increment_exponent(holder_field, alpha, 128, 3) == pytest.approx(alpha, abs=0.1)


def test_smooth_random_functions_have_linear_increments():
    assert _increment_exponent(holder_series, 2.0, 1024, 10) == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------------------------ mnist
def _idx_bytes(digits: np.ndarray, magic: int = 2051) -> bytes:
    return struct.pack(">4I", magic, *digits.shape) + digits.astype(np.uint8).tobytes()


def test_mnist_reads_small_idx_files(tmp_path, monkeypatch):
    digits = np.random.default_rng(8).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    (tmp_path / "d.gz").write_bytes(gzip.compress(_idx_bytes(digits)))
    (tmp_path / "d.idx").write_bytes(_idx_bytes(digits))
    raw = load_mnist(tmp_path / "d.idx", pad_to=None)
    np.testing.assert_allclose(raw, digits / 255.0, atol=1e-7)
    padded = load_mnist(tmp_path / "d.gz")
    assert padded.shape == (5, 32, 32) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], raw)
    assert padded[:, :2].max() == padded[:, -2:].max() == padded[:, :, :2].max() == padded[:, :, -2:].max() == 0
    monkeypatch.setenv("EXPLORER_MNIST", str(tmp_path / "d.gz"))
    assert default_mnist_path() == tmp_path / "d.gz"
    np.testing.assert_array_equal(load_mnist(), padded)
    with pytest.raises(ValueError, match="pad_to"):
        load_mnist(tmp_path / "d.gz", pad_to=20)


def test_mnist_bad_files_raise_naming_the_file(tmp_path):
    digits = np.zeros((3, 4, 4), np.uint8)
    cases = {
        "magic.gz": gzip.compress(_idx_bytes(digits, magic=2049)),
        "short.gz": gzip.compress(_idx_bytes(digits)[:-5]),
        "header.idx": b"\x00\x00\x08",
        "cut.gz": gzip.compress(_idx_bytes(digits))[:-12],
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ImageFileError) as info:
            load_mnist(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(ImageFileError, match="missing.gz"):
        load_mnist(tmp_path / "missing.gz")


REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"


@pytest.mark.skipif(not REAL_MNIST.is_file(), reason="the lab's shared MNIST file is not on this machine")
def test_real_mnist_test_set(monkeypatch):
    monkeypatch.delenv("EXPLORER_MNIST", raising=False)
    assert default_mnist_path().resolve() == REAL_MNIST
    digits = load_mnist()
    assert digits.shape == (10000, 32, 32) and digits.dtype == np.float32
    assert digits.min() == 0.0 and digits.max() == 1.0
    assert digits[:, :2].max() == 0 and digits[:, :, -2:].max() == 0
    mean = digits.mean(axis=0).astype(np.float64)
    yy, xx = np.mgrid[0:32, 0:32]
    centre = ((mean * yy).sum() / mean.sum(), (mean * xx).sum() / mean.sum())
    assert np.allclose(centre, 15.5, atol=1.0)


# ---------------------------------------------------------------------------------- patches
def test_dihedral_group_has_eight_distinct_elements_in_numpy_and_torch():
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    outs = [np.ascontiguousarray(dihedral(x, k)) for k in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    for k, o in enumerate(outs):
        np.testing.assert_array_equal(dihedral(torch.from_numpy(x), k).numpy(), o)
    with pytest.raises(ValueError):
        dihedral(x, 8)


def _find(patch: np.ndarray, images: list[np.ndarray], ks=range(8)) -> bool:
    """Whether the (C, p, p) ``patch`` is a crop of dihedral_k(image) for some image and k."""
    p = patch.shape[-1]
    for img in images:
        chw = img[None] if img.ndim == 2 else np.moveaxis(img, -1, 0)
        for k in ks:
            t = dihedral(chw, k)
            windows = np.lib.stride_tricks.sliding_window_view(t, (p, p), axis=(1, 2))
            if (windows == patch[:, None, None]).all(axis=(0, 3, 4)).any():
                return True
    return False


@pytest.mark.parametrize("same_shape", [True, False])
def test_patches_are_crops_of_transformed_images(same_shape):
    rng = np.random.default_rng(9)
    shapes = [(12, 12), (12, 12)] if same_shape else [(12, 10), (9, 14)]
    images = [rng.random(s).astype(np.float32) for s in shapes]
    patches = random_patches(images, 40, 5, seed=0)
    assert patches.shape == (40, 1, 5, 5) and patches.dtype == np.float32
    assert all(_find(p, images) for p in patches)
    plain = random_patches(images, 20, 5, seed=0, augment=False)
    assert all(_find(p, images, ks=[0]) for p in plain)


def test_augmentation_uses_all_eight_symmetries():
    image = np.random.default_rng(10).random((6, 6)).astype(np.float32)
    patches = random_patches([image], 200, 6, seed=1)  # the patch is the whole image
    seen = {k for p in patches for k in range(8) if np.array_equal(p[0], dihedral(image, k))}
    assert seen == set(range(8))


def test_colour_patches_and_bad_inputs():
    rng = np.random.default_rng(11)
    colour = [rng.random((10, 11, 3)).astype(np.float32)]
    patches = random_patches(colour, 6, 4, seed=2)
    assert patches.shape == (6, 3, 4, 4)
    assert all(_find(p, colour) for p in patches)
    with pytest.raises(ValueError, match=r"image 1 is 5×20.*8×8"):
        random_patches([np.zeros((9, 9)), np.zeros((5, 20))], 2, 8)
    with pytest.raises(ValueError, match="channel"):
        random_patches([np.zeros((9, 9)), np.zeros((9, 9, 3))], 2, 4)
    with pytest.raises(ValueError, match="at least one image"):
        random_patches([], 2, 4)


def test_patch_positions_are_uniform_over_the_collection():
    small, large = np.zeros((10, 10), np.float32), np.ones((20, 20), np.float32)
    patches = random_patches([small, large], 2000, 10, seed=3, augment=False)
    from_small = (patches.mean(axis=(1, 2, 3)) == 0).mean()
    assert from_small < 5 / 122  # 1 of 122 positions lies in the small image


@pytest.mark.parametrize("same_shape", [True, False])
def test_patch_sampler_is_reproducible_and_resumable(tmp_path, same_shape):
    rng = np.random.default_rng(12)
    shapes = [(16, 16)] * 3 if same_shape else [(16, 16), (20, 13), (13, 18)]
    images = [rng.random(s).astype(np.float32) for s in shapes]
    a = PatchSampler(images, 8, batch_size=5, seed=4)
    b = PatchSampler(images, 8, batch_size=5, seed=4)
    first = a.sample()
    assert first.shape == (5, 1, 8, 8) and first.dtype == torch.float32
    torch.testing.assert_close(first, b.sample(), rtol=0, atol=0)
    torch.save(a.state_dict(), tmp_path / "sampler.pt")
    expected = a.sample(7)
    resumed = PatchSampler(images, 8, batch_size=5, seed=999)
    resumed.load_state_dict(torch.load(tmp_path / "sampler.pt", weights_only=True))
    torch.testing.assert_close(resumed.sample(7), expected, rtol=0, atol=0)
    assert next(iter(resumed)).shape == (5, 1, 8, 8)
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(images, 4, seed=0).load_state_dict(a.state_dict())
