"""The training CLI: loss goes down, checkpoints load, --resume continues from the saved step; run folders
outside pretrained/, --init from a model, the compute fields of the card."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import explorer
from explorer import checkpoints, train
from explorer.data import registry


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        # smooth images: a denoiser can learn them within a few steps
        yy, xx = np.mgrid[0:40, 0:40] / 40.0
        img = 0.5 + 0.4 * np.sin(2 * np.pi * (rng.random() * xx + rng.random() * yy))
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _args(folder, out, steps, *extra):
    return [
        "--data", str(folder), "--name", "tiny", "--out", str(out), "--arch", "dncnn", "--depth", "4", "--width", "8",
        "--patch", "24", "--batch", "8", "--steps", str(steps), "--checkpoint-every", "20", "--lr", "3e-3",
        "--sigma-min", "0.1", "--sigma-max", "0.2", "--quiet", "--log-every", "1", "--device", "cpu", *extra,
    ]


def test_training_reduces_loss_and_writes_loadable_model(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 60)) == 0
    log = [json.loads(line) for line in (out / "training" / "tiny" / "log.jsonl").read_text().splitlines()]
    first, last = np.mean([e["loss"] for e in log[:10]]), np.mean([e["loss"] for e in log[-10:]])
    assert last < 0.7 * first
    handle = explorer.load(out / "tiny.safetensors", device="cpu")
    card = handle.card
    assert card["training"]["steps"] == 60 and card["bias_free"] is True
    assert card["training"]["noise"]["sigma_max"] == 0.2
    y = torch.rand(1, 1, 16, 16)
    assert torch.isfinite(handle.denoise(y)).all()


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(image_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # --recalibrate 0: a run that reaches its end re-averages its norm statistics, which an extension would not undo
    train.main(_args(image_folder, a, 40, "--recalibrate", "0"))
    train.main(_args(image_folder, b, 20, "--recalibrate", "0"))
    state = json.loads((b / "training" / "tiny" / "state.json").read_text())
    assert state["step"] == 20
    train.main(_args(image_folder, b, 40, "--resume", "--recalibrate", "0"))
    wa = explorer.checkpoints.load_denoiser(a / "tiny.json")[0].state_dict()
    wb = explorer.checkpoints.load_denoiser(b / "tiny.json")[0].state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_resume_without_state_fails_cleanly(image_folder, tmp_path, capsys):
    assert train.main(_args(image_folder, tmp_path / "none", 5, "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_sigma_distributions_stay_in_range():
    g = torch.Generator().manual_seed(0)
    for dist in ("uniform", "sqrt"):
        s = train.sample_sigmas(10000, 0.0, 0.4, dist, g)
        assert s.min() >= 0 and s.max() <= 0.4
    # √σ uniform puts more mass on small σ than σ uniform
    assert train.sample_sigmas(10000, 0, 0.4, "sqrt", g).median() < train.sample_sigmas(10000, 0, 0.4, "uniform", g).median()


def test_warm_restart_reruns_the_schedule_from_the_restart_step(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20)) == 0
    assert train.main(_args(image_folder, out, 25, "--restart-at", "30", "--resume")) == 2  # after the total
    assert train.main(_args(image_folder, out, 40, "--restart-at", "30", "--resume")) == 2  # after the saved step
    assert "after the saved step 20" in capsys.readouterr().err
    assert train.main(_args(image_folder, out, 40, "--restart-at", "20", "--resume")) == 0
    card = json.loads((out / "tiny.json").read_text())
    assert card["training"]["steps"] == 40 and "warm restart of the schedule at step 20" in card["training"]["optimizer"]
    # the schedule restarted at step 20 is the fresh schedule shifted by 20 steps
    assert train.lr_at(25 - 20, 40 - 20, 1e-3) == pytest.approx(1e-3 * 6 / 200)


def test_recalibration_sets_norm_statistics_to_the_plain_average_over_batches():
    torch.manual_seed(0)
    for bias_free in (True, False):
        model = explorer.denoisers.DnCNN(depth=3, width=4, bias_free=bias_free)
        batches = [torch.randn(4, 1, 12, 12) * s for s in (0.5, 1.0, 2.0)]
        norm = next(m for m in model.modules() if isinstance(m, (explorer.denoisers.BFNorm2d, torch.nn.BatchNorm2d)))
        inputs = []
        hook = norm.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach()))
        assert train.recalibrate_norms(model, batches) == 3
        hook.remove()
        assert not model.training and norm.momentum == 0.1
        if bias_free:
            sds = [torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + norm.eps) for x in inputs]
            torch.testing.assert_close(norm.running_sd, torch.stack(sds).mean(0))
        else:
            torch.testing.assert_close(norm.running_mean, torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(0))


def test_a_finished_run_averages_its_norm_statistics_and_says_so(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "4", "--arch", "unet", "--levels", "2")) == 0
    card = json.loads((out / "tiny.json").read_text())
    # 128-pixel crops by default, at most the image side (40 here)
    assert card["training"]["norm_statistics"].startswith("averaged over 4 batches of 8 noisy 40-pixel crops")
    state = json.loads((out / "training" / "tiny" / "state.json").read_text())
    assert state["recalibrated_at"] == 20 and [e["step"] for e in state["history"]].count(20) <= 1


def test_biased_twins_recalibrate_on_training_patches_and_other_settings_recalibrate_again(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "3", "--biased")) == 0
    card = json.loads((out / "tiny.json").read_text())
    assert card["training"]["norm_statistics"].startswith("averaged over 3 batches of 8 noisy 24-pixel crops")
    weights = (out / "tiny.safetensors").read_bytes()
    # resuming the finished run with the same settings changes nothing ...
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "3", "--biased", "--resume")) == 0
    assert (out / "tiny.safetensors").read_bytes() == weights
    # ... with another crop size it re-averages the statistics (and only those) and records it
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "3", "--biased", "--resume",
                            "--recalibrate-patch", "32")) == 0
    state = json.loads((out / "training" / "tiny" / "state.json").read_text())
    assert state["recalibrated_with"] == {"batches": 3, "patch": 32} and state["step"] == 20
    assert (out / "tiny.safetensors").read_bytes() != weights


def test_the_card_lists_each_training_phase_and_an_interrupted_phase_stays_one(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "0")) == 0
    assert train.main(_args(image_folder, out, 30, "--recalibrate", "0", "--budget-minutes", "1e-9", "--restart-at", "20",
                             "--noise-dist", "sqrt", "--resume")) == 0  # stops at once: an empty phase is not listed
    assert train.main(_args(image_folder, out, 30, "--recalibrate", "0", "--restart-at", "20", "--noise-dist", "sqrt",
                             "--resume")) == 0
    phases = json.loads((out / "tiny.json").read_text())["training"]["phases"]
    assert len(phases) == 2
    assert phases[0].startswith("steps 0–20: σ uniform on [0.1, 0.2]")
    assert phases[1].startswith("steps 20–30: σ sqrt on [0.1, 0.2]") and "warm restart of the schedule at step 20" in phases[1]


def test_patches_are_flipped_and_rotated_except_mnist_digits():
    args = lambda *extra: train.parse_args(["--data", "x", "--name", "n", *extra])  # noqa: E731
    assert train.augments(args()) and train.augments(args("--data", "discs"))
    assert not train.augments(args("--data", "mnist"))  # a mirrored 3 is not a digit
    assert train.augments(args("--data", "mnist", "--augment", "on")) and not train.augments(args("--augment", "off"))
    assert "without flips/rotations" in train.phase_settings(args("--data", "mnist"))


def test_the_relative_loss_divides_each_patch_error_by_its_noise_variance():
    x = torch.zeros(2, 1, 4, 4)
    x_hat = torch.cat([torch.full((1, 1, 4, 4), 0.1), torch.full((1, 1, 4, 4), 0.01)])  # errors 1e-2 and 1e-4
    sigma = torch.tensor([0.2, 0.02]).view(-1, 1, 1, 1)
    assert train.denoising_loss(x_hat, x, sigma, "mse").item() == pytest.approx((1e-2 + 1e-4) / 2)
    # both patches are denoised to the same fraction of their noise variance: 1e-2/0.04 = 1e-4/4e-4 = 0.25
    assert train.denoising_loss(x_hat, x, sigma, "relative", floor=0.0).item() == pytest.approx(0.25)
    assert train.denoising_loss(x_hat, x, sigma, "relative", floor=0.02).item() == pytest.approx(
        (1e-2 / 0.0404 + 1e-4 / 0.0008) / 2)
    with pytest.raises(ValueError, match="unknown loss weight"):
        train.denoising_loss(x_hat, x, sigma, "l1")


def test_training_on_the_relative_loss_reduces_it_and_the_card_says_which_loss(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 60, "--loss-weight", "relative", "--recalibrate", "0")) == 0
    log = [json.loads(line) for line in (out / "training" / "tiny" / "log.jsonl").read_text().splitlines()]
    first, last = np.mean([e["loss"] for e in log[:10]]), np.mean([e["loss"] for e in log[-10:]])
    assert last < 0.7 * first
    assert first > 0.3  # relative units (≈1 for the identity map), not squared error in [0,1] units
    training = json.loads((out / "tiny.json").read_text())["training"]
    assert training["loss"] == "‖x̂ − x‖²/(N(σ² + 0.01²))"
    assert "loss ‖x̂ − x‖²/(N(σ² + 0.01²))" in training["phases"][0]


def test_sigterm_saves_a_checkpoint_at_the_step_reached(image_folder, tmp_path):
    out = tmp_path / "out"
    args = _args(image_folder, out, 100000, "--checkpoint-every", "100000", "--recalibrate", "0")
    proc = subprocess.Popen([sys.executable, "-m", "explorer.train", *args], stderr=subprocess.PIPE, text=True)
    log = out / "training" / "tiny" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 5):  # a few steps, no checkpoint yet
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "too slow"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    saved = json.loads((out / "training" / "tiny" / "state.json").read_text())["step"]
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert 5 <= saved < 100000 and saved >= logged[-1]
    assert explorer.load(out / "tiny.safetensors", device="cpu").card["training"]["steps"] == saved


# --------------------------------------------------------------------------- run folders, --init, compute
def test_the_default_run_folder_is_under_explorer_runs_and_resume_finds_it(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS", str(tmp_path / "runs"))
    args = [a for a in _args(image_folder, "unused", 10) if a not in ("--out", "unused")]
    assert train.main(args) == 0
    run = tmp_path / "runs" / "tiny"
    assert (run / "tiny.safetensors").is_file() and (run / "training" / "tiny" / "state.json").is_file()
    assert train.main([*args[:args.index("--steps") + 1], "20", *args[args.index("--steps") + 2:], "--resume"]) == 0
    assert json.loads((run / "tiny.json").read_text())["training"]["steps"] == 20


@pytest.mark.parametrize("out", [str(checkpoints.PRETRAINED_DIR), str(checkpoints.PRETRAINED_DIR / "runs" / "x"),
                                 str(checkpoints.PRETRAINED_DIR / ".." / "pretrained")])
def test_an_out_inside_pretrained_is_refused(image_folder, out, capsys):
    before = sorted(p.name for p in checkpoints.PRETRAINED_DIR.iterdir())
    assert train.main(_args(image_folder, out, 5)) == 2
    err = capsys.readouterr().err
    assert "inside" in err and "--init" in err and "explorer.publish" in err
    assert sorted(p.name for p in checkpoints.PRETRAINED_DIR.iterdir()) == before


def test_init_continues_a_models_steps_phases_and_compute_with_a_fresh_optimizer(image_folder, tmp_path, monkeypatch, capsys):
    first = tmp_path / "first"
    assert train.main(_args(image_folder, first, 20, "--recalibrate", "0", "--val", str(image_folder))) == 0
    shipped = json.loads((first / "tiny.json").read_text())
    models = tmp_path / "models"  # the user catalog folder: --init takes a catalog name
    models.mkdir()
    for suffix in (".json", ".safetensors"):
        (models / f"tiny{suffix}").write_bytes((first / f"tiny{suffix}").read_bytes())
    monkeypatch.setenv("EXPLORER_MODELS", str(models))
    out = tmp_path / "tuned"
    assert train.main(_args(image_folder, out, 30, "--init", "tiny", "--resume")) == 2
    assert train.main(_args(image_folder, out, 20, "--init", "tiny")) == 2  # nothing left to train
    assert train.main(_args(image_folder, out, 30, "--init", "tiny", "--width", "4")) == 2
    err = capsys.readouterr().err
    assert "give one of them" in err and "trained 20 steps already" in err and "give the flags of its card's command" in err
    assert not out.exists()
    assert train.main(_args(image_folder, out, 30, "--init", "tiny", "--recalibrate", "0", "--noise-dist", "sqrt",
                            "--val", str(image_folder))) == 0
    training = json.loads((out / "tiny.json").read_text())["training"]
    assert training["steps"] == 30 and training["initialized_from"] == {"model": "tiny", "sha256": shipped["sha256"], "step": 20}
    assert training["phases"][0] == shipped["training"]["phases"][0]
    assert training["phases"][1].startswith("steps 20–30: σ sqrt") and "warm restart of the schedule at step 20" in training["phases"][1]
    assert [e["step"] for e in training["history"]] == [20, 30]  # the model's history goes on
    assert training["compute"]["core_hours"] >= shipped["training"]["compute"]["core_hours"]
    adam = load_file(str(out / "training" / "tiny" / "optimizer.safetensors"))
    assert adam["0.step"].item() == 10  # a fresh optimizer: 10 steps, not 30
    assert not (models / "training").exists() and (models / "tiny.json").read_text() == json.dumps(shipped, indent=2) + "\n"


def test_the_card_records_wall_and_core_hours_threads_and_device(image_folder, tmp_path):
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "0", "--val", str(image_folder), "--threads", "1")) == 0
    training = json.loads((out / "tiny.json").read_text())["training"]
    compute = training["compute"]
    assert set(compute) == {"wall_hours", "core_hours", "threads", "device"} and "cpu_hours" not in training
    assert compute["threads"] == 1 and compute["device"] == "cpu" and compute["wall_hours"] >= 0 and compute["core_hours"] >= 0
    assert all({"wall_hours", "core_hours"} <= set(e) and "cpu_hours" not in e for e in training["history"])
    log = [json.loads(line) for line in (out / "training" / "tiny" / "log.jsonl").read_text().splitlines()]
    assert {"wall_seconds", "core_seconds"} <= set(log[-1]) and "seconds" not in log[-1]


def test_a_state_of_the_old_code_resumes_and_its_cpu_seconds_count_as_core_hours(image_folder, tmp_path):
    """States written before compute was split kept 'seconds' (process CPU time) and no phases' image counts."""
    out = tmp_path / "out"
    assert train.main(_args(image_folder, out, 20, "--recalibrate", "0", "--val", str(image_folder))) == 0
    path = out / "training" / "tiny" / "state.json"
    state = json.loads(path.read_text())
    compute = state.pop("compute")
    state["seconds"] = 7200.0
    del state["init"], state["phases"][0]["images"]
    state["history"] = [{"step": e["step"], "cpu_hours": 2.0, **{k: v for k, v in e.items() if k.startswith("psnr")}}
                        for e in state["history"]]
    path.write_text(json.dumps(state))
    assert train.main(_args(image_folder, out, 30, "--recalibrate", "0", "--val", str(image_folder), "--resume")) == 0
    training = json.loads((out / "tiny.json").read_text())["training"]
    assert training["compute"]["wall_hours"] is None and "wall time not recorded before step 20" in training["compute"]["note"]
    assert 2.0 <= training["compute"]["core_hours"] < 2.0 + compute["core_seconds"] / 3600 + 0.1
    assert training["history"][0] == {"step": 20, "wall_hours": None, "core_hours": 2.0,
                                      **{k: v for k, v in training["history"][0].items() if k.startswith("psnr")}}
    assert [t[:11] for t in training["phases"]] == ["steps 0–20:", "steps 20–30"]  # --steps changed the schedule
    assert not any("training images" in t for t in training["phases"])  # a folder's images are as they were


def test_registered_data_sets_come_from_the_registry_and_a_folder_stays_a_folder(image_folder):
    discs = train.training_images("discs", 16, 0)
    assert len(discs) == registry.SYNTHETIC_TRAINING_IMAGES
    np.testing.assert_array_equal(discs[7], registry.dataset("discs").training_images(16, 0)[7])
    assert len(train.training_images(str(image_folder), 16, 0)) == 4
    if registry.mnist.default_mnist_path().is_file():
        assert len(train.training_images("mnist", 32, 0)) == 10_000 - registry.MNIST_HELD_OUT


def test_an_unknown_or_missing_device_is_refused(image_folder, tmp_path, capsys):
    assert train.main(_args(image_folder, tmp_path / "out", 5, "--device", "nonsense")) == 2
    assert "--device nonsense" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert train.main(_args(image_folder, tmp_path / "out", 5, "--device", "cuda")) == 2
        assert "not available" in capsys.readouterr().err


def test_an_old_mnist_run_resumes_on_the_training_digits_and_its_phases_say_so(tmp_path):
    """Before the registry, ``mnist`` meant all 10 000 digits; a resumed old run trains on the 9500 from then on."""
    if not registry.mnist.default_mnist_path().is_file():
        pytest.skip("no MNIST digits here")
    args = ["--data", "mnist", "--name", "digits", "--out", str(tmp_path), "--arch", "dncnn", "--depth", "3", "--width", "4",
            "--patch", "16", "--batch", "4", "--recalibrate", "0", "--quiet", "--device", "cpu", "--steps"]
    assert train.main([*args, "5"]) == 0
    path = tmp_path / "training" / "digits" / "state.json"
    state = json.loads(path.read_text())
    del state["phases"][0]["images"]  # as the old code wrote it
    path.write_text(json.dumps(state))
    assert train.main([*args, "5", "--resume"]) == 0  # nothing to train: the phases stay as they were
    assert train.main([*args, "8", "--restart-at", "0", "--resume"]) == 0
    phases = json.loads((tmp_path / "digits.json").read_text())["training"]["phases"]
    assert phases[0].startswith("steps 0–5:") and phases[0].endswith(", 10000 training images")
    assert phases[1].startswith("steps 5–8:") and phases[1].endswith(", 9500 training images")


def test_subset_training_uses_exactly_the_subsets_digits_and_the_card_rebuilds_them(tmp_path):
    """--subset N:A|B trains on one of two disjoint N-digit subsets; the card's record rebuilds and checks it."""
    args = train.parse_args(["--data", "mnist", "--subset", "10:B", "--subset-seed", "3", "--name", "t", "--out", str(tmp_path)])
    images = train.training_images(args.data, args.patch, args.seed, args.subset, args.subset_seed)
    a, b = registry.mnist_subsets(10, seed=3)
    assert not set(a) & set(b)
    np.testing.assert_array_equal(np.stack(images), registry.mnist_subset_digits(10, "B", seed=3))
    assert not any(registry.is_held_out_digit(int(i)) for i in np.concatenate([a, b]))
    assert train.main(["--data", "mnist", "--subset", "10:B", "--subset-seed", "3", "--name", "t", "--out", str(tmp_path),
                       "--width", "4", "--levels", "2", "--batch", "2", "--patch", "32", "--steps", "2", "--quiet"]) == 0
    record = json.loads((tmp_path / "t.json").read_text())["training"]["subset"]
    rebuilt = registry.mnist_subsets(record["size"], record["seed"])[record["part"] == "B"]
    assert record["indices"] == [int(i) for i in rebuilt] and record["sha256"] == registry.indices_digest(rebuilt)


@pytest.mark.parametrize("argv, message", [
    (["--data", "discs", "--subset", "10:A"], "give --data mnist"),
    (["--data", "mnist", "--subset", "4751:A"], "must be in [1, 4750]"),
    (["--data", "mnist", "--subset", "10:C"], "the part A or B"),
])
def test_bad_subsets_are_refused_with_a_message(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args([*argv, "--name", "t", "--out", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_frozen_norms_keep_the_statistics_the_last_steps_were_trained_with(image_folder, tmp_path):
    """--freeze-norms-at S: the statistics are re-averaged at S and never change afterwards (no re-averaging at
    the end), so the evaluated network is the one the last steps trained; the card says so."""
    out = tmp_path / "out"

    def running_stats() -> dict[str, torch.Tensor]:
        state = load_file(str(out / "tiny.safetensors"))
        return {k: v for k, v in state.items() if "running" in k}

    assert train.main(_args(image_folder, out, 30, "--freeze-norms-at", "10", "--recalibrate", "5")) == 0
    first = running_stats()
    assert first
    assert train.main(_args(image_folder, out, 50, "--freeze-norms-at", "10", "--recalibrate", "5", "--resume")) == 0
    later = running_stats()
    for k in first:
        torch.testing.assert_close(later[k], first[k], rtol=0, atol=0)
    card = json.loads((out / "tiny.json").read_text())
    assert "then frozen: steps 10–50" in card["training"]["norm_statistics"]
    # without freezing, the statistics keep moving with the training batches
    free = tmp_path / "free"
    assert train.main(_args(image_folder, free, 30, "--recalibrate", "0")) == 0
    a = {k: v for k, v in load_file(str(free / "tiny.safetensors")).items() if "running" in k}
    assert train.main(_args(image_folder, free, 50, "--recalibrate", "0", "--resume")) == 0
    b = {k: v for k, v in load_file(str(free / "tiny.safetensors")).items() if "running" in k}
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_run_whose_optimizer_state_is_sharded_resumes_exactly(image_folder, tmp_path, monkeypatch):
    """A run folder with Adam's state in shards (what a committed, carried run needs) resumes as if unbroken."""
    from explorer import shards
    a, b = tmp_path / "a", tmp_path / "b"
    train.main(_args(image_folder, a, 40, "--recalibrate", "0", "--ema", "0.9"))
    monkeypatch.setattr(shards, "MAX_SHARD_BYTES", 4096)
    train.main(_args(image_folder, b, 20, "--recalibrate", "0", "--ema", "0.9"))
    state_dir = b / "training" / "tiny"
    assert len(list(state_dir.glob("optimizer-*-of-*.safetensors"))) > 1 and not (state_dir / "optimizer.safetensors").exists()
    assert len(list(state_dir.glob("weights-*-of-*.safetensors"))) > 1
    train.main(_args(image_folder, b, 40, "--resume", "--recalibrate", "0", "--ema", "0.9"))
    wa = explorer.checkpoints.load_denoiser(a / "tiny.json")[0].state_dict()
    wb = explorer.checkpoints.load_denoiser(b / "tiny.json")[0].state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)
