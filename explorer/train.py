"""Train a denoiser: ``python -m explorer.train --data DIR|dead-leaves|discs|calpha|mnist --name NAME ...``.

Objective (least squares, which makes x̂ the MMSE estimate, hence Miyasawa's score identity):
    L(θ) = E_{x, σ, z} ‖x̂_θ(x + σz) − x‖² / N,   σ ~ U[σ_min, σ_max] (or √σ uniform with --noise-dist sqrt),
or with ``--loss-weight relative`` each term divided by σ² + floor² (every noise level weighted by its gain).
A registered ``--data`` name means the training images of :mod:`explorer.data.registry` (``mnist``: the
9500 training digits, never the 500 held out); anything else is a folder.

The loop, the run folder (default ``$EXPLORER_RUNS/NAME``; never inside ``pretrained/``), checkpoints
(``OUT/NAME.safetensors`` + card ``OUT/NAME.json``, resumable state under ``OUT/training/NAME/``; safetensors
+ JSON, never pickles), ``--resume``, ``--init MODEL``, the schedule and the compute accounting are
:mod:`explorer.training`'s; this module defines the objective, the model, validation and the card's fields.
At the end the norm layers' statistics are re-averaged over ``--recalibrate`` batches. With
``--freeze-norms-at S`` they are re-averaged at step S instead and then frozen: the remaining steps
train the network with the fixed statistics it is evaluated with (train-mode norms divide by each
batch's own statistics, which a model memorizing a few images learns to rely on; see
``scripts/check_memorizer.py``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import load_folder
from .data.patches import PatchSampler
from .denoisers import BFNorm2d, build
from .data.registry import NAMES, DataSet, dataset, indices_digest, mnist_subset_digits, mnist_subsets
from .training import Training, add_common_arguments, complete_args, lr_at, phase_texts, run  # noqa: F401
from .training import load_optimizer_tensors as _load_optimizer_tensors  # noqa: F401  (kept for old imports)
from .training import optimizer_tensors as _optimizer_tensors  # noqa: F401
from .training import schedule_text as _schedule_text

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


def registered_data(source: str) -> DataSet | None:
    """The registry's data set named ``source`` (:mod:`explorer.data.registry`); None for a folder."""
    return dataset(source) if source in NAMES and not Path(source).is_dir() else None


def parse_subset(text: str) -> tuple[int, str]:
    """``--subset N:A`` or ``N:B`` → (N, part): one of two disjoint N-digit subsets of MNIST's training split."""
    try:
        n, part = text.split(":")
        n_int = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--subset {text!r}: expected N:A or N:B, e.g. 100:A") from None
    if part not in ("A", "B") or n_int < 1:
        raise argparse.ArgumentTypeError(f"--subset {text!r}: N must be ≥ 1 and the part A or B")
    return n_int, part


def subset_record(n: int, part: str, seed: int) -> dict[str, Any]:
    """The card's record of a training subset: enough to rebuild it (seed) and to check it (digest;
    the indices themselves when there are at most 100)."""
    a, b = mnist_subsets(n, seed)
    indices = a if part == "A" else b
    record: dict[str, Any] = {"data": "mnist", "size": n, "part": part, "seed": seed,
                              "rule": "explorer.data.registry.mnist_subsets(size, seed)", "sha256": indices_digest(indices)}
    if n <= 100:
        record["indices"] = [int(i) for i in indices]
    return record


def training_images(source: str, patch: int, seed: int, subset: tuple[int, str] | None = None,
                    subset_seed: int = 0) -> list[np.ndarray]:
    """The images patches are cut from: a registered data set's training images (or, for MNIST, one
    ``subset`` (N, "A"|"B") of two disjoint N-digit sets), or a folder's images."""
    if subset is not None:
        if source != "mnist":
            raise ValueError(f"--subset draws from MNIST's training digits; --data is {source!r}")
        return [np.array(im, dtype=np.float32) for im in mnist_subset_digits(*subset, seed=subset_seed)]
    registered = registered_data(source)
    if registered is None:
        return load_folder(source)
    return [np.array(im, dtype=np.float32) for im in registered.training_images(patch, seed)]  # writable copies


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


def validation_psnr(model, images: list[np.ndarray], sigma: float, seed: int = 0, device: torch.device | str = "cpu") -> float:
    """Mean PSNR (dB, [0,1] range, output clamped) over ``images`` at noise ``sigma``, one fixed draw each
    (drawn on the CPU, so the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    scores = []
    with torch.no_grad():
        for img in images:
            x = torch.from_numpy(img)[None, None]
            y = x + sigma * torch.randn(x.shape, generator=gen)
            mse = torch.mean((model(y.to(device)).clamp(0, 1) - x.to(device)) ** 2).item()
            scores.append(10 * math.log10(1.0 / mse))
    model.train()
    return float(np.mean(scores))


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
    return _schedule_text(a.lr, a.restart_at, a.steps)


def phase_settings(a: argparse.Namespace) -> str:
    """The noise, data augmentation and schedule of one training invocation, in words."""
    flips = "with" if augments(a) else "without"
    loss = "" if a.loss_weight == "mse" else f"loss {loss_text(a)}, "
    return (f"σ {a.noise_dist} on [{a.sigma_min:g}, {a.sigma_max:g}], batch {a.batch} of {a.patch}-pixel patches "
            f"{flips} flips/rotations, {loss}{schedule_text(a)}")


def loss_text(a: argparse.Namespace) -> str:
    """The objective: ``mse``, or the relative loss as a formula (the phases of MSE runs name no loss, as before)."""
    return "mse" if a.loss_weight == "mse" else f"‖x̂ − x‖²/(N(σ² + {a.loss_floor:g}²))"


class Trainer(Training):
    """The denoiser's objective, model, validation and card on the shared loop of :class:`~explorer.training.Training`."""

    program = "explorer.train"
    legacy_seconds = "core"  # the 'seconds' of old states were process CPU time

    def setup(self) -> None:
        a = self.args
        self.model = build_model(a)
        self.images = training_images(a.data, a.patch, a.seed, a.subset, a.subset_seed)
        self.image_count = len(self.images)
        self.sampler = PatchSampler(self.images, a.patch, batch_size=a.batch, seed=a.seed, augment=augments(a))
        self.recalibrated_at: int | None = None  # step at which the norm statistics were last re-averaged
        self.recalibrated_with: dict[str, int] | None = None  # the batches and crop size used then
        self.norms_frozen_at: int | None = None  # step from which the norm statistics are fixed
        self.val_images = [im[:128, :128] for im in load_folder(a.val)] if a.val else []

    def architecture(self) -> str:
        return self.args.arch

    def phase_settings(self) -> str:
        return phase_settings(self.args)

    # --- the objective
    def noisy_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean patches x, their noise levels σ and y = x + σz, σ drawn per patch from the training distribution."""
        a = self.args
        x = self.sampler.sample(a.batch)
        sigma = sample_sigmas(a.batch, a.sigma_min, a.sigma_max, a.noise_dist, self.gen).view(-1, 1, 1, 1)
        return x, sigma, x + sigma * torch.randn(x.shape, generator=self.gen)

    def freeze_norms(self) -> None:
        """From ``--freeze-norms-at`` on: re-average the norm statistics once, then keep every norm layer in
        eval mode (fixed statistics, still-trained scales) for the remaining steps."""
        a = self.args
        if a.freeze_norms_at is None or self.step < a.freeze_norms_at:
            return
        if self.norms_frozen_at is None:
            self.norms_frozen_at = self.step
            self.recalibrated_at, self.recalibrated_with = self.step, {"batches": a.recalibrate, "patch": self.recalibration_patch()}
            recalibrate_norms(self.model, self.recalibration_batches())
            self.model.train()
        for m in self.model.modules():
            if isinstance(m, (BFNorm2d, nn.BatchNorm2d)):
                m.eval()

    def objective(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The denoising loss of one batch, and the batch PSNR (dB, from the plain MSE)."""
        a = self.args
        self.freeze_norms()
        x, sigma, y = (t.to(self.device) for t in self.noisy_batch())
        x_hat = self.model(y)
        loss = denoising_loss(x_hat, x, sigma, a.loss_weight, a.loss_floor)
        mse = torch.mean((x_hat.detach() - x) ** 2).item()
        return loss, {"train_psnr": 10 * math.log10(1.0 / max(mse, 1e-12))}

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{values['loss']:.2e}", "psnr": f"{values['train_psnr']:.2f}"}

    def evaluate(self) -> dict[str, Any] | None:
        if not self.val_images:
            return None
        return {f"psnr_sigma{s:g}": round(validation_psnr(self.model, self.val_images, s / 255, device=self.device), 3)
                for s in self.args.val_sigmas}

    # --- the norm statistics
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
            yield (x + sigma * torch.randn(x.shape, generator=gen)).to(self.device)

    def finish(self) -> None:
        """A finished run re-averages its norm statistics (once per setting)."""
        a = self.args
        wanted = {"batches": a.recalibrate, "patch": self.recalibration_patch()}
        if self.norms_frozen_at is not None:
            return  # the statistics the network was trained with stay
        if self.step >= a.steps and a.recalibrate and (self.recalibrated_at, self.recalibrated_with) != (self.step, wanted):
            self.recalibrated_at, self.recalibrated_with = self.step, wanted
            recalibrate_norms(self.model, self.recalibration_batches())
            self.model.train()

    # --- the card and the state
    def card_fields(self) -> dict[str, Any]:
        a = self.args
        norms = (f"averaged over {self.recalibrated_with['batches']} batches of 8 noisy {self.recalibrated_with['patch']}-pixel "
                 f"crops (at most the image size) after step {self.recalibrated_at}"
                 if self.recalibrated_at is not None and self.recalibrated_with else "exponential average (momentum 0.1) of training batches")
        if self.norms_frozen_at is not None:
            norms += f", then frozen: steps {self.norms_frozen_at}–{self.step} trained with these fixed statistics (eval-mode norms)"
        return {"training": {
            "data": a.data,
            **({"subset": subset_record(*a.subset, a.subset_seed)} if a.subset else {}),
            "noise": {"distribution": a.noise_dist, "sigma_min": a.sigma_min, "sigma_max": a.sigma_max, "units": "[0,1] image range"},
            "patch": a.patch,
            "augment": augments(a),
            "loss": loss_text(a),
            "batch": a.batch,
            "optimizer": schedule_text(a),
            **self.common_training(),
            "norm_statistics": norms,
        }}

    def extra_state(self) -> dict[str, Any]:
        return {"recalibrated_at": self.recalibrated_at, "recalibrated_with": self.recalibrated_with,
                "norms_frozen_at": self.norms_frozen_at}

    def restore_extra(self, state: dict[str, Any]) -> None:
        self.recalibrated_at = state.get("recalibrated_at")
        self.norms_frozen_at = state.get("norms_frozen_at")
        # states written before the settings were recorded used 128-pixel crops
        self.recalibrated_with = state.get("recalibrated_with") or (
            None if self.recalibrated_at is None else {"batches": self.args.recalibrate, "patch": min(128, *(min(im.shape[:2]) for im in self.images))})

    def legacy_phases(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Phases of a state saved before they were recorded: the card's own text, else its saved args."""
        card = json.loads((self.out / f"{self.args.name}.json").read_text())
        texts = card.get("training", {}).get("phases") or card.get("stages")
        if texts:
            return [{"text": t} for t in texts]
        saved = argparse.Namespace(**{**vars(self.args), "augment": "on", "loss_weight": "mse",
                                        **state.get("args", {})})  # flips always on and plain MSE then
        return [{"start": 0, "settings": phase_settings(saved)}]

    def legacy_images(self, state: dict[str, Any]) -> int | None:
        """Before the data-set registry, ``mnist`` meant all 10 000 digits (none held out)."""
        return 10_000 if self.args.data == "mnist" else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m explorer.train", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="image folder, or one of: dead-leaves, discs, calpha, mnist")
    p.add_argument("--subset", type=parse_subset, default=None,
                   help="N:A or N:B — train on one of two disjoint N-digit subsets of MNIST's 9500 training digits "
                        "(Kadkhodaie et al., ICLR 2024); needs --data mnist")
    p.add_argument("--subset-seed", type=int, default=0, help="the seed of the permutation the subsets are cut from")
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
    p.add_argument("--val", default="", help="folder of validation images (center 128×128 crops), e.g. Set12")
    p.add_argument("--val-sigmas", type=lambda s: [float(v) for v in s.split(",")], default=[25.0, 50.0], help="8-bit units")
    p.add_argument("--recalibrate", type=int, default=100,
                   help="at the end, average the norm layers' statistics over this many batches (0: keep the running average)")
    p.add_argument("--freeze-norms-at", type=int, default=None,
                   help="re-average the norm statistics at this step and keep them fixed afterwards (the last steps "
                        "train the network that is evaluated); no re-averaging at the end then")
    p.add_argument("--recalibrate-patch", type=int, default=None,
                   help="crop size of the recalibration batches (default 128 for bias-free models, the training "
                        "patch for biased ones); resuming a finished run with other settings recalibrates again")
    add_common_arguments(p, checkpoint_every=500, checkpoint_minutes=0.0)
    args = p.parse_args(argv)
    if args.subset is not None:
        if args.data != "mnist":
            p.error(f"--subset draws from MNIST's training digits: give --data mnist, not {args.data!r}")
        try:
            mnist_subsets(args.subset[0], args.subset_seed)
        except ValueError as e:
            p.error(f"--subset: {e}")
    return complete_args(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(Trainer, parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
