"""The training loop shared by :mod:`explorer.train` (denoisers) and :mod:`explorer.train_energy` (energy
models). A trainer defines its objective L(θ), model, evaluation and card fields; this module does the rest.

A step evaluates the objective on a batch and takes one Adam step (gradient norm clipped if asked) at

    lr(s) = lr · (s + 1)/W                                          for s < W = 200 (linear warm-up),
    lr(s) = lr · (0.01 + 0.99 · ½ (1 + cos(π (s − W)/(S − W))))      after (cosine decay to 1 %),

with s = step − ``--restart-at`` and S = ``--steps`` − ``--restart-at`` (a warm restart of the schedule).

Run folder OUT (``--out``, default ``$EXPLORER_RUNS/NAME``, see :func:`explorer.checkpoints.runs_dir`; never
inside ``pretrained/``, which only ``python -m explorer.publish`` writes):

- ``OUT/NAME.safetensors`` + ``OUT/NAME.json``, the model and its card: every ``--checkpoint-every`` steps
  or ``--checkpoint-minutes`` minutes, on Ctrl-C or SIGTERM (:mod:`explorer.signals`) and at the end;
- ``OUT/training/NAME/{optimizer,rng}.safetensors`` + ``state.json``: what ``--resume`` needs to continue
  exactly (never pickles); the optimizer's state (and ``weights``, below) in 16 MB shards
  ``optimizer-00001-of-0000N.safetensors`` … when larger (:mod:`explorer.shards`), so that a run folder can be
  committed and carried to another machine; ``log.jsonl`` beside them: a JSON line every ``--log-every`` steps.

``--init MODEL`` (a catalog name or a card path) starts from a model's weights with a fresh optimizer,
continuing its card's step count, compute and phases; the schedule restarts at that step unless
``--restart-at`` says otherwise. ``--ema D`` averages the weights over the run's steps
(:mod:`explorer.weight_average`): the card's weights, the validation and the end's norm statistics are
then those of the average, and ``OUT/training/NAME/weights.safetensors`` holds the trained weights. The card's ``training.phases`` lists the settings of each invocation (a
phase ends where the next starts) and ``training.compute`` what the steps cost: ``wall_hours`` (wall-clock
time of the training steps), ``core_hours`` (process CPU time, summed over threads), ``threads`` and
``device`` (one value, or the values in the order they were used; null: not recorded). Metrics that other
tools wrote into the card (``evaluate --write-card``) are kept while the weights stay the same.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from . import checkpoints
from .checkpoints import CheckpointError, is_inside, load_denoiser, resolve, runs_dir, save_model
from .device import default_device
from .shards import load_sharded, save_sharded
from .signals import sigterm_as_interrupt
from .training_compute import Compute, renamed_hours
from .weight_average import WeightAverage

WARMUP = 200


def lr_at(step: int, total: int, lr: float, warmup: int = WARMUP) -> float:
    """Linear warm-up then cosine decay to 1% of ``lr`` at ``total`` steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def schedule_text(lr: float, restart_at: int, steps: int) -> str:
    """The learning-rate schedule in words, for the model card."""
    text = f"Adam, warm-up + cosine decay of lr {lr} over steps {restart_at}–{steps}"
    return text + (f" (a warm restart of the schedule at step {restart_at})" if restart_at else "")


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as ``{"<param index>.<key>": tensor}`` (CPU), for safetensors."""
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`optimizer_tensors` saved (the tensors move to the parameters' device)."""
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)  # a seeded generator on the device


def device_name(device: torch.device) -> str:
    """``cpu``, ``mps`` or ``cuda (<GPU name>)``."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def phase_texts(phases: list[dict[str, Any]], step: int) -> list[str]:
    """The phases as the model card shows them, ``steps A–B: settings``: a phase ends where the next one
    starts (the last at ``step``); empty phases are left out, hand-written ones kept as they are. When the
    number of training images changed between phases, each phase that knows it says it."""
    ends = [p.get("start") for p in phases[1:]] + [step]
    counts = {p["images"] for p in phases if p.get("images") is not None}

    def text(p: dict[str, Any], end: int) -> str:
        if "text" in p:
            return p["text"]
        images = f", {p['images']} training images" if len(counts) > 1 and p.get("images") is not None else ""
        return f"steps {p['start']}–{end}: {p['settings']}{images}"

    return [text(p, end) for p, end in zip(phases, ends) if "text" in p or end > p["start"]]


class Training:
    """Model, optimizer, samplers and counters of one run; saves and restores all that resuming needs.

    Subclasses set ``program``, ``legacy_seconds`` (what the ``seconds`` of their old states measured)
    and define :meth:`setup` (``self.model``, ``self.sampler`` and ``self.image_count``), :meth:`objective`,
    :meth:`architecture`, :meth:`phase_settings`, :meth:`card_fields`, ``progress(values)`` (the progress
    bar's fields) and ``legacy_phases(state)`` (the phases of a state saved before they were recorded);
    optionally :meth:`evaluate`, :meth:`finish`, :meth:`training_metrics`, :meth:`extra_state`/:meth:`restore_extra`, :meth:`check`.
    """

    program = "explorer.train"
    legacy_seconds = "core"
    clip = 0.0  # gradient norm clipping (0: off)
    announce = False  # print each checkpoint's history entry

    def __init__(self, args: argparse.Namespace, argv: list[str] | None = None):
        self.args = args
        self.command = f"python -m {self.program} " + " ".join(argv) if argv else ""
        self.out = Path(args.out)
        self.state_dir = self.out / "training" / args.name
        self.device = torch.device(args.device)
        torch.manual_seed(args.seed)
        self.gen = torch.Generator().manual_seed(args.seed + 1)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.phases: list[dict[str, Any]] = []  # {start, settings, images}, one per change of settings
        self.compute = Compute()
        self.init: dict[str, Any] | None = None  # the model --init started from
        self.average: WeightAverage | None = None  # --ema: the average of the weights since step average_from
        self.average_from = 0
        self.image_count: int | None = None
        self._dropped_metrics = False
        self.setup()
        self.model.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)

    # --- what a trainer defines
    def setup(self) -> None:
        """Set ``self.model``, ``self.sampler`` and ``self.image_count`` (and what the objective needs)."""
        raise NotImplementedError

    def architecture(self) -> str:
        raise NotImplementedError

    def phase_settings(self) -> str:
        raise NotImplementedError

    def objective(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one batch (differentiable) and the values to log besides it."""
        raise NotImplementedError

    def card_fields(self) -> dict[str, Any]:
        """The card's fields besides those of :func:`explorer.checkpoints.save_model` (``training``, ...)."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any] | None:
        """Values of a history entry at this checkpoint (None: no entry)."""
        return None

    def finish(self) -> None:
        """Runs after the loop, before the last checkpoint."""

    def training_metrics(self) -> dict[str, Any]:
        """The card's metrics that training itself measures."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore_extra(self, state: dict[str, Any]) -> None:
        pass

    def legacy_images(self, state: dict[str, Any]) -> int | None:
        """The number of training images of a state saved before it was recorded (None: as now)."""
        return None

    @classmethod
    def check(cls, args: argparse.Namespace) -> str | None:
        """The trainer's own argument checks (an error message, or None)."""
        return None

    # --- the card
    def common_training(self) -> dict[str, Any]:
        """The ``training`` fields every trainer writes."""
        out = {"steps": self.step, "compute": self.compute.card(), "seed": self.args.seed, "command": self.command,
               "history": self.history, "phases": phase_texts(self.phases, self.step)}
        if self.average:
            out["weight_average"] = {
                "text": f"the weights are an exponential moving average (decay {self.average.decay:g}, "
                        f"min(d, (1 + n)/(10 + n)) at the n-th update) of steps {self.average_from}–{self.step}",
                "decay": self.average.decay, "from_step": self.average_from, "updates": self.average.updates}
        return {**out, **({"initialized_from": self.init} if self.init else {})}

    def start_average(self) -> None:
        """``--ema D``: average the weights from this step on (a run that averages already goes on)."""
        if self.args.ema and self.average is None:
            self.average, self.average_from = WeightAverage(self.model, self.args.ema), self.step

    def averaged(self):
        """A block in which the model holds the averaged weights (its own without --ema)."""
        return self.average.applied(self.model) if self.average else contextlib.nullcontext()

    # --- persistence
    def rng_tensors(self) -> dict[str, torch.Tensor]:
        return {"noise_gen": self.gen.get_state(), "patch_gen": self.sampler.state_dict()["generator"]}

    def restore_rng(self, rng: dict[str, torch.Tensor]) -> None:
        self.gen.set_state(rng["noise_gen"])
        self.sampler.load_state_dict({"generator": rng["patch_gen"]})

    def save(self) -> None:
        a = self.args
        self.state_dir.mkdir(parents=True, exist_ok=True)
        save_sharded(optimizer_tensors(self.opt), self.state_dir, "optimizer")
        save_file(self.rng_tensors(), str(self.state_dir / "rng.safetensors"))
        average = ({"decay": self.average.decay, "updates": self.average.updates, "from_step": self.average_from}
                   if self.average else None)
        if self.average:
            save_sharded(self.model.state_dict(), self.state_dir, "weights")
        state = {"step": self.step, "compute": self.compute.state(), "args": vars(a), "history": self.history,
                 "phases": self.phases, "init": self.init, "average": average, **self.extra_state()}
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        card_path = self.out / f"{a.name}.json"
        old = json.loads(card_path.read_text()) if card_path.is_file() else {}
        with self.averaged():
            metrics = self.training_metrics()
            save_model(self.model.eval(), self.architecture(), self.out, a.name, output="denoised", **self.card_fields(), metrics=metrics)
        self.model.train()
        self._keep_metrics(card_path, old, metrics)

    def _keep_metrics(self, card_path: Path, old: dict[str, Any], metrics: dict[str, Any]) -> None:
        """Keep the metrics other tools wrote into the card while the weights are those they measured."""
        others = {k: v for k, v in (old.get("metrics") or {}).items() if k not in metrics}
        if not others:
            return
        if (card := json.loads(card_path.read_text()))["sha256"] == old.get("sha256"):
            card["metrics"] = {**others, **metrics}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
        elif not self._dropped_metrics:
            self._dropped_metrics = True
            print(f"note: {card_path}: metrics {sorted(others)} measured earlier weights; dropped "
                  f"(run explorer.evaluate ... --write-card again)", file=sys.stderr)

    def restore(self) -> None:
        state = json.loads((self.state_dir / "state.json").read_text())
        model, _ = load_denoiser(self.out / f"{self.args.name}.json")
        self.model.load_state_dict(model.state_dict())
        if average := state.get("average"):  # the card holds the average, the state folder the trained weights
            self.average = WeightAverage(self.model, average["decay"], average["updates"])
            self.average_from = average["from_step"]
            self.model.load_state_dict(load_sharded(self.state_dir, "weights"))
        load_optimizer_tensors(self.opt, load_sharded(self.state_dir, "optimizer"))
        self.restore_rng(load_file(str(self.state_dir / "rng.safetensors")))
        self.step = state["step"]
        self.compute = Compute.from_state(state, self.legacy_seconds)
        self.history = [renamed_hours(e, self.legacy_seconds) for e in state["history"]]
        self.phases = state.get("phases") or self.legacy_phases(state)
        last = self.phases[-1] if self.phases else {}
        if "start" in last and "images" not in last:
            last["images"] = self.legacy_images(state)
        self.init = state.get("init")
        self.restore_extra(state)

    def initialize(self, spec: str) -> None:
        """Start from the weights of model ``spec`` (catalog name or card path): its steps, compute,
        history and phases go on; the optimizer and the random streams start fresh."""
        card_path = resolve(spec)
        model, card = load_denoiser(card_path)
        mine = {"architecture": self.architecture(), "config": dict(self.model.config)}
        theirs = {"architecture": card["architecture"], "config": card["config"]}
        if json.dumps(mine, sort_keys=True) != json.dumps(theirs, sort_keys=True):
            raise CheckpointError(f"--init {spec}: its {theirs['architecture']} {theirs['config']} is not the "
                                  f"{mine['architecture']} {mine['config']} of these flags; give the flags of its card's command")
        self.model.load_state_dict(model.state_dict())
        training = card.get("training") if isinstance(card.get("training"), dict) else {}
        self.step = int(training.get("steps") or 0)
        self.compute = Compute.from_card(training, self.legacy_seconds)
        self.history = [renamed_hours(e, self.legacy_seconds) for e in training.get("history") or [] if isinstance(e, dict)]
        texts = training.get("phases") or training.get("stages") or [
            f"steps 0–{self.step}: {training.get('optimizer', 'training')} ({card['name']}'s card lists no phases)"]
        self.phases = [{"text": t} for t in texts] if self.step else []
        self.init = {"model": card["name"], "sha256": card["sha256"], "step": self.step}

    # --- the loop
    def begin_phase(self) -> None:
        """Record this invocation's settings from the current step on (the last phase goes on if they and
        the number of training images match)."""
        settings, last = self.phase_settings(), self.phases[-1] if self.phases else {}
        if last.get("settings") == settings and last.get("images") in (None, self.image_count):
            last["images"] = self.image_count
        else:
            self.phases.append({"start": self.step, "settings": settings, "images": self.image_count})

    def train_step(self) -> dict[str, float]:
        """One Adam step; returns the loss and the objective's other values."""
        a = self.args
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step - a.restart_at, a.steps - a.restart_at, a.lr)
        loss, values = self.objective()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        if self.average:
            self.average.update(self.model)
        self.step += 1
        return {"loss": loss.item(), **values}

    def checkpoint(self) -> None:
        with self.averaged():
            values = self.evaluate()
        if values is not None:
            entry = {"step": self.step, **self.compute.hours(), **values}
            if self.history and self.history[-1]["step"] == self.step:
                self.history[-1] = entry  # e.g. re-validated after the norm statistics were re-averaged
            else:
                self.history.append(entry)
        self.save()

    def run(self) -> None:
        a = self.args
        deadline = time.monotonic() + a.budget_minutes * 60 if a.budget_minutes else math.inf
        every = a.checkpoint_minutes * 60 if a.checkpoint_minutes else math.inf
        next_save = time.monotonic() + every
        self.begin_phase()
        self.start_average()
        label = device_name(self.device)
        self.model.train()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / "log.jsonl"
        bar = tqdm(total=a.steps, initial=self.step, desc=a.name, dynamic_ncols=True, disable=a.quiet)
        try:
            with sigterm_as_interrupt():
                while self.step < a.steps and time.monotonic() < deadline:
                    self.compute.begin(torch.get_num_threads(), label)  # recorded once a step runs
                    wall, core = time.perf_counter(), time.process_time()
                    values = self.train_step()
                    self.compute.wall += time.perf_counter() - wall
                    self.compute.core += time.process_time() - core
                    bar.update(1)
                    bar.set_postfix(self.progress(values))
                    if self.step % a.log_every == 0:
                        with log.open("a") as f:
                            f.write(json.dumps({"step": self.step, **values, "wall_seconds": round(self.compute.wall, 1),
                                                "core_seconds": round(self.compute.core, 1)}) + "\n")
                    if self.step % a.checkpoint_every == 0 or time.monotonic() > next_save:
                        self.checkpoint()
                        if self.announce and self.history:
                            bar.write(json.dumps(self.history[-1]))
                        next_save = time.monotonic() + every
        except KeyboardInterrupt:
            bar.write("interrupted: saving a checkpoint")
        finally:
            bar.close()
        with self.averaged():
            self.finish()  # e.g. the norm statistics of the weights the card ships
        self.checkpoint()


# --------------------------------------------------------------------------- the command line
def add_common_arguments(p: argparse.ArgumentParser, checkpoint_every: int, checkpoint_minutes: float) -> None:
    """The flags both trainers take."""
    p.add_argument("--name", required=True)
    p.add_argument("--out", default=None, help="run folder (default $EXPLORER_RUNS/NAME, i.e. ~/.cache/denoiser-explorer/"
                   "runs/NAME); never inside pretrained/: publish with python -m explorer.publish")
    p.add_argument("--init", metavar="MODEL", default=None,
                   help="start from this catalog model's weights (name or card path), continuing its steps and phases, "
                        "with a fresh optimizer; the schedule restarts at its step unless --restart-at says otherwise")
    p.add_argument("--steps", type=int, default=20000, help="total steps (the lr schedule spans them)")
    p.add_argument("--budget-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--restart-at", type=int, default=None,
                   help="with --resume or --init: restart the warm-up + cosine schedule (peak --lr) at this step, spanning to --steps")
    p.add_argument("--ema", type=float, default=0.0, metavar="D",
                   help="ship an exponential moving average of the weights, decay D per step (e.g. 0.999: about the "
                        "last 1000 steps), from the step this flag is first given (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=checkpoint_every, help="steps")
    p.add_argument("--checkpoint-minutes", type=float, default=checkpoint_minutes, help="also checkpoint after this wall time (0: off)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda, then mps, then cpu; $EXPLORER_DEVICE overrides)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (step, optimizer, RNG state)")
    p.add_argument("--quiet", action="store_true")


def complete_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on other flags or on the machine."""
    args.out = str(runs_dir() / args.name) if args.out is None else args.out
    args.device = str(default_device()) if args.device is None else args.device
    args.restart_at = 0 if args.restart_at is None and not args.init else args.restart_at
    return args


def check_args(args: argparse.Namespace) -> str | None:
    """The argument checks both trainers share: an error message, or None."""
    for flag, value, low in (("--steps", args.steps, 1), ("--batch", args.batch, 1), ("--patch", args.patch, 1),
                             ("--checkpoint-every", args.checkpoint_every, 1), ("--log-every", args.log_every, 1),
                             ("--threads", args.threads, 0), ("--budget-minutes", args.budget_minutes, 0),
                             ("--checkpoint-minutes", args.checkpoint_minutes, 0)):
        if not value >= low:
            return f"{flag} must be at least {low}, got {value}"
    if not 0 <= args.ema < 1:
        return f"--ema must be in [0, 1) (0: off), got {args.ema}"
    if not args.lr > 0:
        return f"--lr must be positive, got {args.lr}"
    if args.resume and args.init:
        return "--resume continues a run, --init starts one from a model: give one of them"
    if is_inside(args.out, checkpoints.PRETRAINED_DIR):
        return (f"--out {args.out} is inside {checkpoints.PRETRAINED_DIR}, the shipped models: train into a run folder "
                f"(the default is {runs_dir() / args.name}), start from a shipped model with --init NAME, "
                f"and copy a finished model there with python -m explorer.publish RUN_DIR")
    if args.restart_at is not None and not 0 <= args.restart_at < args.steps:
        return f"--restart-at {args.restart_at} must be in [0, --steps={args.steps})"
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        return f"--device {args.device}: {e}"
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.type)
    if available and not available():
        return f"--device {args.device}: not available on this machine"
    return None


def run(trainer_class: type[Training], args: argparse.Namespace, argv: list[str]) -> int:
    """Check the arguments, build the trainer, resume or initialize it, train; the exit status."""
    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    error = check_args(args) or trainer_class.check(args)
    if error:
        return fail(error)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        trainer = trainer_class(args, argv)
        if args.resume:
            if not (trainer.state_dir / "state.json").is_file():
                return fail(f"nothing to resume in {trainer.state_dir}")
            trainer.restore()
        elif args.init:
            trainer.initialize(args.init)
    except (CheckpointError, ValueError, OSError) as e:
        return fail(str(e))
    if args.init and args.steps <= trainer.step:
        return fail(f"--steps {args.steps}: {args.init} has trained {trainer.step} steps already")
    if args.restart_at is None:
        args.restart_at = trainer.step
    if not 0 <= args.restart_at < args.steps:
        return fail(f"--restart-at {args.restart_at} must be in [0, --steps={args.steps})")
    if args.restart_at > trainer.step:
        return fail(f"--restart-at {args.restart_at} is after the saved step {trainer.step} (use --resume)")
    trainer.run()
    return 0
