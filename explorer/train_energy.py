"""Train an energy model by dual score matching: ``python -m explorer.train_energy --data mnist --name NAME ...``.

Objective (see :mod:`explorer.energy`): per image, y = x + √t z with log t uniform on
[log t_min, log t_max],

    L = ‖x̂(y, t) − x‖²/(d t) + (t/d)² (∂_t U − d/(2t) + ‖y − x‖²/(2t²))²     (``--objective dual``)

or the first term alone (``--objective dsm``). ``--objective score`` trains the score-only twin
(:class:`~explorer.energy.ScoreUNet`, the same network read directly as the score) by L_DSM: the
baseline for the energy model's denoising PSNR; it records the held-out L_DSM instead of an NLL. The last ``--heldout`` images of the data are never
trained on: at every checkpoint log Z is estimated on them at T = t_max and their mean NLL is
recorded (nats/image, bits/dim, and +b bits/dim with ``--dequantize-bits b``, which trains on
x + U(0, 2^-b) noise so that a continuous density of b-bit data is well defined).

Checkpoints, every ``--checkpoint-every`` steps or ``--checkpoint-minutes`` minutes (and on Ctrl-C or SIGTERM
and at the end), write the model ``OUT/NAME.safetensors`` + card ``OUT/NAME.json`` (log Z and the t
range are buffers in the weights; the card repeats them) and the resumable state
``OUT/training/NAME/{optimizer.safetensors, rng.safetensors, state.json}`` (no pickles); ``--resume``
continues from it. A JSON-lines log goes to ``OUT/training/NAME/log.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .checkpoints import PRETRAINED_DIR, load_denoiser, save_model
from .data.patches import PatchSampler
from .energy import T_MAX, T_MIN, EnergyUNet, ScoreUNet, bits_per_dim, dual_score_loss, estimate_log_z, sample_log_t
from .signals import sigterm_as_interrupt
from .train import _load_optimizer_tensors, _optimizer_tensors, lr_at, training_images

ARCHITECTURES = {"dual": "energy-unet", "dsm": "energy-unet", "score": "score-unet"}


class EnergyTrainer:
    """Model, optimizer, samplers and counters; saves/restores everything needed to resume exactly."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.state_dir = self.out / "training" / args.name
        torch.manual_seed(args.seed)
        images = training_images(args.data, args.patch, args.seed)
        if len(images) <= args.heldout:
            raise ValueError(f"{args.data}: {len(images)} images, not more than the {args.heldout} held out")
        train, held = images[: len(images) - args.heldout], images[len(images) - args.heldout:]
        self.sampler = PatchSampler(train, args.patch, batch_size=args.batch, seed=args.seed, augment=not args.no_augment)
        self.heldout = PatchSampler(held, args.patch, batch_size=len(held), seed=args.seed + 7, augment=False).sample()
        self.gen = torch.Generator().manual_seed(args.seed + 1)
        model_class = ScoreUNet if args.objective == "score" else EnergyUNet
        self.model = model_class(channels=self.sampler.channels, width=args.width, levels=args.levels,
                                convs_per_block=args.convs_per_block, embed=args.embed, t_min=args.t_min, t_max=args.t_max)
        self.model.set_data_stats(self.dequantize(PatchSampler(train, args.patch, seed=args.seed + 3).sample(1024), self.gen))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []

    def dequantize(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """x + U(0, 2^-b) noise with ``--dequantize-bits`` b > 0, else x."""
        b = self.args.dequantize_bits
        return x + torch.rand(x.shape, generator=gen) * 2.0**-b if b else x

    # --- persistence
    def save(self) -> None:
        a = self.args
        self.state_dir.mkdir(parents=True, exist_ok=True)
        save_file(_optimizer_tensors(self.opt), str(self.state_dir / "optimizer.safetensors"))
        save_file({"noise_gen": self.gen.get_state(), "patch_gen": self.sampler.state_dict()["generator"]}, str(self.state_dir / "rng.safetensors"))
        state = {"step": self.step, "seconds": self.seconds, "args": vars(a), "history": self.history}
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        last = self.history[-1] if self.history else {}
        energy = None if a.objective == "score" else {
            "log_z": float(self.model.log_z),
            "t_min": a.t_min,
            "t_max": a.t_max,
            "nll": "−log p(x) = U(x, t_min) + log Z, nats per image, [0,1] image range",
            "normalized_at": f"T = t_max = {a.t_max:g} on {a.heldout} held-out images",
            "dequantize_bits": a.dequantize_bits,
        }
        old_metrics = {}
        card_path = self.out / f"{a.name}.json"
        if card_path.exists():  # keep metrics other tools wrote into the card (e.g. a denoising comparison)
            old_metrics = json.loads(card_path.read_text()).get("metrics", {})
        metrics = {**old_metrics, **{k: v for k, v in last.items() if k not in ("step", "cpu_hours")}}
        save_model(
            self.model.eval(),
            ARCHITECTURES[a.objective],
            self.out,
            a.name,
            output="denoised",
            **({"energy": energy} if energy else {}),
            training={
                "data": a.data,
                "objective": a.objective,
                "noise": {"distribution": "log-uniform t = σ²", "t_min": a.t_min, "t_max": a.t_max, "units": "[0,1] image range"},
                "patch": a.patch,
                "batch": a.batch,
                "optimizer": f"Adam lr {a.lr}, warm-up + cosine decay over {a.steps} steps",
                "steps": self.step,
                "cpu_hours": round(self.seconds / 3600, 3),
                "seed": a.seed,
                "command": "python -m explorer.train_energy " + " ".join(sys.argv[1:]) if sys.argv[1:] else "",
                "history": self.history,
            },
            metrics=metrics,
        )
        self.model.train()

    def restore(self) -> None:
        state = json.loads((self.state_dir / "state.json").read_text())
        model, _ = load_denoiser(self.out / f"{self.args.name}.json")
        self.model.load_state_dict(model.state_dict())
        _load_optimizer_tensors(self.opt, load_file(str(self.state_dir / "optimizer.safetensors")))
        rng = load_file(str(self.state_dir / "rng.safetensors"))
        self.gen.set_state(rng["noise_gen"])
        self.sampler.load_state_dict({"generator": rng["patch_gen"]})
        self.step, self.seconds, self.history = state["step"], state["seconds"], state["history"]

    # --- the loop
    def train_step(self) -> dict[str, float]:
        a = self.args
        x = self.dequantize(self.sampler.sample(a.batch), self.gen)
        tau = sample_log_t(a.batch, a.t_min, a.t_max, self.gen)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, a.steps, a.lr)
        loss, parts = dual_score_loss(self.model, x, tau, a.objective, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.clip)
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), **parts}

    def evaluate(self) -> dict[str, Any]:
        """Normalize on the held-out images and record their mean NLL (score-only: their mean L_DSM)."""
        a = self.args
        self.model.eval()
        held = self.dequantize(self.heldout, torch.Generator().manual_seed(a.seed + 13))
        if a.objective == "score":
            gen = torch.Generator().manual_seed(a.seed + 17)
            tau = sample_log_t(len(held), a.t_min, a.t_max, gen)
            with torch.no_grad():
                _, parts = dual_score_loss(self.model, held, tau, "score", gen)
            self.model.train()
            return {"step": self.step, "cpu_hours": round(self.seconds / 3600, 3), "heldout_dsm": round(parts["dsm"], 5)}
        log_z, err = estimate_log_z(self.model, held, draws=2, generator=torch.Generator().manual_seed(a.seed + 11))
        with torch.no_grad():
            nll = self.model.nll(held).double().mean().item()
        d = held[0].numel()
        entry = {"step": self.step, "cpu_hours": round(self.seconds / 3600, 3), "log_z": round(log_z, 3), "log_z_stderr": round(err, 3),
                 "heldout_nll_nats": round(nll, 3), "heldout_bits_per_dim": round(float(bits_per_dim(nll, d)), 4)}
        if a.dequantize_bits:
            entry[f"heldout_bits_per_dim_{a.dequantize_bits}bit"] = round(float(bits_per_dim(nll, d, a.dequantize_bits)), 4)
        self.model.train()
        return entry

    def checkpoint(self) -> None:
        if not self.history or self.history[-1]["step"] != self.step:
            self.history.append(self.evaluate())
        self.save()

    def run(self) -> None:
        a = self.args
        deadline = time.monotonic() + a.budget_minutes * 60 if a.budget_minutes else math.inf
        next_save = time.monotonic() + a.checkpoint_minutes * 60 if a.checkpoint_minutes else math.inf
        self.model.train()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / "log.jsonl"
        bar = tqdm(total=a.steps, initial=self.step, desc=a.name, dynamic_ncols=True, disable=a.quiet)
        try:
            with sigterm_as_interrupt():
                while self.step < a.steps and time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    parts = self.train_step()
                    self.seconds += time.perf_counter() - t0
                    bar.update(1)
                    bar.set_postfix(dsm=f"{parts['dsm']:.3f}", tsm=f"{parts['tsm']:.1e}")
                    if self.step % a.log_every == 0:
                        with log.open("a") as f:
                            f.write(json.dumps({"step": self.step, **parts, "seconds": round(self.seconds, 1)}) + "\n")
                    if self.step % a.checkpoint_every == 0 or time.monotonic() > next_save:
                        self.checkpoint()
                        bar.write(json.dumps(self.history[-1]))
                        next_save = time.monotonic() + a.checkpoint_minutes * 60 if a.checkpoint_minutes else math.inf
        except KeyboardInterrupt:
            bar.write("interrupted: saving a checkpoint")
        finally:
            bar.close()
            self.checkpoint()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m explorer.train_energy", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="image folder, or one of: mnist, dead-leaves, discs, calpha")
    p.add_argument("--name", required=True)
    p.add_argument("--out", default=str(PRETRAINED_DIR))
    p.add_argument("--objective", default="dual", choices=["dual", "dsm", "score"],
                   help="dual: DSM + TSM; dsm: DSM alone; score: the score-only twin (no energy) by DSM")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--convs-per-block", type=int, default=2)
    p.add_argument("--embed", type=int, default=64, help="width of the log-t embedding MLP")
    p.add_argument("--t-min", type=float, default=T_MIN, help="smallest noise variance (NLL is read there)")
    p.add_argument("--t-max", type=float, default=T_MAX, help="largest noise variance (log Z is computed there)")
    p.add_argument("--dequantize-bits", type=int, default=0, help="train on x + U(0, 2^-b); 8 for 8-bit data such as MNIST")
    p.add_argument("--heldout", type=int, default=500, help="last images of the data, kept for log Z and validation")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--no-augment", action="store_true", help="no dihedral augmentation (e.g. digits)")
    p.add_argument("--steps", type=int, default=20000, help="total steps (the lr schedule spans them)")
    p.add_argument("--budget-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="also checkpoint after this wall time (0: off)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = EnergyTrainer(args)
    if args.resume:
        if not (trainer.state_dir / "state.json").is_file():
            print(f"error: nothing to resume in {trainer.state_dir}", file=sys.stderr)
            return 2
        trainer.restore()
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
