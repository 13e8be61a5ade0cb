"""SamplerView and its SamplerRun without a browser: buttons, parameters, background run, scrubber, downloads,
and the first-contact fixes of issue #15 (training size, bounded inputs, plot ranges, diverged chains)."""
from __future__ import annotations

import io
import json
import time
from types import SimpleNamespace

import numpy as np
import panel as pn
import pytest
import torch

from explorer.sampling import predicted_steps
from explorer.ui.models import register_handle
from explorer.ui.sampler_state import SamplerRun, size_warning, sizes_for, training_size
from explorer.ui.sampler_view import SamplerView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def view(tiny_handle):
    v = SamplerView(model="tiny-test", size=32, chains=2, h0=0.05, beta=0.8, sigma_L=0.05)
    yield v
    v.pause()


def noisy_handle(name: str = "noisy-test", patch: int | None = None) -> SimpleNamespace:
    """A 'denoiser' whose residual is fresh noise of std 0.1: σ_t stays near 0.1, so it never reaches σ_L = 0.05."""
    card = {"name": name, **({"training": {"patch": patch}} if patch else {})}
    return SimpleNamespace(name=name, card=card, channels=1, blind=True, device="cpu", dtype=torch.float32,
                           denoise=lambda y, sigma=None: y + 0.1 * torch.randn_like(y))


def test_step_advances_t_and_changes_y(view):
    view.run.sigma_L = 0.01
    y0 = view.sampler.state.y.clone()
    assert view.sampler.t == 0
    view.controls.step_clicks += 1  # the Step button
    assert view.sampler.t == 1
    assert not torch.allclose(view.sampler.state.y, y0)
    hist = view.run.history()
    assert hist["t"].tolist() == [1] and hist["sigma"].shape == (1, 2)
    assert "step t = 1" in view.stats.object
    view.controls.step_clicks += 1
    assert view.sampler.t == 2


def test_reset_clears_and_keeps_the_old_run_for_the_overlay(view):
    for _ in range(3):
        view.step()
    view.controls.reset_clicks += 1
    assert view.sampler.t == 0 and view.run.history()["t"].size == 0
    assert len(view.runs) == 1 and view.runs[0]["sigma"].shape == (3, 2)
    assert "3 steps" in view.runs[0]["label"]
    view.clear_runs()
    assert view.runs == []


def test_parameters_flow_into_the_sampler(view):
    view.run.beta = 0.3
    assert view.sampler.beta == pytest.approx(0.3)
    view.run.h0 = 0.02
    view.run.sigma0 = 0.7
    view.run.seed = 5
    view.run.chains = 3
    view.run.size = 64
    s = view.sampler
    assert (s.h0, s.sigma0, s.seed, s.shape) == (pytest.approx(0.02), pytest.approx(0.7), 5, (3, 1, 64, 64))
    assert len(view.chain_images) == 3  # one pair of panes per chain
    view.run.seed = 5  # same seed, same start: the sampler is deterministic
    y = view.sampler.state.y.clone()
    view.reset()
    assert torch.equal(view.sampler.state.y, y)
    assert SamplerView(model="tiny-test", size=32, batch=4).run.chains == 4  # the old name still works


def test_play_runs_in_the_background_and_pause_stops_it(view):
    view.run.max_steps = 100000
    view.run.param.update(beta=0.05, h0=0.001, sigma_L=0.002)  # long run
    assert view.run.predicted_steps > 500
    view.controls.play_clicks += 1
    assert view.worker.running and view.controls.running and view.run.playing
    deadline = time.monotonic() + 30
    while view.sampler.t < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert view.sampler.t >= 3
    view.controls.pause_clicks += 1  # stop: joins the thread and shows the last state
    assert not view.worker.running and not view.controls.running and not view.run.playing
    t = view.sampler.t
    time.sleep(0.2)
    assert view.sampler.t == t  # really stopped
    assert f"step t = {t}" in view.stats.object and "Paused" in view.controls.status


def test_play_to_the_end(view):
    view.controls.play_clicks += 1
    view.worker.join(60)
    assert view.sampler.done
    assert view.controls.progress == 100 and "Finished" in view.controls.status
    sig = view.run.history()["sigma"]
    assert sig.shape[1] == 2 and np.nanmin(sig) <= view.run.sigma_L
    # the scrubber covers the recorded snapshots and shows them
    n = len(view.snapshots())
    assert view.param.scrub.bounds == (0, n - 1) and not view.scrubber.disabled
    view.scrub = 0
    assert "t = 0" in view.scrub_label.object


def test_changing_a_parameter_while_playing_stops_the_run(view):
    view.run.max_steps = 100000
    view.run.param.update(beta=0.05, h0=0.001, sigma_L=0.002)
    view.play()
    view.run.beta = 0.9
    assert not view.worker.running and view.sampler.t == 0 and view.sampler.beta == pytest.approx(0.9)


def test_the_run_state_works_without_panel(tiny_handle):
    run = SamplerRun(size=32, chains=2, h0=0.05, beta=0.8, sigma_L=0.05)
    assert run.reset(tiny_handle) is not None and run.t == 0
    assert run.step().t == 1 and run.history()["sigma"].shape == (1, 2)
    assert run.play() and run.playing
    run.join(60)
    assert run.done and not run.playing and run.chain_steps() == run.sampler.result().steps.tolist()
    assert run.predicted_steps == predicted_steps(1.0, 0.05, 0.8, 0.05, 2000)
    assert "steps ×" in run.expected_time_text()


def test_energy_hook_shows_nll_when_a_model_exists(view, monkeypatch):
    class Energy:
        def nll(self, x):
            return torch.arange(x.shape[0], dtype=torch.float32) + 100.0

    # a denoiser without a training record: the first catalog energy model of the image size (32×32), only for it
    found = view.run.energy_model()
    assert found is not None and found.card["name"] == "energy-mnist" and hasattr(found, "nll")
    # one with a record: the energy model of the same training data, or none (another data set's density)
    card = view.run.handle.card
    for data, expected in (("../shared/data/bsd/Train400", "energy-natural-gray"), ("mnist", "energy-mnist"), ("discs", None)):
        monkeypatch.setattr(view.run.handle, "card", {**card, "training": {"data": data}})
        found = view.run.energy_model()
        assert (found.card["name"] if found else None) == expected, data
    monkeypatch.setattr(view.run.handle, "card", card)
    view.run.size = 64
    assert view.run.energy_model() is None
    view.run.size = 32
    monkeypatch.setattr(view.run, "energy_model", lambda: Energy())
    view.play()
    view.worker.join(60)
    assert view.run.energy == [100.0, 101.0]
    assert "−log p" in view.chain_table.object and "101.0" in view.chain_table.object


def test_downloads_and_render(view):
    view.step()
    assert view.png().getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    z = np.load(io.BytesIO(view.npz().getvalue()))
    assert z["x_hat"].shape == (2, 1, 32, 32) and z["sigma"].shape == (1, 2)
    params = json.loads(str(z["params"]))
    assert params["beta"] == pytest.approx(0.8) and params["chains"] == 2
    pn.panel(view).get_root()  # the whole view renders to bokeh models
    view.template()


def test_bad_model_is_reported_not_raised(tiny_handle):
    v = SamplerView(model="no-such-model", size=32)
    assert v.sampler is None and "no-such-model" in v.controls.status
    v.step()  # harmless
    v.picker.model = "tiny-test"
    assert v.sampler is not None


def test_a_diverged_chain_shows_no_energy(view, tiny_handle, monkeypatch):
    """#15 item 9: a chain that blows up gets no −log p (the table once showed −4 396 557 312 nats for one):
    "diverged" in the table, NaN in the NPZ, no nll_nats on the shelf; the converged chain keeps its energy."""
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
    monkeypatch.setattr(view.run, "energy_model", lambda: Energy())
    view.reset(archive=False)
    view.play()
    view.worker.join(60)
    assert view.sampler.done and view.sampler.status == ["diverged", "converged"]
    assert view.run.energy == [None, 101.0]
    assert view.run.energy_cell(0) == "diverged" and view.run.energy_cell(1) == "101.0"
    table = view.chain_table.object
    assert "4396557312" not in table and "-4.4e+09" not in table.lower() and "e+09" not in table
    row0 = next(r for r in table.splitlines() if r.startswith("| 1 |"))
    assert row0.rstrip(" |").endswith("diverged") and "101.0" in table
    z = np.load(io.BytesIO(view.npz().getvalue()))
    assert np.isnan(z["nll"][0]) and z["nll"][1] == pytest.approx(101.0)
    captured = {}
    monkeypatch.setattr("explorer.ui.samples.keep_samples", lambda x, params, chains: captured.setdefault("c", chains) and [])
    view.keep_samples()
    assert "nll_nats" not in captured["c"][0] and captured["c"][1]["nll_nats"] == pytest.approx(101.0)


# ---------------------------------------------------------------- issue #15
def test_the_image_size_defaults_to_the_models_training_size_and_other_sizes_warn(tiny_handle):
    """#15 item 2: bf-mnist at 64×64 diverged with no hint that it was trained on 32×32."""
    register_handle("mnist-like", noisy_handle("mnist-like", patch=32))
    register_handle("patch-40", noisy_handle("patch-40", patch=40))
    v = SamplerView(model="mnist-like")
    assert v.run.size == 32 and v.sampler.shape[-1] == 32 and not v.size_alert.visible
    v.run.size = 64
    assert v.size_alert.visible and "trained on 32×32" in v.size_alert.object and "64×64" in v.size_alert.object
    v.run.size = 32
    assert not v.size_alert.visible
    v.picker.model = "patch-40"  # the size follows the model (it was the old model's default) ...
    assert v.run.size == 40 and 40 in v.run.param.size.objects and not v.size_alert.visible
    v.run.size = 128
    v.picker.model = "mnist-like"  # ... until another size is chosen: then it stays, with the warning
    assert v.run.size == 128 and v.size_alert.visible
    # no card (classical, exact, registered handles): the old default, no warning
    assert training_size(tiny_handle) is None and size_warning(tiny_handle, 256) == ""
    assert SamplerView(model="tiny-test").run.size == 64 and sizes_for(tiny_handle) == [32, 64, 128, 256]


def test_numeric_inputs_state_their_range_and_clamp(view):
    """#15 item 3: seed, chains, max steps say their valid range and clamp what is out of it, visibly."""
    fields = {w.name.split(" (")[0]: w for w in view.sidebar().select(pn.widgets.IntInput)}
    assert set(fields) >= {"Chains", "Seed", "Max steps"}
    assert fields["Chains"].name == "Chains (1–8)" and fields["Seed"].name.startswith("Seed (0–")
    fields["Chains"].value = 50
    assert fields["Chains"].value == 8 and view.run.chains == 8 and view.sampler.shape[0] == 8
    fields["Seed"].value = -3
    assert fields["Seed"].value == 0 and view.run.seed == 0


def test_the_sigma_plot_extends_with_a_long_run_and_never_flips():
    """#15 item 9: a run of 1017 steps against ≈107 predicted ran off the plot; σ_L > σ₀ flipped the axis."""
    register_handle("noisy-test", noisy_handle())
    v = SamplerView(model="noisy-test", size=32, chains=1, h0=0.05, beta=0.8, sigma_L=0.05, max_steps=150)
    predicted = v.run.predicted_steps
    assert predicted < 60 and v.run.x_range()[1] <= predicted + 7
    v.play()
    v.worker.join(60)
    assert v.sampler.t == 150 and v.sampler.status == ["max_steps"]
    assert v.run.x_range()[1] > 150  # the plot's x-range covers the whole run
    v.run.param.update(sigma0=0.05, sigma_L=0.1)  # refused by the sampler, but the plot keeps its orientation
    low, high = v.run.sigma_range()
    assert v.sampler is None and "sigma_L" in v.controls.status and 0 < low < high
    assert low <= 0.05 and high >= 0.1


def test_the_ready_line_shows_the_expected_time(view):
    """#15 item 11: the expected run time (steps × one measured denoiser call) is shown before the run."""
    text = view.controls.status
    assert f"≈ {view.run.predicted_steps} steps ×" in text and "expected" in text
