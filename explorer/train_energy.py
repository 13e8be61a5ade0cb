"""Train an energy model by dual score matching: ``python -m explorer.train_energy --data mnist --name NAME ...``.

Objective (see :mod:`explorer.energy`): per image, y = x + √t z with log t uniform on
[log t_min, log t_max],

    L = ‖x̂(y, t) − x‖²/(d t) + (t/d)² (∂_t U − d/(2t) + ‖y − x‖²/(2t²))²     (``--objective dual``)

or the first term alone (``--objective dsm``). ``--objective score`` trains the score-only twin
(:class:`~explorer.energy.ScoreUNet`, the same network read directly as the score) by L_DSM: the
baseline for the energy model's denoising PSNR; it records the held-out L_DSM instead of an NLL.

Held-out images, never trained on, each used once (center crops of ``--patch`` pixels): for a registered
data set (:mod:`explorer.data.registry`) the first ``--heldout`` of its held-out images (``mnist``: the
500 held-out digits, the default); for a folder the images of ``--val DIR``, else the last ``--heldout``
images of the folder. At every checkpoint log Z is estimated on them at T = t_max and their mean NLL is
recorded (nats/image, bits/dim, and +b bits/dim with ``--dequantize-bits b``, which trains on
x + U(0, 2^-b) noise so that a continuous density of b-bit data is well defined).

The loop, the run folder (default ``$EXPLORER_RUNS/NAME``; never inside ``pretrained/``), checkpoints
(``OUT/NAME.safetensors`` + card ``OUT/NAME.json``, where log Z and the t range are buffers in the weights
and the card repeats them; resumable state under ``OUT/training/NAME/``, no pickles), ``--resume``,
``--init MODEL``, the schedule and the compute accounting are :mod:`explorer.training`'s.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

import numpy as np
import torch

from .data import load_folder
from .data.patches import PatchSampler
from .energy import T_MAX, T_MIN, EnergyUNet, ScoreUNet, bits_per_dim, dual_score_loss, estimate_log_z, sample_log_t
from .train import registered_data, training_images
from .training import Training, add_common_arguments, complete_args, generator, run, schedule_text

ARCHITECTURES = {"dual": "energy-unet", "dsm": "energy-unet", "score": "score-unet"}


def center_crops(images: list[np.ndarray], patch: int) -> torch.Tensor:
    """The (n, C, patch, patch) center crops of ``images``, each once."""
    crops = []
    for i, im in enumerate(images):
        a = np.asarray(im, dtype=np.float32)
        h, w = a.shape[:2]
        if h < patch or w < patch:
            raise ValueError(f"held-out image {i} is {h}×{w}, smaller than the {patch}-pixel patch")
        top, left = (h - patch) // 2, (w - patch) // 2
        crop = a[top:top + patch, left:left + patch]
        crops.append(torch.from_numpy(np.ascontiguousarray(crop[None] if crop.ndim == 2 else np.moveaxis(crop, -1, 0))))
    return torch.stack(crops)


def split_images(args: argparse.Namespace) -> tuple[list[np.ndarray], torch.Tensor]:
    """(training images, held-out crops): a registered data set's training images and the first
    ``--heldout`` of its held-out images; a folder's images and those of ``--val`` (else its last ``--heldout``)."""
    registered = registered_data(args.data)
    if registered is not None:
        if args.val:
            raise ValueError(f"--val is for folders: {args.data} holds out its own images")
        if registered.test_count is not None and args.heldout > registered.test_count:
            raise ValueError(f"--heldout {args.heldout}: {args.data} holds out {registered.test_count} images")
        train = training_images(args.data, args.patch, args.seed)
        size = min(train[0].shape[:2])  # held-out images are made like the training images, then cropped
        held = [registered.test_image(i, size) for i in range(args.heldout)]
    elif args.val:
        train, held = load_folder(args.data), load_folder(args.val)
    else:
        images = load_folder(args.data)
        if len(images) <= args.heldout:
            raise ValueError(f"{args.data}: {len(images)} images, not more than the {args.heldout} held out (or give --val DIR)")
        train, held = images[: len(images) - args.heldout], images[len(images) - args.heldout:]
    return train, center_crops(held, args.patch)


def phase_settings(a: argparse.Namespace) -> str:
    """The objective, noise, data and schedule of one training invocation, in words."""
    flips = "without" if a.no_augment else "with"
    dequantized = f", dequantized with U(0, 2^-{a.dequantize_bits})" if a.dequantize_bits else ""
    return (f"{a.objective} objective, t log-uniform on [{a.t_min:g}, {a.t_max:g}], batch {a.batch} of {a.patch}-pixel "
            f"patches {flips} flips/rotations{dequantized}, {schedule_text(a.lr, a.restart_at, a.steps)}")


class EnergyTrainer(Training):
    """Dual score matching (or DSM, or the score-only twin) on the shared loop of :class:`~explorer.training.Training`."""

    program = "explorer.train_energy"
    legacy_seconds = "wall"  # the 'seconds' of old states were wall time
    announce = True

    def setup(self) -> None:
        a = self.args
        train, self.heldout = split_images(a)
        self.heldout_sha256 = hashlib.sha256(self.heldout.numpy().tobytes()).hexdigest()
        self.heldout_changed = False  # since the last history entry (states of the old code drew them with replacement)
        self.image_count = len(train)
        self.sampler = PatchSampler(train, a.patch, batch_size=a.batch, seed=a.seed, augment=not a.no_augment)
        model_class = ScoreUNet if a.objective == "score" else EnergyUNet
        self.model = model_class(channels=self.sampler.channels, width=a.width, levels=a.levels,
                                 convs_per_block=a.convs_per_block, embed=a.embed, t_min=a.t_min, t_max=a.t_max,
                                 activation=a.activation, scaled_input=a.scaled_input)
        self.model.set_data_stats(self.dequantize(PatchSampler(train, a.patch, seed=a.seed + 3).sample(1024), self.gen))
        self.clip = a.clip
        # the noise z of the objective is drawn on the device (on the CPU: from the one noise generator)
        self.device_gen = None if self.device.type == "cpu" else generator(a.seed + 5, self.device)

    def architecture(self) -> str:
        return ARCHITECTURES[self.args.objective]

    def phase_settings(self) -> str:
        return phase_settings(self.args)

    def dequantize(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """x + U(0, 2^-b) noise with ``--dequantize-bits`` b > 0, else x (drawn on the CPU)."""
        b = self.args.dequantize_bits
        return x + torch.rand(x.shape, generator=gen) * 2.0**-b if b else x

    # --- the objective
    def objective(self) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.args
        x = self.dequantize(self.sampler.sample(a.batch), self.gen).to(self.device)
        tau = sample_log_t(a.batch, a.t_min, a.t_max, self.gen).to(self.device)
        return dual_score_loss(self.model, x, tau, a.objective, self.device_gen or self.gen)

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return {"dsm": f"{values['dsm']:.3f}", "tsm": f"{values['tsm']:.1e}"}

    def evaluate(self) -> dict[str, Any] | None:
        """Normalize on the held-out images and record their mean NLL (score-only: their mean L_DSM)."""
        if self.history and self.history[-1]["step"] == self.step and not self.heldout_changed:
            return None
        self.heldout_changed = False
        a = self.args
        self.model.eval()
        held = self.dequantize(self.heldout, torch.Generator().manual_seed(a.seed + 13)).to(self.device)
        if a.objective == "score":
            gen = torch.Generator().manual_seed(a.seed + 17)
            tau = sample_log_t(len(held), a.t_min, a.t_max, gen).to(self.device)
            with torch.no_grad():
                _, parts = dual_score_loss(self.model, held, tau, "score", gen if self.device.type == "cpu" else generator(a.seed + 17, self.device))
            self.model.train()
            return {"heldout_dsm": round(parts["dsm"], 5)}
        log_z, err = estimate_log_z(self.model, held, draws=2, generator=generator(a.seed + 11, self.device))
        with torch.no_grad():
            nll = self.model.nll(held).double().mean().item()
        d = held[0].numel()
        entry = {"log_z": round(log_z, 3), "log_z_stderr": round(err, 3),
                 "heldout_nll_nats": round(nll, 3), "heldout_bits_per_dim": round(float(bits_per_dim(nll, d)), 4)}
        if a.dequantize_bits:
            entry[f"heldout_bits_per_dim_{a.dequantize_bits}bit"] = round(float(bits_per_dim(nll, d, a.dequantize_bits)), 4)
        self.model.train()
        return entry

    # --- the card and the state
    def training_metrics(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {k: v for k, v in last.items() if k not in ("step", "wall_hours", "core_hours", "cpu_hours")}

    def card_fields(self) -> dict[str, Any]:
        a = self.args
        energy = None if a.objective == "score" else {
            "log_z": float(self.model.log_z),
            "t_min": a.t_min,
            "t_max": a.t_max,
            "nll": "−log p(x) = U(x, t_min) + log Z, nats per image, [0,1] image range",
            "normalized_at": f"T = t_max = {a.t_max:g} on {len(self.heldout)} held-out images",
            "dequantize_bits": a.dequantize_bits,
        }
        training = {
            "data": a.data,
            "objective": a.objective,
            "noise": {"distribution": "log-uniform t = σ²", "t_min": a.t_min, "t_max": a.t_max, "units": "[0,1] image range"},
            "patch": a.patch,
            "batch": a.batch,
            "heldout": len(self.heldout),
            "optimizer": schedule_text(a.lr, a.restart_at, a.steps),
            **self.common_training(),
        }
        return {**({"energy": energy} if energy else {}), "training": training}

    def rng_tensors(self) -> dict[str, torch.Tensor]:
        out = super().rng_tensors()
        return {**out, "device_gen": self.device_gen.get_state()} if self.device_gen is not None else out

    def restore_rng(self, rng: dict[str, torch.Tensor]) -> None:
        super().restore_rng(rng)
        if self.device_gen is not None and "device_gen" in rng:
            self.device_gen.set_state(rng["device_gen"])

    def extra_state(self) -> dict[str, Any]:
        return {"heldout_sha256": self.heldout_sha256}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """A state whose held-out images were others is measured again (log Z too) at its next checkpoint."""
        self.heldout_changed = state.get("heldout_sha256") != self.heldout_sha256

    def legacy_phases(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Phases of a state saved before they were recorded: one, from its saved args."""
        saved = argparse.Namespace(**{**vars(self.args), "restart_at": 0, **state.get("args", {})})
        return [{"start": 0, "settings": phase_settings(saved)}]

    @classmethod
    def check(cls, args: argparse.Namespace) -> str | None:
        if args.heldout < 1 and not args.val:
            return f"--heldout must be at least 1, got {args.heldout}"
        if not 0 < args.t_min < args.t_max:
            return f"need 0 < --t-min < --t-max, got {args.t_min:g} and {args.t_max:g}"
        if args.dequantize_bits < 0:
            return f"--dequantize-bits must be ≥ 0, got {args.dequantize_bits}"
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m explorer.train_energy", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="image folder, or one of: mnist, dead-leaves, discs, calpha")
    p.add_argument("--objective", default="dual", choices=["dual", "dsm", "score"],
                   help="dual: DSM + TSM; dsm: DSM alone; score: the score-only twin (no energy) by DSM")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--convs-per-block", type=int, default=2)
    p.add_argument("--embed", type=int, default=64, help="width of the log-t embedding MLP")
    p.add_argument("--activation", default="relu", choices=["relu", "silu", "gelu"],
                   help="the UNet's nonlinearity (ReLU: homogeneous; SiLU / GELU: smooth)")
    p.add_argument("--scaled-input", action="store_true", help="the UNet reads (y − m) / √(t + v_d), unit variance at every t")
    p.add_argument("--t-min", type=float, default=T_MIN, help="smallest noise variance (NLL is read there)")
    p.add_argument("--t-max", type=float, default=T_MAX, help="largest noise variance (log Z is computed there)")
    p.add_argument("--dequantize-bits", type=int, default=0, help="train on x + U(0, 2^-b); 8 for 8-bit data such as MNIST")
    p.add_argument("--heldout", type=int, default=500,
                   help="held-out images for log Z and validation: the first N the data set holds out, or a folder's last N")
    p.add_argument("--val", default="", help="folder of held-out images (center crops of --patch pixels), for folder data")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--no-augment", action="store_true", help="no dihedral augmentation (e.g. digits)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping (0: off)")
    add_common_arguments(p, checkpoint_every=1000, checkpoint_minutes=5.0)
    return complete_args(p.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(EnergyTrainer, parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
