"""explorer.generalization: same-noise sampling, nearest-training cosines, memorization, subset records."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from explorer import generalization as gen
from explorer import generalization_pairs as pairs
from explorer.data.registry import indices_digest, mnist_held_out_digits, mnist_subset_digits, mnist_subsets
from explorer.denoisers import EmpiricalDenoiser, GaussianSmoothing
from explorer.handle import ModelHandle
from explorer.train import subset_record


def empirical(images) -> EmpiricalDenoiser:
    return EmpiricalDenoiser(torch.tensor(np.array(images, dtype=np.float32))[:, None])


@pytest.fixture(scope="module")
def five():
    """Subsets A and B of 5 digits each (seed 0) and their empirical denoisers."""
    a, b = mnist_subset_digits(5, "A"), mnist_subset_digits(5, "B")
    return a, b, empirical(a), empirical(b)


# --------------------------------------------------------------------------- same noise
def test_two_copies_of_one_denoiser_give_identical_samples(tiny_bf_unet):
    run = gen.same_noise_samples([tiny_bf_unet, copy.deepcopy(tiny_bf_unet)], (2, 1, 32, 32), seed=3,
                                 h0=0.05, max_steps=15)
    assert torch.equal(run.images[0], run.images[1])
    assert torch.equal(run.steps[0], run.steps[1]) and run.status[0] == run.status[1]
    assert int(run.steps.max()) > 0
    other = gen.same_noise_samples([tiny_bf_unet], (2, 1, 32, 32), seed=4, h0=0.05, max_steps=15)
    assert not torch.allclose(other.initial, run.initial)  # the seed matters


def test_different_denoisers_share_y0_and_every_injected_noise_even_after_one_stops(five):
    """z_t recovered from each chain's own update, (y_t − y_{t−1} − h_t d_t)/γ_t, is the seed's t-th draw
    for both models at every step either takes, including steps after the other (or a sibling chain) stopped."""
    shape, seed, beta, h0 = (4, 1, 32, 32), 7, 0.5, 0.05
    models = [five[2], GaussianSmoothing()]  # the smoothing filter's chains stop several steps earlier
    states: dict[int, dict[int, tuple]] = {0: {}, 1: {}}

    def hook(i, s):
        states[i][s.t] = (s.y.clone(), s.d.clone(), s.h, s.gamma.clone())

    run = gen.same_noise_samples(models, shape, seed=seed, beta=beta, h0=h0, callback=hook)
    assert run.converged.all()
    stream = gen.noise_stream(seed, shape)
    draws = [next(stream) for _ in range(int(run.steps.max()) + 1)]
    assert torch.allclose(run.initial, 0.5 + draws[0], atol=1e-6)
    steps = run.steps
    assert int(steps[1].max()) < int(steps[0].min())  # model 1 stops while model 0 still runs
    assert len(set(steps[1].tolist())) > 1 or len(set(steps[0].tolist())) > 1  # chains of one model stop apart
    for i in (0, 1):
        prev = run.initial
        for t in range(1, int(steps[i].max()) + 1):
            y, d, h, gamma = states[i][t]
            moved = steps[i] >= t
            z = (y - prev - h * d) / gamma.view(-1, 1, 1, 1)
            assert torch.allclose(z[moved], draws[t][moved], atol=2e-3), (i, t)
            prev = y
    # the final images are those of single-model runs with the same seed: the other model changes nothing
    alone = gen.same_noise_samples([GaussianSmoothing()], shape, seed=seed, beta=beta, h0=h0)
    assert torch.equal(alone.images[0], run.images[1])


# --------------------------------------------------------------------------- similarities
def brute_force_nearest(images: np.ndarray, training: np.ndarray):
    idx, cos = [], []
    for x in images:
        u = x.ravel() - x.mean()
        best, arg = -np.inf, -1
        for j, t in enumerate(training):
            v = t.ravel() - t.mean()
            c = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
            if c > best:
                best, arg = c, j
        idx.append(arg)
        cos.append(best)
    return np.array(idx), np.array(cos)


def test_nearest_training_equals_a_brute_force_loop_and_ignores_offsets_and_scales():
    rng = np.random.default_rng(0)
    training = rng.standard_normal((40, 1, 6, 6))
    images = training[rng.integers(0, 40, 12)] + 0.8 * rng.standard_normal((12, 1, 6, 6))
    found = gen.nearest_training(images, training)
    idx, cos = brute_force_nearest(images, training)
    np.testing.assert_array_equal(found.indices, idx)
    np.testing.assert_allclose(found.cosines, cos, rtol=0, atol=1e-12)
    shifted = gen.nearest_training(torch.tensor(3.0 * images + 7.0), 0.2 * training - 1.5)
    np.testing.assert_array_equal(shifted.indices, idx)
    np.testing.assert_allclose(shifted.cosines, cos, rtol=0, atol=1e-10)
    exact = gen.nearest_training(training[[5, 2]] * 2 + 1, training)
    np.testing.assert_array_equal(exact.indices, [5, 2])
    np.testing.assert_allclose(exact.cosines, 1.0, atol=1e-12)


def test_cosine_similarity_of_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 8, 8)), rng.standard_normal((5, 8, 8))
    expected = [float((x - x.mean()).ravel() @ (y - y.mean()).ravel()
                      / (np.linalg.norm(x - x.mean()) * np.linalg.norm(y - y.mean()))) for x, y in zip(a, b)]
    np.testing.assert_allclose(gen.cosine_similarity(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(gen.cosine_similarity(a, -2 * a + 4), -1.0, atol=1e-12)
    assert gen.cosine_similarity(np.ones((1, 4, 4)), a[:1, :4, :4])[0] == 0.0  # a constant image
    with pytest.raises(ValueError, match="same shape"):
        gen.cosine_similarity(a, b[:3])
    assert gen.memorization_fraction([0.99, 0.95, 0.5, 0.94]) == 0.5
    assert gen.memorization_fraction(torch.tensor([0.2, 0.97]), threshold=0.9) == 0.5


# --------------------------------------------------------------------------- memorization
def test_the_empirical_denoiser_memorizes_and_disjoint_memorizers_disagree(five):
    a, b, ea, eb = five
    run = gen.same_noise_samples([ea, eb], (8, 1, 32, 32), seed=0, beta=0.5, h0=0.05)
    assert run.converged.all()
    near_a = gen.nearest_training(run.samples(0), a)
    near_b = gen.nearest_training(run.samples(1), b)
    assert gen.memorization_fraction(near_a.cosines) >= 0.9
    assert gen.memorization_fraction(near_b.cosines) >= 0.9
    # each memorizer returns its own digits, so from the same noise the two do not agree
    assert np.median(gen.pair_similarity(run, 0, 1)) < 0.9
    assert gen.nearest_training(run.samples(0), b).cosines.max() < 0.95
    assert len(set(near_a.indices.tolist())) > 1  # different seeds' chains land on different digits


def test_psnr_gap_of_a_memorizer_is_large_and_positive(five):
    a, _, ea, _ = five
    held = mnist_held_out_digits()[:5]
    g = gen.psnr_gap(ea, a, held, sigma=0.2, seed=0)
    assert g.training > 25 and g.gap > 10 and g.gap == pytest.approx(g.training - g.held_out)
    smooth = gen.psnr_gap(GaussianSmoothing(), a, held, sigma=0.2)
    assert abs(smooth.gap) < 5  # a filter that saw nothing has no gap to speak of


# --------------------------------------------------------------------------- subsets from cards
def test_subsets_rebuild_from_card_records_and_tampering_is_refused():
    for n in (3, 150):  # with and without the explicit index list
        ra, rb = subset_record(n, "A", 0), subset_record(n, "B", 0)
        ia, ib = pairs.subset_from_record(ra), pairs.subset_from_record(rb)
        a, b = mnist_subsets(n, 0)
        np.testing.assert_array_equal(ia, a)
        np.testing.assert_array_equal(ib, b)
        assert len(ia) == n and np.intersect1d(ia, ib).size == 0
        np.testing.assert_array_equal(pairs.subset_from_record(dict(ra)), ia)  # reproducible
    bad = dict(subset_record(10, "A", 0), sha256=indices_digest(mnist_subsets(10, 1)[0]))
    with pytest.raises(pairs.SubsetRecordError, match="sha256"):
        pairs.subset_from_record(bad)
    swapped = dict(subset_record(10, "A", 0), indices=subset_record(10, "B", 0)["indices"])
    with pytest.raises(pairs.SubsetRecordError, match="indices differ"):
        pairs.subset_from_record(swapped)
    with pytest.raises(pairs.SubsetRecordError, match="lacks sha256"):
        pairs.subset_from_record({"size": 10, "part": "A", "seed": 0})


def fake_model(n: int, part: str, record=None) -> ModelHandle:
    card = {"name": f"gen-mnist-N{n}-{part}", "training": {"subset": record or subset_record(n, part, 0)}}
    return ModelHandle(GaussianSmoothing(), device="cpu", card=card)


def test_pair_from_handles_verifies_subsets_and_builds_the_memorizing_reference():
    pair = pairs.pair_from_handles(4, fake_model(4, "A"), fake_model(4, "B"))
    np.testing.assert_array_equal(pair.indices["A"], mnist_subsets(4, 0)[0])
    np.testing.assert_array_equal(pair.training["B"], mnist_subset_digits(4, "B"))
    x = torch.tensor(np.array(pair.training["A"]))[:, None]
    assert torch.allclose(pair.reference.denoise(x, None), x, atol=1e-3)  # it knows A's digits exactly
    tampered = dict(subset_record(4, "B", 0), sha256="0" * 64)
    with pytest.raises(pairs.SubsetRecordError, match="sha256"):
        pairs.pair_from_handles(4, fake_model(4, "A"), fake_model(4, "B", tampered))
    with pytest.raises(pairs.SubsetRecordError, match="expected 'B'"):
        pairs.pair_from_handles(4, fake_model(4, "A"), fake_model(4, "A"))
    cards = [{"name": n} for n in ("gen-mnist-N10-A", "gen-mnist-N10-B", "gen-mnist-N100-A", "bf-mnist",
                                   "gen-mnist-N1-B", "gen-mnist-N1-A")]
    assert pairs.published_sizes(cards) == [1, 10]


def test_summarize_and_table_on_a_fake_pair():
    pair = pairs.pair_from_handles(3, fake_model(3, "A"), fake_model(3, "B"))
    s = pairs.summarize(pair, seeds=[0, 1], h0=0.05, psnr_images=4)
    assert s.pair.shape == (2,) and s.nearest["reference"].cosines.min() > 0.95  # the reference memorizes A
    assert np.allclose(s.pair, 1.0)  # "A" and "B" are the same filter here, so they agree exactly
    assert s.psnr["A"].training_count == 3 and s.psnr["A"].held_out_count == 4
    table = pairs.markdown_table([s]).splitlines()
    assert len(table) == 3 and table[2].startswith("| 3 | 2 | 1.000 |")


def test_load_pair_reads_published_cards_and_refuses_a_tampered_one(tmp_path, monkeypatch, tiny_bf_unet):
    from explorer.checkpoints import save_model

    from explorer import checkpoints

    monkeypatch.setenv("EXPLORER_MODELS", str(tmp_path))
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "no-shipped-models")  # the real pairs stay out
    for part in "AB":
        save_model(tiny_bf_unet, "unet", tmp_path, f"gen-mnist-N2-{part}", training={"subset": subset_record(2, part, 0)})
    save_model(tiny_bf_unet, "unet", tmp_path, "gen-mnist-N7-A", training={"subset": subset_record(7, "A", 0)})
    assert pairs.published_sizes() == [2]
    pair = pairs.load_pair(2)
    np.testing.assert_array_equal(pair.indices["B"], mnist_subsets(2, 0)[1])
    assert pair.models["A"].name == "gen-mnist-N2-A" and pair.reference.name == "empirical-N2-A"
    card = tmp_path / "gen-mnist-N2-B.json"
    text = card.read_text().replace(subset_record(2, "B", 0)["sha256"], "f" * 64)
    card.write_text(text)
    with pytest.raises(pairs.SubsetRecordError, match="sha256"):
        pairs.load_pair(2, device="cpu", dtype=torch.float64)  # another dtype: not the cached handle
