"""Uploads that used to be accepted silently (issue #15 item 6) and the upload widget (item 1), without a
browser: each unusual file is refused with a message naming it, or converted with a note saying how."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explorer.ui.sources import (UPLOAD_HINT, UPLOAD_MAX_MB, ImageSource, UploadBox, decode_upload,
                                 read_upload)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def ramp(h: int = 40, w: int = 40) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))


def test_an_empty_file_is_refused_naming_it_and_replaces_the_previous_error():
    source = ImageSource(sizes=[32], size=32)
    assert not source.load_bytes(b"garbage", "first.png")
    assert "first.png" in source.error
    assert not source.load_bytes(b"", "empty.png")  # was ignored: the message still named first.png
    assert "empty.png" in source.error and "first.png" not in source.error and "empty (0 bytes)" in source.error
    assert source.alert_pane.visible and "empty.png" in source.alert_pane.object


def test_an_empty_file_from_the_drop_area_reaches_the_source():
    source = ImageSource(sizes=[32], size=32)
    source.upload.dropper.value = {"nothing.png": b""}  # what FileDropper holds after a 0-byte upload
    assert "nothing.png" in source.error and "empty" in source.error


def test_rgba_transparency_is_composited_over_white_with_a_note():
    rgba = np.zeros((32, 32, 4), np.uint8)  # transparent black around an opaque black square
    rgba[8:24, 8:24, 3] = 255
    up = read_upload(png_of(rgba), "logo.png")
    assert up.image[0, 0] == pytest.approx(1.0) and up.image[16, 16] == pytest.approx(0.0)
    assert "composited over white" in up.note and "75%" in up.note
    source = ImageSource(sizes=[32], size=32)
    assert source.load_bytes(png_of(rgba), "logo.png")
    assert "logo.png" in source.note and "composited over white" in source.note and source.note_pane.visible


def test_an_opaque_alpha_channel_is_said_to_be_ignored():
    rgba = np.dstack([ramp()] * 3 + [np.full((40, 40), 255, np.uint8)])
    up = read_upload(png_of(rgba), "opaque.png")
    np.testing.assert_allclose(up.image, decode_upload(png_of(ramp()), "gray.png"), atol=1e-5)
    assert "opaque everywhere" in up.note


def test_a_flat_image_is_said_to_be_constant():
    up = read_upload(png_of(np.full((32, 32, 4), 128, np.uint8)), "flat.png")
    assert "constant" in up.note and "composited over white" in up.note


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (5, 5)])
def test_a_tiny_image_is_refused_not_turned_into_a_constant_image(shape):
    source = ImageSource(sizes=[32], size=32)
    before = source.image.copy()
    assert not source.load_bytes(png_of(np.zeros(shape, np.uint8)), "dot.png")
    assert "dot.png" in source.error and "too small" in source.error
    np.testing.assert_array_equal(source.image, before)


def test_a_small_image_is_upscaled_with_a_note():
    source = ImageSource(sizes=[32], size=32)
    assert source.load_bytes(png_of(ramp(10, 16)), "small.png")
    assert "Centre-cropped from 16×10 to 10×10" in source.note and "Upscaled from 10×10 to 32×32" in source.note


def test_an_image_over_4096_pixels_a_side_is_downsampled_with_a_note():
    big = np.random.default_rng(0).integers(0, 256, (4200, 4300), dtype=np.uint8)
    up = read_upload(png_of(big), "huge.png")
    assert up.image.shape == (2100, 2150)
    assert "Downsampled 2×" in up.note and "4300×4200" in up.note
    np.testing.assert_allclose(up.image[0, 0], big[:2, :2].mean() / 255, atol=1 / 255)


def test_a_colour_image_is_said_to_be_converted_to_gray():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 255
    up = read_upload(png_of(rgb), "red.png")
    assert "gray" in up.note and up.image[0, 0] == pytest.approx(0.299, abs=1e-3)
    assert read_upload(png_of(ramp()), "gray.png").notes == ()


def test_a_file_over_the_limit_is_refused_on_the_server_too():
    with pytest.raises(ValueError, match=rf"big.png.*over the {UPLOAD_MAX_MB} MB limit"):
        read_upload(b"\x89PNG" + bytes(UPLOAD_MAX_MB * 1_000_000), "big.png")


def test_the_upload_box_states_the_limit_and_hands_files_to_its_callback():
    got = []
    box = UploadBox(lambda data, name: got.append((data, name)))
    assert f"up to {UPLOAD_MAX_MB} MB" in UPLOAD_HINT and box.hint.object == UPLOAD_HINT
    assert box.dropper.max_file_size == f"{UPLOAD_MAX_MB}MB" and not box.dropper.multiple
    assert box.dropper.chunk_size < 20_000_000  # each chunk stays under bokeh's 20 MB websocket message limit
    box.dropper.value = {"a.png": b"123"}
    assert got == [(b"123", "a.png")]
