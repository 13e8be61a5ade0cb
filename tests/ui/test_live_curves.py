"""LiveCurves (the σ_t and h_t plots of the sampler and inverse-problem tools): a refresh swaps one line's
data in place, the x-range widens with the run, bad input is refused, and the sampler's plots show exactly
what its sampler recorded."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.ui.live_curves import LiveCurves
from explorer.ui.run_plots import chain_key
from explorer.ui.sampler_view import SamplerView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_an_update_swaps_the_data_of_one_live_line_and_keeps_the_figure():
    plot = LiveCurves("σ_t", "iteration t", "σ_t (noise std)", y_range=(1e-3, 2.0), x_range=(0, 10), log_y=True)
    plot.add_line([0, 10], [1.0, 0.01], label="predicted", dash="dashed")
    plot.add_live("a", "chain 1", "#1f77b4")
    plot.add_live("b", "chain 2", "#d62728")
    plot.add_level(0.01, "σ_L")
    figure, renderers = plot.figure, list(plot.figure.renderers)
    plot.update("a", np.arange(1, 4), [1.0, 0.5, np.nan])
    x, y = plot.data("a")
    assert list(x) == [1, 2, 3] and y[1] == 0.5 and np.isnan(y[2])
    assert plot.data("b")[0].size == 0  # the other line is untouched
    assert plot.figure is figure and list(plot.figure.renderers) == renderers  # nothing rebuilt
    labels = [item.label.value for item in plot.figure.legend[0].items]
    assert labels == ["predicted", "chain 1", "chain 2", "σ_L"]
    assert plot.figure.y_scale.__class__.__name__ == "LogScale"
    plot.set_x_range(0, 250)
    assert plot.x_range == (0.0, 250.0)


def test_bad_updates_are_refused_with_a_reason():
    plot = LiveCurves("h_t", "iteration t", "step size h_t", y_range=(0, 1.05))
    plot.add_live("h", "this run", "black")
    with pytest.raises(ValueError, match="exists already"):
        plot.add_live("h", "again", "black")
    with pytest.raises(ValueError, match="one length"):
        plot.update("h", [1, 2, 3], [0.1, 0.2])
    with pytest.raises(KeyError):
        plot.update("missing", [1], [0.1])


def test_the_sampler_plots_show_what_the_sampler_recorded(tiny_handle):
    v = SamplerView(model="tiny-test", size=32, chains=2, h0=0.05, beta=0.8, sigma_L=0.05, max_steps=40)
    try:
        for _ in range(5):
            v.step()
        hist = v.run.history()
        for j in range(2):
            x, y = v.sigma_plot.data(chain_key(j))
            np.testing.assert_array_equal(x, hist["t"])
            np.testing.assert_allclose(y, hist["sigma"][:, j])
        np.testing.assert_allclose(v.h_plot.data("h")[1], hist["h"])
        v.play()
        v.worker.join(60)
        t = v.run.history()["t"]
        assert v.sigma_plot.x_range[1] >= t[-1] and v.h_plot.data("h")[0][-1] == t[-1]
        first = v.sigma_plot
        v.run.seed = v.run.seed + 1  # a new run: the old one stays on the plot as a fixed line
        assert v.sigma_plot is not first and len(v.runs) == 1
        assert any(item.label.value.startswith("β=0.8") for item in v.sigma_plot.figure.legend[0].items)
    finally:
        v.pause()


def test_the_inverse_plot_shows_what_algorithm_2_recorded(tiny_handle):
    from explorer.ui.inverse_view import InverseView

    v = InverseView(model="tiny-test", size=32, source="synthetic", chains=2, beta=0.5, h0=0.05, sigma_L=0.05)
    try:
        for _ in range(4):
            v.step()
        hist = v.run.history()
        assert hist["t"].size == 4
        for j in range(2):
            x, y = v.sigma_plot.data(chain_key(j))
            np.testing.assert_array_equal(x, hist["t"])
            np.testing.assert_allclose(y, hist["sigma"][:, j])
        labels = [item.label.value for item in v.sigma_plot.figure.legend[0].items]
        assert labels == ["predicted σ̄ₜ", "sample 1", "sample 2"]
    finally:
        v.pause()
