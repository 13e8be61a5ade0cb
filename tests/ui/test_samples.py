"""The sample shelf: the sampler keeps x̂ of its chains, and every tool's image source opens them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.data import square_resize
from explorer.ui.sources import ImageSource
from explorer.ui.filters_view import FiltersView
from explorer.ui.samples import keep_samples, list_samples, load_sample
from explorer.ui.sampler_view import SamplerView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def shelf(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_SAMPLES", str(tmp_path / "shelf"))
    return tmp_path / "shelf"


def test_kept_samples_round_trip_newest_first(shelf):
    rng = np.random.default_rng(0)
    first = keep_samples(rng.random((2, 8, 8)), dict(model="m", beta=0.5, seed=1, steps=10))
    second = keep_samples(rng.random((1, 8, 8)), dict(model="m", beta=0.25, seed=2), [dict(steps=7)])
    listed = list_samples()
    assert list(listed.values()) == [second[0], first[1], first[0]]
    image, meta = load_sample(first[1])
    assert image.shape == (8, 8) and meta["chain"] == 2 and meta["beta"] == 0.5
    assert "β=0.25" in next(iter(listed)) and "7 steps" in next(iter(listed))
    (shelf / "sample-99999999-junk.npz").write_bytes(b"not an npz")  # unreadable files are skipped
    assert len(list_samples()) == 3
    with pytest.raises(ValueError):
        keep_samples(np.full((1, 4, 4), np.nan), {})


def test_the_sampler_keeps_its_samples_and_another_tool_opens_them(tiny_handle, shelf):
    sampler = SamplerView(model="tiny-test", size=32, batch=2, h0=0.05, beta=0.8, sigma_L=0.05, seed=3)
    try:
        for _ in range(3):
            sampler.controls.step_clicks += 1
        paths = sampler.keep_samples()
    finally:
        sampler.worker.stop(wait=True)
    assert len(paths) == 2
    x_hat = sampler.sampler.state.x_hat[:, 0].numpy()
    meta = json.loads(str(np.load(paths[1])["meta"]))
    assert meta["model"] == "tiny-test" and meta["beta"] == 0.8 and meta["seed"] == 3 and meta["steps"] == 3

    source = ImageSource(sizes=[32], size=32)
    filters = FiltersView(models=["tiny-test"], image_source=source)
    source.source = "sample"
    chosen = list_samples()[source.sample]
    assert chosen in paths and source.error == ""
    k = paths.index(chosen)
    np.testing.assert_allclose(source.image, square_resize(np.clip(x_hat[k], 0, 1), 32), atol=1e-6)
    assert filters.clean is source.image  # the tool now works on the kept sample
    source.sample = next(label for label, p in list_samples().items() if p != chosen)
    np.testing.assert_allclose(filters.clean, square_resize(np.clip(x_hat[1 - k], 0, 1), 32), atol=1e-6)


def test_an_empty_shelf_says_what_to_do():
    source = ImageSource(sizes=[32], size=32)
    before = source.image
    source.source = "sample"
    assert "run the sampler" in source.error and source.image is before
