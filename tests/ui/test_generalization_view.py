"""The Generalization tool without a browser: GeneralizationState on fake pairs (two copies of a tiny
denoiser with subset records, in a temporary EXPLORER_MODELS catalog), the view, its downloads, and
the message when no pair exists."""
from __future__ import annotations

import dataclasses
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

import explorer.checkpoints as checkpoints
from explorer.checkpoints import save_model
from explorer.data.registry import mnist_subsets
from explorer.train import subset_record
from explorer.ui.generalization_state import NO_PAIR, GeneralizationState
from explorer.ui.generalization_view import GeneralizationView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZES = (2, 3)
FAST = dict(h0=0.05, max_steps=300)  # a few dozen steps per chain


@pytest.fixture
def empty_catalog(tmp_path, monkeypatch):
    """No published model and no run folder: only what a test writes into ``tmp/models`` exists."""
    for name in ("models", "runs", "pretrained"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("EXPLORER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "pretrained")
    return tmp_path / "models"


@pytest.fixture
def fake_pairs(empty_catalog, tiny_handle):
    """gen-mnist-N{2,3}-{A,B}: the same tiny denoiser saved four times, each card with its subset record."""
    for n in SIZES:
        for part in "AB":
            save_model(tiny_handle.model, "dncnn", empty_catalog, f"gen-mnist-N{n}-{part}",
                       training={"data": "mnist", "subset": subset_record(n, part, 0), "steps": 10})
    return empty_catalog


@pytest.fixture
def state(fake_pairs):
    return GeneralizationState(**FAST)


def test_the_state_finds_the_published_pairs(state):
    assert state.sizes == list(SIZES) and state.source == "published" and state.message == ""
    assert state.N == SIZES[0] and state.param.N.objects == list(SIZES)
    assert "Published" in state.source_text()


def test_same_noise_end_to_end_identical_models_agree_and_the_empirical_sample_is_a_training_digit(state):
    state.seed = 5
    r = state.run()
    assert r is state.result and r.n == 2 and r.seed == 5
    # A and B are the same network: from the same noise they must return the very same image
    np.testing.assert_array_equal(r.samples["A"], r.samples["B"])
    assert r.pair_cos == pytest.approx(1.0, abs=1e-9)
    assert r.steps["A"] == r.steps["B"] > 0
    # the empirical denoiser of A memorizes: its sample is one of A's digits
    assert r.nearest_cos["empirical"] >= 0.95
    assert r.nearest_digit["empirical"] in mnist_subsets(2, 0)[0].tolist()
    a, b = mnist_subsets(2, 0)
    assert r.nearest_digit["A"] in a.tolist() and r.nearest_digit["B"] in b.tolist()  # each its own set
    assert r.samples["A"].shape == (32, 32) and r.nearest["A"].shape == (32, 32)
    # another seed is another noise
    state.seed = 6
    assert not np.array_equal(state.run().samples["A"], r.samples["A"])


def test_a_run_reports_progress_and_the_settings(state):
    seen = []
    r = state.run(progress=lambda f, text: seen.append((f, text)))
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, "done")
    assert all(0 <= f <= 1 for f, _ in seen)
    assert r.settings == dict(N=2, seed=0, beta=0.5, h0=0.05, sigma_L=0.01, max_steps=300)


def test_the_sweep_accumulates_seeds_over_every_n(state):
    state.extend_sweep(2)
    t = state.sweep_table()
    assert t["N"].tolist() == list(SIZES) and t["seeds"].tolist() == [2, 2] and state.sweep_seed_count == 2
    np.testing.assert_allclose(t["pair_cos"], 1.0, atol=1e-9)  # identical models, every seed
    assert (t["nearest_empirical"] >= 0.95).all()
    for k in ("psnr_train_A", "psnr_held_A", "psnr_train_B", "psnr_held_B"):
        assert np.isfinite(t[k]).all()
    state.extend_sweep(3)
    assert state.sweep_table()["seeds"].tolist() == [5, 5]
    assert [e.seeds for e in state.sweep.values()] == [[0, 1, 2, 3, 4]] * 2  # seeds 0, 1, 2, … in order
    state.beta = 0.6  # another setting: a new sweep
    assert state.sweep_seed_count == 0 and len(state.sweep_table()["N"]) == 0


def test_the_view_builds_runs_and_sweeps(state):
    view = GeneralizationView(state)
    assert view.__panel__() is not None and view.template() is not None
    assert state.result is not None and view.error == ""  # the first seed ran while building
    state.seed = 3  # a change of seed samples again
    assert state.result.seed == 3
    state.param.update(seed=4, beta=0.4)  # several settings at once (one batch of events): one run of the new ones
    assert (state.result.seed, state.result.settings["beta"]) == (4, 0.4)
    assert "cos = " in state.image_panels()[1][0]
    view.sweep()
    view.worker.join(120)
    assert state.sweep_seed_count == 16


def test_downloads_hold_the_images_and_arrays(state):
    view = GeneralizationView(state)
    png = Image.open(view.png())
    assert png.format == "PNG" and png.width > 5 * 192
    data = np.load(io.BytesIO(view.npz().getvalue()))
    for k in ("sample_A", "sample_B", "sample_empirical", "nearest_A", "nearest_B", "initial"):
        assert data[k].shape == (32, 32)
    np.testing.assert_array_equal(data["sample_A"], state.result.samples["A"])
    assert float(data["pair_cos"]) == pytest.approx(state.result.pair_cos)
    params = json.loads(str(data["params"]))
    assert params["N"] == 2 and params["seed"] == 0 and params["psnr_sigma"] == 0.2
    assert view.state.basename() == "generalization_N2_seed0_beta0.5_h00.05"


def test_no_pair_is_a_message_not_a_crash(empty_catalog):
    state = GeneralizationState()
    assert state.sizes == [] and state.source == "none" and state.N is None
    assert state.message == NO_PAIR and "scripts/train_generalization.sh" in state.message
    assert state.run() is None and state.extend_sweep() == {}
    view = GeneralizationView(state)
    view.__panel__()
    view.run()
    view.sweep()
    assert view.state.result is None
    assert np.load(io.BytesIO(view.npz().getvalue()))["params"].size == 1
    Image.open(view.png())  # a placeholder PNG


def test_an_unverifiable_subset_is_reported(fake_pairs):
    card = fake_pairs / "gen-mnist-N2-B.json"
    card.write_text(card.read_text().replace(subset_record(2, "B", 0)["sha256"], "f" * 64))
    state = GeneralizationState(**FAST)
    view = GeneralizationView(state)
    assert state.result is None and "sha256" in view.error


def test_a_sweep_whose_settings_change_midway_keeps_no_stale_seeds(state):
    state.extend_sweep(2)

    def change(_f, text):
        if "seed" in text and state.beta == 0.5:
            state.beta = 0.7  # β changes while the sweep runs (a user typing during a served sweep)

    state.extend_sweep(2, progress=change)
    assert state.sweep_settings["beta"] == 0.7
    assert all(not e.seeds for e in state.sweep.values())  # nothing sampled at β = 0.5 leaks into the new sweep
    state.extend_sweep(1)
    assert state.sweep_table()["seeds"].tolist() == [1, 1]


def test_look_again_finds_a_pair_that_appeared(empty_catalog, tiny_handle):
    state = GeneralizationState(**FAST)
    view = GeneralizationView(state)
    assert not state.available
    for part in "AB":
        save_model(tiny_handle.model, "dncnn", empty_catalog, f"gen-mnist-N4-{part}",
                   training={"data": "mnist", "subset": subset_record(4, part, 0)})
    view.rescan()
    assert state.sizes == [4] and state.N == 4 and state.result is not None and state.result.n == 4


def test_a_half_pair_is_named_in_the_message(empty_catalog, tiny_handle):
    save_model(tiny_handle.model, "dncnn", empty_catalog, "gen-mnist-N10-A",
               training={"data": "mnist", "subset": subset_record(10, "A", 0)})
    state = GeneralizationState()
    assert not state.available and state.message.startswith(NO_PAIR) and "gen-mnist-N10-A" in state.message


def test_the_verdict_names_what_the_cosines_say(state):
    from explorer.ui.generalization_state import verdict_text

    r = state.run()
    def with_(pair, a, b, status="converged"):
        return dataclasses.replace(r, pair_cos=pair, nearest_cos=dict(r.nearest_cos, A=a, B=b),
                                   status=dict(r.status, B=status))
    assert "generalization" in verdict_text(with_(0.99, 0.6, 0.5))
    assert "copy of a training digit of A" in verdict_text(with_(0.99, 0.99, 0.5))
    assert "memorization" in verdict_text(with_(0.3, 0.99, 0.98))
    assert "only B's sample" in verdict_text(with_(0.3, 0.5, 0.98))
    assert "diverged" in verdict_text(with_(0.99, 0.6, 0.5, "diverged"))


@pytest.mark.browser
def test_the_served_app_runs_and_sweeps_in_a_browser(served_app, browser_page):
    """``panel serve apps/generalization.py`` on the published pairs, short chains from the link
    (σ_L = 0.2, h₀ = 0.1: a few dozen steps each, so the sweep over every N stays short): a seed runs at
    load, a sweep shows its progress and stops on Stop with the seeds it has (the button then adds more),
    no traceback and no console error."""
    page = browser_page
    url = served_app("apps/generalization.py")
    page.goto(url + "?sigma_L=0.2&h0=0.1")
    page.wait_for_selector("text=/Done: N = \\d+, seed 0/", timeout=120_000)
    assert page.locator("text=cos(x_A, x_B) =").count()
    page.get_by_role("button", name="Sweep 16 seeds").click()
    page.wait_for_selector("text=/Sweep: N = \\d+: seed 1 \\(2 of 16\\)/", timeout=120_000)  # progress shown
    page.get_by_role("button", name="■ Stop").click()  # (a finished sweep is checked without a browser)
    page.wait_for_selector("text=/Sweep stopped after/", timeout=120_000)
    # the button is free again: "Add 16 seeds" once every N has a seed, else "Sweep 16 seeds"
    again = page.get_by_role("button", name=re.compile(r"^(Add|Sweep) 16 seeds$"))
    again.wait_for(timeout=30_000)
    page.wait_for_function("(el) => !el.disabled", arg=again.element_handle(), timeout=30_000)
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert "Traceback" not in served_app.logs(), served_app.logs()[-3000:]
