"""SamplerView without a browser: buttons, parameters, background run, scrubber, downloads."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import panel as pn
import pytest
import torch

from explorer.ui.plots import predicted_steps
from explorer.ui.sampler_view import SamplerView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def view(tiny_handle):
    v = SamplerView(model="tiny-test", size=32, batch=2, h0=0.05, beta=0.8, sigma_L=0.05)
    yield v
    v.worker.stop(wait=True)


def test_step_advances_t_and_changes_y(view):
    view.sigma_L = 0.01
    y0 = view.sampler.state.y.clone()
    assert view.sampler.t == 0
    view.controls.step_clicks += 1  # the Step button
    assert view.sampler.t == 1
    assert not torch.allclose(view.sampler.state.y, y0)
    assert view._hist_t == [1] and len(view._hist_sigma) == 1
    assert "step t = 1" in view._stats.object
    view.controls.step_clicks += 1
    assert view.sampler.t == 2


def test_reset_clears_and_keeps_the_old_run_for_the_overlay(view):
    for _ in range(3):
        view.step()
    view.controls.reset_clicks += 1
    assert view.sampler.t == 0 and view._hist_t == [] and view._hist_sigma == []
    assert len(view.runs) == 1 and view.runs[0]["sigma"].shape == (3, 2)
    assert "3 steps" in view.runs[0]["label"]
    view.clear_runs()
    assert view.runs == []


def test_parameters_flow_into_the_sampler(view):
    view.beta = 0.3
    assert view.sampler.beta == pytest.approx(0.3)
    view.h0 = 0.02
    view.sigma0 = 0.7
    view.seed = 5
    view.batch = 3
    view.size = 64
    s = view.sampler
    assert (s.h0, s.sigma0, s.seed, s.shape) == (pytest.approx(0.02), pytest.approx(0.7), 5, (3, 1, 64, 64))
    assert len(view._y_panes) == 3  # one pane per chain
    # same seed, same start: the sampler is deterministic
    view.seed = 5
    y = view.sampler.state.y.clone()
    view.reset()
    assert torch.equal(view.sampler.state.y, y)


def test_play_runs_in_the_background_and_pause_stops_it(view):
    view.max_steps = 100000
    view.beta, view.h0, view.sigma_L = 0.05, 0.001, 0.002  # long run
    assert predicted_steps(view.sigma0, view.h0, view.beta, view.sigma_L) > 500
    view.controls.play_clicks += 1
    assert view.worker.running and view.controls.running
    deadline = time.monotonic() + 30
    while view.sampler.t < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert view.sampler.t >= 3
    view.controls.pause_clicks += 1  # stop: joins the thread and shows the last state
    assert not view.worker.running and not view.controls.running
    t = view.sampler.t
    time.sleep(0.2)
    assert view.sampler.t == t  # really stopped
    assert view._shown_t == t and f"step t = {t}" in view._stats.object
    assert "Paused" in view.controls.status


def test_play_to_the_end(view):
    view.controls.play_clicks += 1
    view.worker.join(60)
    assert view.sampler.done
    assert view.controls.progress == 100 and "Finished" in view.controls.status
    sig = np.stack(view._hist_sigma)
    assert sig.shape[1] == 2 and np.nanmin(sig) <= view.sigma_L
    # the scrubber covers the recorded snapshots and shows them
    n = len(view.snapshots())
    assert view.param.scrub.bounds == (0, n - 1) and not view._scrubber.disabled
    view.scrub = 0
    assert "t = 0" in view._scrub_label.object


def test_changing_a_parameter_while_playing_stops_the_run(view):
    view.max_steps = 100000
    view.beta, view.h0, view.sigma_L = 0.05, 0.001, 0.002
    view.play()
    view.beta = 0.9
    assert not view.worker.running and view.sampler.t == 0 and view.sampler.beta == pytest.approx(0.9)


def test_energy_hook_shows_nll_when_a_model_exists(view, monkeypatch):
    class Energy:
        def nll(self, x):
            return torch.arange(x.shape[0], dtype=torch.float32) + 100.0

    # the catalog's energy model is found for its image size (energy-mnist: 32×32) and only for it
    found = view.energy_model()
    assert found is not None and found.card["name"] == "energy-mnist" and hasattr(found, "nll")
    view.size = 64
    assert view.energy_model() is None
    view.size = 32
    monkeypatch.setattr(view, "energy_model", lambda: Energy())
    view.play()
    view.worker.join(60)
    assert view.energy == [100.0, 101.0]
    assert "−log p" in view._chain_table.object and "101.0" in view._chain_table.object


def test_downloads_and_render(view):
    view.step()
    png = view._png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    z = np.load(io.BytesIO(view._npz().getvalue()))
    assert z["x_hat"].shape == (2, 1, 32, 32) and z["sigma"].shape == (1, 2)
    assert json.loads(str(z["params"]))["beta"] == pytest.approx(0.8)
    pn.panel(view).get_root()  # the whole view renders to bokeh models
    view.template()


def test_bad_model_is_reported_not_raised(tiny_handle):
    v = SamplerView(model="no-such-model", size=32)
    assert v.sampler is None and "no-such-model" in v.controls.status
    v.step()  # harmless
    v.picker.model = "tiny-test"
    assert v.sampler is not None


def test_a_diverged_chain_shows_no_energy(view, tiny_handle, monkeypatch):
    """A chain that blows up gets no −log p (the table once showed −4 396 557 312 nats for one): a dash with
    its status in the table, NaN in the NPZ, no nll_nats on the shelf; the converged chain keeps its energy."""
    class Energy:
        def nll(self, x):  # what an energy model says of a blown-up image: a huge meaningless number
            return torch.tensor([-4396557312.0, 101.0])[: x.shape[0]]

    denoise = tiny_handle.denoise
    calls = []

    def chain_0_blows_up(y, sigma=None):
        out = denoise(y, sigma)
        calls.append(len(out))
        if len(calls) > 2 and len(out) == 2:  # both chains running: x̂ of chain 0 jumps far away, so its
            out[0] += 1e3                     # next σ_t exceeds the divergence limit (10·σ₀)
        return out

    monkeypatch.setattr(tiny_handle, "denoise", chain_0_blows_up)
    monkeypatch.setattr(view, "energy_model", lambda: Energy())
    view.reset(archive=False)
    view.play()
    view.worker.join(60)
    assert view.sampler.done and view.sampler.status == ["diverged", "converged"]
    assert view.energy == [None, 101.0]
    table = view._chain_table.object
    assert "4396557312" not in table and "-4.4e+09" not in table.lower()
    assert "— (not converged: diverged)" in table and "101.0" in table
    z = np.load(io.BytesIO(view._npz().getvalue()))
    assert np.isnan(z["nll"][0]) and z["nll"][1] == pytest.approx(101.0)
    captured = {}
    monkeypatch.setattr("explorer.ui.samples.keep_samples", lambda x, params, chains: captured.setdefault("c", chains) and [])
    view.keep_samples()
    assert "nll_nats" not in captured["c"][0] and captured["c"][1]["nll_nats"] == pytest.approx(101.0)
