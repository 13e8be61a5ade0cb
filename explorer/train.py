"""Train a denoiser: ``python -m explorer.train --data DIR|dead-leaves|discs|calpha|mnist --name NAME ...``.

Objective (least squares, which makes x̂ the MMSE estimate, hence Miyasawa's score identity):
    L(θ) = E_{x, σ, z} ‖x̂_θ(x + σz) − x‖² / N,   σ ~ U[σ_min, σ_max] (or √σ uniform with --noise-dist sqrt),
or with ``--loss-weight relative`` each term divided by σ² + floor² (every noise level weighted by its gain).

Every ``--checkpoint-every`` steps (and on Ctrl-C or SIGTERM, and at the end) it writes the model
``OUT/NAME.safetensors`` + card ``OUT/NAME.json`` and the resumable training state
``OUT/training/NAME/{optimizer.safetensors,state.json}`` (safetensors + JSON only, never pickles);
``--resume`` continues from that state. A JSON-lines log goes to ``OUT/training/NAME/log.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from .checkpoints import PRETRAINED_DIR, save_model
from .data import load_folder
from .data.patches import PatchSampler
from .denoisers import BFNorm2d, build
from .signals import sigterm_as_interrupt


def sample_sigmas(n: int, lo: float, hi: float, dist: str, gen: torch.Generator) -> torch.Tensor:
    """σ per image: uniform on [lo, hi], or with √σ uniform on [√lo, √hi] (more weight on small σ)."""
    u = torch.rand(n, generator=gen)
    if dist == "uniform":
        return lo + (hi - lo) * u
    if dist == "sqrt":
        return (math.sqrt(lo) + (math.sqrt(hi) - math.sqrt(lo)) * u) ** 2
    raise ValueError(f"unknown noise distribution {dist!r} (uniform or sqrt)")


def denoising_loss(x_hat: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, weight: str = "mse",
                   floor: float = 0.01) -> torch.Tensor:
    """The training objective over a batch, with per-image errors e_i = ‖x̂_i − x_i‖²/N:

    - ``mse``: mean_i e_i (every image counts by its squared error, so large σ dominate);
    - ``relative``: mean_i e_i/(σ_i² + floor²), the output error relative to the input noise variance
      (10^(−gain/10) for a gain in dB), so every noise level counts by how much it is denoised.
    """
    per_image = ((x_hat - x) ** 2).flatten(1).mean(1)
    if weight == "mse":
        return per_image.mean()
    if weight == "relative":
        return (per_image / (sigma.flatten() ** 2 + floor ** 2)).mean()
    raise ValueError(f"unknown loss weight {weight!r} (mse or relative)")


def lr_at(step: int, total: int, lr: float, warmup: int = 200) -> float:
    """Linear warm-up then cosine decay to 1% of ``lr`` at ``total`` steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def training_images(source: str, patch: int, seed: int) -> list[np.ndarray]:
    """The images patches are cut from: a folder, or a synthetic / MNIST source by name."""
    from .data import mnist, synthetic

    n_synth = 4000
    if source == "mnist":
        return list(mnist.load_mnist(pad_to=32))
    if source == "dead-leaves":
        return [synthetic.dead_leaves(max(patch, 64), seed=seed + i) for i in range(n_synth // 8)]
    if source == "discs":
        return list(synthetic.random_discs(n_synth, patch, seed=seed))
    if source == "calpha":
        return list(synthetic.random_calpha(n_synth, patch, alpha=2.0, seed=seed))
    return load_folder(source)


def augments(a: argparse.Namespace) -> bool:
    """Whether patches get the 8 flips/rotations: ``--augment auto`` is on except for MNIST, whose
    digits are not symmetric (a mirrored 3 or a rotated 7 is not a digit)."""
    return a.augment == "on" or (a.augment == "auto" and a.data != "mnist")


def build_model(args: argparse.Namespace):
    bias_free = not args.biased
    if args.arch == "dncnn":
        config = dict(channels=1, depth=args.depth, width=args.width, bias_free=bias_free)
    elif args.arch == "unet":
        config = dict(channels=1, width=args.width, levels=args.levels, convs_per_block=args.convs_per_block, bias_free=bias_free)
    else:
        raise ValueError(f"unknown architecture {args.arch!r}")
    return build(args.arch, config)


def validation_psnr(model, images: list[np.ndarray], sigma: float, seed: int = 0) -> float:
    """Mean PSNR (dB, [0,1] range, output clamped) over ``images`` at noise ``sigma``, one fixed draw each."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    scores = []
    with torch.no_grad():
        for img in images:
            x = torch.from_numpy(img)[None, None]
            y = x + sigma * torch.randn(x.shape, generator=gen)
            mse = torch.mean((model(y).clamp(0, 1) - x) ** 2).item()
            scores.append(10 * math.log10(1.0 / mse))
    model.train()
    return float(np.mean(scores))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    return out


def _load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


@torch.no_grad()
def recalibrate_norms(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every norm layer's running statistics as the plain average over ``batches``.

    During training the running statistic s̄ follows an exponential average (momentum 0.1) of the last
    few batches, so eval-mode outputs drift from checkpoint to checkpoint. Forward passes in train
    mode with momentum 1/(k+1) at the k-th batch give s̄ = (1/n) Σ_k s_k over all n batches (for
    BatchNorm2d the same holds for its running mean and variance). Returns n; the model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, (BFNorm2d, nn.BatchNorm2d))]
    momenta = [m.momentum for m in norms]
    model.train()
    n = 0
    for k, y in enumerate(batches):
        for m in norms:
            m.momentum = 1.0 / (k + 1)
        model(y)
        n += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return n


def schedule_text(a: argparse.Namespace) -> str:
    """The learning-rate schedule in words, for the model card."""
    text = f"Adam, warm-up + cosine decay of lr {a.lr} over steps {a.restart_at}–{a.steps}"
    return text + (f" (a warm restart of the schedule at step {a.restart_at})" if a.restart_at else "")


def phase_settings(a: argparse.Namespace) -> str:
    """The noise, data augmentation and schedule of one training invocation, in words."""
    flips = "with" if augments(a) else "without"
    loss = "" if a.loss_weight == "mse" else f"loss {loss_text(a)}, "
    return (f"σ {a.noise_dist} on [{a.sigma_min:g}, {a.sigma_max:g}], batch {a.batch} of {a.patch}-pixel patches "
            f"{flips} flips/rotations, {loss}{schedule_text(a)}")


def loss_text(a: argparse.Namespace) -> str:
    """The objective: ``mse``, or the relative loss as a formula (the phases of MSE runs name no loss, as before)."""
    return "mse" if a.loss_weight == "mse" else f"‖x̂ − x‖²/(N(σ² + {a.loss_floor:g}²))"


def phase_texts(phases: list[dict[str, Any]], step: int) -> list[str]:
    """The phases as the model card shows them, ``steps A–B: settings``: a phase ends where the next one
    starts (the last at ``step``); empty phases are left out, hand-written ones kept as they are."""
    ends = [p.get("start") for p in phases[1:]] + [step]
    return [p["text"] if "text" in p else f"steps {p['start']}–{end}: {p['settings']}"
            for p, end in zip(phases, ends) if "text" in p or end > p["start"]]


class Trainer:
    """Holds model, optimizer, sampler and counters; saves/restores everything needed to resume."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.state_dir = self.out / "training" / args.name
        torch.manual_seed(args.seed)
        self.model = build_model(args)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.images = training_images(args.data, args.patch, args.seed)
        self.sampler = PatchSampler(self.images, args.patch, batch_size=args.batch, seed=args.seed, augment=augments(args))
        self.gen = torch.Generator().manual_seed(args.seed + 1)
        self.step = 0
        self.seconds = 0.0  # CPU seconds (all threads) spent in training steps
        self.history: list[dict[str, Any]] = []
        self.recalibrated_at: int | None = None  # step at which the norm statistics were last re-averaged
        self.recalibrated_with: dict[str, int] | None = None  # the batches and crop size used then
        self.phases: list[dict[str, Any]] = []  # {start, settings}, one per change of settings
        self.val_images = [im[:128, :128] for im in load_folder(args.val)] if args.val else []

    # --- persistence
    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        save_file(_optimizer_tensors(self.opt), str(self.state_dir / "optimizer.safetensors"))
        rng = {"noise_gen": self.gen.get_state(), "patch_gen": self.sampler.state_dict()["generator"]}
        save_file(rng, str(self.state_dir / "rng.safetensors"))
        state = {
            "step": self.step,
            "seconds": self.seconds,
            "args": vars(self.args),
            "history": self.history,
            "recalibrated_at": self.recalibrated_at,
            "recalibrated_with": self.recalibrated_with,
            "phases": self.phases,
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        a = self.args
        save_model(
            self.model.eval(),
            a.arch,
            self.out,
            a.name,
            output="denoised",
            training={
                "data": a.data,
                "noise": {"distribution": a.noise_dist, "sigma_min": a.sigma_min, "sigma_max": a.sigma_max, "units": "[0,1] image range"},
                "patch": a.patch,
                "augment": augments(a),
                "loss": loss_text(a),
                "batch": a.batch,
                "optimizer": schedule_text(a),
                "steps": self.step,
                "cpu_hours": round(self.seconds / 3600, 3),
                "seed": a.seed,
                "command": "python -m explorer.train " + " ".join(sys.argv[1:]) if sys.argv[1:] else "",
                "history": self.history,
                "phases": phase_texts(self.phases, self.step),
                "norm_statistics": (f"averaged over {self.recalibrated_with['batches']} batches of 8 noisy "
                                    f"{self.recalibrated_with['patch']}-pixel crops "
                                    f"(at most the image size) after step {self.recalibrated_at}"
                                    if self.recalibrated_at is not None and self.recalibrated_with else "exponential average (momentum 0.1) of training batches"),
            },
            metrics={},
        )
        self.model.train()

    def restore(self) -> None:
        state = json.loads((self.state_dir / "state.json").read_text())
        from .checkpoints import load_denoiser

        model, _ = load_denoiser(self.out / f"{self.args.name}.json")
        self.model.load_state_dict(model.state_dict())
        _load_optimizer_tensors(self.opt, load_file(str(self.state_dir / "optimizer.safetensors")))
        rng = load_file(str(self.state_dir / "rng.safetensors"))
        self.gen.set_state(rng["noise_gen"])
        self.sampler.load_state_dict({"generator": rng["patch_gen"]})
        self.step, self.seconds, self.history = state["step"], state["seconds"], state["history"]
        self.phases = state.get("phases") or self._legacy_phases(state)
        self.recalibrated_at = state.get("recalibrated_at")
        # states written before the settings were recorded used 128-pixel crops
        self.recalibrated_with = state.get("recalibrated_with") or (
            None if self.recalibrated_at is None else {"batches": self.args.recalibrate, "patch": min(128, *(min(im.shape[:2]) for im in self.images))})

    def _legacy_phases(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Phases of a state saved before they were recorded: the card's own text, else its saved args."""
        card = json.loads((self.out / f"{self.args.name}.json").read_text())
        texts = card.get("training", {}).get("phases") or card.get("stages")
        if texts:
            return [{"text": t} for t in texts]
        saved = argparse.Namespace(**{**vars(self.args), "augment": "on", "loss_weight": "mse",
                                        **state.get("args", {})})  # flips always on and plain MSE then
        return [{"start": 0, "settings": phase_settings(saved)}]

    def begin_phase(self) -> None:
        """Record this invocation's settings from the current step on (the last phase goes on if they match)."""
        settings = phase_settings(self.args)
        if not self.phases or self.phases[-1].get("settings") != settings:
            self.phases.append({"start": self.step, "settings": settings})

    # --- the loop
    def noisy_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean patches x, their noise levels σ and y = x + σz, σ drawn per patch from the training distribution."""
        a = self.args
        x = self.sampler.sample(a.batch)
        sigma = sample_sigmas(a.batch, a.sigma_min, a.sigma_max, a.noise_dist, self.gen).view(-1, 1, 1, 1)
        return x, sigma, x + sigma * torch.randn(x.shape, generator=self.gen)

    def recalibration_patch(self) -> int:
        """``--recalibrate-patch`` (default: 128 for bias-free models, the training patch for the biased
        twins, whose BatchNorm means and variances depend on the crop size), at most the smallest image side."""
        a = self.args
        patch = a.recalibrate_patch or (a.patch if a.biased else 128)
        return min(patch, *(min(im.shape[:2]) for im in self.images))

    def recalibration_batches(self, batch: int = 8) -> Iterator[torch.Tensor]:
        """``--recalibrate`` noisy batches of ``--recalibrate-patch`` crops (at most the smallest image side):
        larger crops than the training patches give norm statistics closer to those of whole images."""
        a = self.args
        patch = self.recalibration_patch()
        crops = PatchSampler(self.images, patch, batch_size=batch, seed=a.seed + 2)
        gen = torch.Generator().manual_seed(a.seed + 3)
        for _ in range(a.recalibrate):
            x = crops.sample(batch)
            sigma = sample_sigmas(batch, a.sigma_min, a.sigma_max, a.noise_dist, gen).view(-1, 1, 1, 1)
            yield x + sigma * torch.randn(x.shape, generator=gen)

    def train_step(self) -> tuple[float, float]:
        """One Adam step; returns the objective and the batch PSNR (dB, from the plain MSE)."""
        a = self.args
        x, sigma, y = self.noisy_batch()
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step - a.restart_at, a.steps - a.restart_at, a.lr)
        x_hat = self.model(y)
        loss = denoising_loss(x_hat, x, sigma, a.loss_weight, a.loss_floor)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        mse = torch.mean((x_hat.detach() - x) ** 2).item()
        return loss.item(), 10 * math.log10(1.0 / max(mse, 1e-12))

    def run(self) -> None:
        a = self.args
        deadline = time.monotonic() + a.budget_minutes * 60 if a.budget_minutes else math.inf
        self.begin_phase()
        self.model.train()
        bar = tqdm(total=a.steps, initial=self.step, desc=a.name, dynamic_ncols=True, disable=a.quiet)
        log = (self.state_dir / "log.jsonl")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            with sigterm_as_interrupt():
                while self.step < a.steps and time.monotonic() < deadline:
                    t0 = time.process_time()
                    loss, p = self.train_step()
                    self.seconds += time.process_time() - t0
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.2e}", psnr=f"{p:.2f}")
                    if self.step % a.log_every == 0:
                        with log.open("a") as f:
                            f.write(json.dumps({"step": self.step, "loss": loss, "train_psnr": p, "seconds": round(self.seconds, 1)}) + "\n")
                    if self.step % a.checkpoint_every == 0:
                        self.checkpoint()
        except KeyboardInterrupt:
            bar.write("interrupted: saving a checkpoint")
        finally:
            bar.close()
        wanted = {"batches": a.recalibrate, "patch": self.recalibration_patch()}
        if self.step >= a.steps and a.recalibrate and (self.recalibrated_at, self.recalibrated_with) != (self.step, wanted):
            self.recalibrated_at, self.recalibrated_with = self.step, wanted
            recalibrate_norms(self.model, self.recalibration_batches())
            self.model.train()
        self.checkpoint()

    def checkpoint(self) -> None:
        if self.val_images:
            entry = {"step": self.step, "cpu_hours": round(self.seconds / 3600, 3)}
            for s in self.args.val_sigmas:
                entry[f"psnr_sigma{s:g}"] = round(validation_psnr(self.model, self.val_images, s / 255), 3)
            if self.history and self.history[-1]["step"] == self.step:
                self.history[-1] = entry  # e.g. re-validated after the norm statistics were re-averaged
            else:
                self.history.append(entry)
        self.save()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m explorer.train", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="image folder, or one of: dead-leaves, discs, calpha, mnist")
    p.add_argument("--name", required=True)
    p.add_argument("--out", default=str(PRETRAINED_DIR))
    p.add_argument("--arch", default="unet", choices=["unet", "dncnn"])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=20, help="DnCNN convolutions")
    p.add_argument("--levels", type=int, default=4, help="UNet resolutions")
    p.add_argument("--convs-per-block", type=int, default=2)
    p.add_argument("--biased", action="store_true", help="the biased twin (conv bias + BatchNorm)")
    p.add_argument("--sigma-min", type=float, default=0.0, help="in [0,1] image units")
    p.add_argument("--sigma-max", type=float, default=0.4)
    p.add_argument("--noise-dist", default="uniform", choices=["uniform", "sqrt"])
    p.add_argument("--loss-weight", choices=["mse", "relative"], default="mse",
                   help="mse: plain squared error; relative: each patch's error over its noise variance σ² + floor²")
    p.add_argument("--loss-floor", type=float, default=0.01, help="the floor of the relative loss, [0,1] units")
    p.add_argument("--augment", choices=["auto", "on", "off"], default="auto",
                   help="the 8 flips/rotations of every patch (auto: on, except for mnist)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--steps", type=int, default=20000, help="total steps (the lr schedule spans them)")
    p.add_argument("--budget-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--restart-at", type=int, default=0,
                   help="with --resume: restart the warm-up + cosine schedule (peak --lr) at this step, spanning to --steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val", default="", help="folder of validation images (center 128×128 crops), e.g. Set12")
    p.add_argument("--val-sigmas", type=lambda s: [float(v) for v in s.split(",")], default=[25.0, 50.0], help="8-bit units")
    p.add_argument("--recalibrate", type=int, default=100,
                   help="at the end, average the norm layers' statistics over this many batches (0: keep the running average)")
    p.add_argument("--recalibrate-patch", type=int, default=None,
                   help="crop size of the recalibration batches (default 128 for bias-free models, the training "
                        "patch for biased ones); resuming a finished run with other settings recalibrates again")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.restart_at < args.steps:
        print(f"error: --restart-at {args.restart_at} must be in [0, --steps={args.steps})", file=sys.stderr)
        return 2
    trainer = Trainer(args)
    if args.resume:
        if not (trainer.state_dir / "state.json").is_file():
            print(f"error: nothing to resume in {trainer.state_dir}", file=sys.stderr)
            return 2
        trainer.restore()
    if args.restart_at > trainer.step:
        print(f"error: --restart-at {args.restart_at} is after the saved step {trainer.step} (use --resume)", file=sys.stderr)
        return 2
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
