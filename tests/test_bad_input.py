"""Bad input to the model handle never crashes with an internal error: it works, or a ValueError says why."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.denoisers import DnCNN, UNet
from explorer.handle import ModelHandle


@pytest.fixture(scope="module")
def unet_handle():
    torch.manual_seed(0)
    return ModelHandle(UNet(width=4, levels=3, convs_per_block=1).eval(), device="cpu", name="tiny-unet")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 40), w=st.integers(1, 40), channels=st.sampled_from([None, 1, 3, 4]),
       dtype=st.sampled_from([np.float32, np.float64, np.float16, np.uint8]))
def test_any_array_image_is_denoised_or_refused_with_a_reason(unet_handle, h, w, channels, dtype):
    shape = (h, w) if channels is None else (h, w, channels)
    image = (np.random.default_rng(h * 41 + w).random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    fits = channels in (None, 1) and min(h, w) >= unet_handle.model.min_size
    if fits:
        out = unet_handle.denoise(image)
        assert out.shape == (h, w) and np.isfinite(out).all()
    else:
        with pytest.raises(ValueError, match="channel|at least 4×4 pixels"):
            unet_handle.denoise(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_images_are_refused(unet_handle, bad):
    image = np.full((16, 16), 0.5, np.float32)
    image[3, 5] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        unet_handle.denoise(image)
    with pytest.raises(ValueError, match="NaN or infinite"):
        unet_handle.residual(torch.from_numpy(image)[None, None])


def test_a_network_without_size_limit_takes_a_single_pixel():
    handle = ModelHandle(DnCNN(depth=3, width=4).eval(), device="cpu")
    assert handle.denoise(np.zeros((1, 1), np.float32)).shape == (1, 1)


def test_padding_to_the_network_multiple_is_said_once_per_size():
    import warnings

    handle = ModelHandle(UNet(width=4, levels=3, convs_per_block=1).eval(), device="cpu", name="tiny-unet")
    with pytest.warns(UserWarning, match=r"30×21 image is reflect-padded to 32×24"):
        out = handle.denoise(np.full((30, 21), 0.5, np.float32))
    assert out.shape == (30, 21)  # cropped back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handle.denoise(np.full((30, 21), 0.5, np.float32))  # said once for this size
        handle.denoise(np.full((32, 24), 0.5, np.float32))  # a multiple: nothing to say
