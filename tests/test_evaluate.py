"""The benchmark: metrics, the noise protocol, exact PSNRs of denoisers whose answer is known, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from explorer.checkpoints import read_card, save_model, sha256_file
from explorer.denoisers import Denoiser, DnCNN
from explorer.evaluate import BM3D, evaluate_models, main, noisy_image
from explorer.handle import ModelHandle
from explorer.metrics import psnr, ssim


class Identity(Denoiser):
    """x̂(y) = y: its error is the noise itself (up to clamping)."""

    blind = True

    def forward(self, y, sigma=None):
        return y


class Constant(Denoiser):
    """x̂(y) = c everywhere: its error does not depend on the noise at all."""

    blind = True

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, y, sigma=None):
        return torch.full_like(y, self.c)


class SigmaSpy(Denoiser):
    """Records the σ it is given; returns y."""

    def __init__(self, blind: bool):
        super().__init__()
        self.blind = blind
        self.seen: list = []

    def forward(self, y, sigma=None):
        self.seen.append(None if sigma is None else float(torch.as_tensor(sigma).flatten()[0]))
        return y


def handle(model: Denoiser, name: str) -> ModelHandle:
    return ModelHandle(model, device="cpu", name=name)


# --- metrics ----------------------------------------------------------------------------------------


def test_psnr_of_a_known_error():
    x = np.zeros((8, 8))
    assert psnr(x + 0.1, x) == pytest.approx(20.0)
    assert psnr(torch.full((1, 1, 8, 8), 0.01), torch.zeros(1, 1, 8, 8)) == pytest.approx(40.0)
    assert psnr(x + 2.55, x, data_range=255) == pytest.approx(40.0)
    assert psnr(x, x) == math.inf


def test_ssim_is_the_wang_et_al_index():
    rng = np.random.default_rng(0)
    x = rng.random((40, 48))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, y) == pytest.approx(ssim(y, x))
    assert 0 < ssim(y, x) < 1
    ref = structural_similarity(y, x, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(torch.from_numpy(y)[None, None], torch.from_numpy(x)) == pytest.approx(ref)
    rgb = rng.random((40, 48, 3))
    assert ssim(torch.from_numpy(rgb).permute(2, 0, 1), rgb) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(x, x[:-1])


# --- protocol -----------------------------------------------------------------------------------------


def test_noise_is_fixed_per_image_and_sigma():
    x = np.full((16, 16), 0.5, dtype=np.float32)
    a = noisy_image(x, 25 / 255, seed=0, index=3)
    assert np.array_equal(a, noisy_image(x, 25 / 255, seed=0, index=3))
    assert not np.array_equal(a, noisy_image(x, 25 / 255, seed=0, index=4))
    assert not np.array_equal(a, noisy_image(x, 25 / 255, seed=1, index=3))
    b = noisy_image(x, 50 / 255, seed=0, index=3)
    assert not np.allclose((a - x) / 25, (b - x) / 50)  # independent draws per σ


def test_identity_denoiser_scores_the_noise_level():
    """x = 0.5, σ = 0.01: clamping is 50σ away, so PSNR = 10 log10(1/mean(σ²z²)) ≈ −20 log10 σ = 40 dB.

    With N = 2 · 256² pixels, mean(z²) has relative sd √(2/N) ≈ 0.4 %, i.e. 0.017 dB.
    """
    images = [np.full((256, 256), 0.5, dtype=np.float32)] * 2
    res = evaluate_models([handle(Identity(), "id")], images, [0.01], progress=False)
    assert res["id"][0.01]["psnr"] == pytest.approx(40.0, abs=0.08)


def test_constant_denoiser_scores_exactly():
    """x a 0/1 checkerboard, x̂ = 0.5 whatever the noise: MSE = 1/4, PSNR = 10 log10 4 exactly."""
    board = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)
    res = evaluate_models([handle(Constant(0.5), "c")], [board, 1 - board], [0.1, 0.3], progress=False)
    for s in (0.1, 0.3):
        assert res["c"][s]["psnr"] == pytest.approx(10 * math.log10(4), abs=1e-9)


def test_output_is_clamped():
    """x = 1 and x̂ = 1.7: clamped to 1, the error vanishes."""
    images = [np.ones((16, 16), dtype=np.float32)]
    res = evaluate_models([handle(Constant(1.7), "over")], images, [0.2], progress=False)
    assert res["over"][0.2]["psnr"] == math.inf


def test_every_model_sees_the_same_noise_and_sigma_only_if_not_blind():
    images = [np.random.default_rng(i).random((24, 24)).astype(np.float32) for i in range(3)]
    blind, known = SigmaSpy(blind=True), SigmaSpy(blind=False)
    res = evaluate_models([handle(blind, "blind"), handle(known, "known"), handle(Identity(), "id")], images, [15 / 255, 25 / 255],
                          progress=False)
    assert res["blind"] == res["known"] == res["id"]
    assert blind.seen == [None] * 6
    assert known.seen == pytest.approx([15 / 255, 25 / 255] * 3)
    alone = evaluate_models([handle(Identity(), "id")], images, [25 / 255], progress=False)
    assert alone["id"][25 / 255] == res["id"][25 / 255]  # a σ's noise does not depend on the other levels


def test_batched_scoring_gives_the_one_image_at_a_time_table(tiny_bf_cnn, tiny_biased_cnn):
    """Images of one shape denoised in one pass keep their own noise: the same table up to float rounding, also
    for runs cut by a change of shape and by the batch size (5 patches, then 2 of another shape, batch 3)."""
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16)).astype(np.float32) for _ in range(5)] + [rng.random((20, 12)).astype(np.float32)
                                                                           for _ in range(2)]
    handles = [handle(tiny_bf_cnn, "bf"), handle(tiny_biased_cnn, "biased"), handle(SigmaSpy(blind=False), "known")]
    one = evaluate_models(handles, images, [0.05, 0.2], progress=False)
    batched = evaluate_models(handles, images, [0.05, 0.2], progress=False, batch=3)
    for name in one:
        for s in one[name]:
            assert batched[name][s]["psnr"] == pytest.approx(one[name][s]["psnr"], abs=1e-4)
            assert batched[name][s]["ssim"] == pytest.approx(one[name][s]["ssim"], abs=1e-6)
    assert one["bf"][0.05]["psnr"] != one["biased"][0.05]["psnr"]  # two different networks were scored
    from explorer.evaluate import same_shape_runs
    assert same_shape_runs(images, 3) == [[0, 1, 2], [3, 4], [5, 6]]
    with pytest.raises(ValueError, match="batch must be"):
        evaluate_models(handles, images, [0.1], progress=False, batch=0)


def test_bm3d_beats_the_noisy_image():
    x = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (48, 1))
    res = evaluate_models([handle(BM3D(), "bm3d"), handle(Identity(), "id")], [x], [0.1], progress=False)
    assert res["bm3d"][0.1]["psnr"] > res["id"][0.1]["psnr"] + 5


def test_bad_arguments():
    img = [np.zeros((8, 8), dtype=np.float32)]
    with pytest.raises(ValueError, match="share a name"):
        evaluate_models([handle(Identity(), "a"), handle(Identity(), "a")], img, [0.1], progress=False)
    with pytest.raises(ValueError, match="sigma > 0"):
        evaluate_models([handle(Identity(), "a")], img, [0.0], progress=False)


# --- CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def bench(tmp_path):
    """A folder of two small PNGs and a tiny saved DnCNN."""
    data = tmp_path / "tiny"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(data / f"im{i}.png")
    torch.manual_seed(0)
    card = save_model(DnCNN(depth=3, width=4).eval(), "dncnn", tmp_path / "models", "tiny-cnn", metrics={"other": 1})
    return data, card


def test_cli_json_table_and_card(bench, tmp_path, capsys):
    data, card = bench
    weights_digest = sha256_file(card.with_suffix(".safetensors"))
    before = json.loads(card.read_text())
    out = tmp_path / "res.json"
    code = main([str(card.with_suffix(".safetensors")), "--data", str(data), "--sigma", "15,25", "--classical",
                 "--json", str(out), "--write-card", "--quiet"])
    assert code == 0
    table = json.loads(out.read_text())
    assert set(table) == {"tiny-cnn", "gaussian", "wiener", "haar"}
    for row in table.values():
        assert set(row) == {"15", "25"}
        assert all(set(cell) == {"psnr", "ssim"} and all(math.isfinite(v) for v in cell.values()) for cell in row.values())
    printed = capsys.readouterr().out
    assert "tiny-cnn" in printed and "σ=15" in printed and "σ=25" in printed
    after = json.loads(card.read_text())
    assert after["metrics"]["other"] == 1 and after["metrics"]["tiny"]["results"] == table["tiny-cnn"]
    assert after["metrics"]["tiny"]["images"] == 2
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert sha256_file(card.with_suffix(".safetensors")) == weights_digest
    read_card(card)


def test_cli_sigma_scale_one_matches_8bit(bench, tmp_path):
    data, card = bench
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main([str(card), "--data", str(data), "--sigma", "25.5", "--json", str(a), "--quiet"]) == 0
    assert main([str(card), "--data", str(data), "--sigma", "0.1", "--scale", "1", "--json", str(b), "--quiet"]) == 0
    assert json.loads(a.read_text())["tiny-cnn"]["25.5"] == json.loads(b.read_text())["tiny-cnn"]["0.1"]


def test_cli_exit_codes(bench, tmp_path, capsys):
    data, card = bench
    assert main(["no-such-model", "--data", str(data), "--sigma", "25", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no-such-model" in err and "\n" not in err
    assert main([str(card), "--data", str(tmp_path / "missing"), "--sigma", "25", "--quiet"]) == 1
    assert "missing" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(card), "--data", str(empty), "--sigma", "25", "--quiet"]) == 1
    assert "no image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([str(card), "--data", str(data), "--sigma", "-3"])
    assert e.value.code != 0


# --- built-in test sets ------------------------------------------------------------------------------
def test_builtin_sets_are_made_the_same_in_any_process_and_differ_from_the_training_stream():
    from explorer.data import synthetic
    from explorer.data.testsets import builtin_set

    label, images = builtin_set("discs:24", 3)
    assert label == "discs-24" and [im.index for im in images] == [0, 1, 2]
    a = [im.load() for im in images]
    assert all(x.shape == (24, 24) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 for x in a)
    assert np.array_equal(builtin_set("discs:24", 3)[1][1].load(), a[1])  # made again, the same image
    assert not np.array_equal(a[0], a[1])
    training = synthetic.random_discs(200, 24, seed=0)  # the training stream of `--data discs`
    assert not any(np.allclose(x, t) for x in a for t in training)
    assert builtin_set("calpha")[0] == "calpha-40" and len(builtin_set("calpha")[1]) == 100
    assert builtin_set("dead-leaves:32", 1)[1][0].load().shape == (32, 32)


def test_the_mnist_set_is_the_digits_the_energy_models_hold_out():
    from explorer.data import mnist
    from explorer.data.testsets import builtin_set

    label, images = builtin_set("mnist")
    assert label == "mnist-heldout" and len(images) == 500
    digits = mnist.load_mnist(pad_to=32)
    assert np.array_equal(images[0].load(), digits[-500]) and np.array_equal(images[-1].load(), digits[-1])


@pytest.mark.parametrize("spec, message", [("discs:abc", "integer"), ("mnist:20", "fixed size"), ("discs:4", "at least 9")])
def test_bad_builtin_set_names_fail_with_one_line(bench, spec, message, capsys):
    _, card = bench
    assert main([str(card), "--data", spec, "--sigma", "25", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_on_a_builtin_set_writes_the_table_and_its_command_into_the_card(bench):
    _, card = bench
    argv = [str(card), "--data", "discs:16", "--limit", "3", "--sigma", "0.1", "--scale", "1", "--write-card", "--quiet"]
    assert main(argv) == 0
    entry = json.loads(card.read_text())["metrics"]["discs-16"]
    assert entry["images"] == 3 and entry["command"] == "python -m explorer.evaluate " + " ".join(argv)
    assert 10 < entry["results"]["0.1"]["psnr"] < 60


def test_workers_get_builtin_set_images_as_they_are_and_files_as_absolute_paths(tmp_path, monkeypatch):
    from explorer.data.testsets import SetImage
    from explorer.imagesets import portable

    monkeypatch.chdir(tmp_path)
    image = SetImage("discs", 0, 16)
    assert portable([(0, image), (1, "a.png")]) == [(0, image), (1, str(tmp_path / "a.png"))]


def same_table(a: dict, b: dict, tol: float = 1e-6) -> bool:
    """The same models, σs and metrics, each figure within ``tol`` (dB, SSIM): a forward pass on another
    thread may sum in another order (3·10⁻⁸ dB was seen on a loaded box), which is not a different score."""
    return a.keys() == b.keys() and all(
        a[n].keys() == b[n].keys() and all(a[n][s].keys() == b[n][s].keys() and all(
            abs(a[n][s][m] - b[n][s][m]) <= tol for m in a[n][s]) for s in a[n]) for n in a)


def test_a_runner_of_picklable_tasks_gives_the_serial_table(bench):
    """The runner hook: a plain thread-pool runner (not in-process, so the tasks open the lineup by path
    and check its weights) scores as the default serial map (to 10⁻⁶); ``client=`` still works, deprecated."""
    from concurrent.futures import ThreadPoolExecutor

    from explorer.data.files import list_images
    from explorer.evaluate import Lineup, benchmark
    from explorer.runner import ExecutorRunner

    data, card = bench
    lineup = Lineup((str(card.with_suffix(".safetensors")),), classical=True)
    files = list_images(data)
    here = benchmark(lineup, files, [15 / 255, 50 / 255], seed=2, progress=False)
    calls = []

    def plain(fn, items, **kw):  # the smallest runner: a map over one-item batches
        calls.append(len(items))
        return [fn([it]) for it in items]

    assert same_table(benchmark(lineup, files, [15 / 255, 50 / 255], seed=2, runner=plain, progress=False).results, here.results)
    assert calls == [2]
    with ThreadPoolExecutor(2) as pool:
        pooled = benchmark(lineup, files, [15 / 255, 50 / 255], seed=2, runner=ExecutorRunner(pool), progress=False)
        assert same_table(pooled.results, here.results)
        with pytest.warns(DeprecationWarning, match="runner="):
            assert same_table(benchmark(lineup, files, [15 / 255, 50 / 255], seed=2, client=pool, progress=False).results, here.results)


def test_the_library_never_imports_dask():
    import subprocess
    import sys

    code = ("import sys, explorer.evaluate, explorer.energies, explorer.effective_dims; "
            "print(any(m == 'distributed' or m.startswith(('distributed.', 'dask')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
