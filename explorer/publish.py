"""Publish a trained model into ``pretrained/``: ``python -m explorer.publish RUN_DIR_OR_CARD [--force]``.

Training writes into run folders (:mod:`explorer.training`; default ``$EXPLORER_RUNS/NAME``), never into
``pretrained/``; this command is the one way a model enters it. RUN_DIR_OR_CARD is a run folder (the one
card in it, or ``NAME.json`` for a folder named NAME), a card ``NAME.json`` or its ``NAME.safetensors``.
It copies the weights and the card, which holds the training record and the evaluation tables (their
commands then name the model by its catalog name instead of the run's paths), and nothing else (never the optimizer state or the log under ``training/``), and it refuses

- weights whose sha256 does not match the card (checked before and after the copy), or that do not load;
- a card without an evaluation table in ``metrics`` (an entry with ``results``, as
  ``python -m explorer.evaluate CARD ... --write-card`` writes): the message gives the command to run;
- a model already in ``pretrained/`` under that name, unless ``--force`` replaces it.

The copies are written beside their final names and renamed into place, the weights before the card.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from . import checkpoints
from .checkpoints import CheckpointError, is_inside, load_denoiser, sha256_file
from .data.registry import NAMES


class PublishError(ValueError):
    """A model that cannot be published; the message says why and what to do."""


def find_card(source: Path | str) -> Path:
    """The card of a run folder, a ``.json`` card or a ``.safetensors`` file."""
    source = Path(source).expanduser()
    if source.is_dir():
        named = source / f"{source.name}.json"
        cards = [named] if named.is_file() else sorted(source.glob("*.json"))
        if len(cards) != 1:
            raise PublishError(f"{source}: {'no model card' if not cards else f'{len(cards)} model cards'} in the folder; "
                               f"give the card's path")
        return cards[0]
    if source.suffix in (".json", ".safetensors"):
        card = source.with_suffix(".json")
        if card.is_file():
            return card
    raise PublishError(f"{source}: not a run folder, a model card (.json) or weights with a card beside them")


def evaluation_tables(card: dict[str, Any]) -> list[str]:
    """The names of the card's evaluation tables: ``metrics`` entries that hold ``results``."""
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    return [k for k, v in metrics.items() if isinstance(v, dict) and isinstance(v.get("results"), dict)]


def evaluate_command(card: dict[str, Any], card_path: Path) -> str:
    """The ``explorer.evaluate`` command that writes an evaluation table into the card at ``card_path``."""
    data = (card.get("training") or {}).get("data")
    if data in NAMES:
        return f"python -m explorer.evaluate {card_path} --data {data} --sigma 0.05,0.1,0.2,0.4 --scale 1 --write-card"
    return f"python -m explorer.evaluate {card_path} --data TEST_FOLDER --sigma 15,25,50 --write-card  (e.g. ../shared/data/bsd/Set12)"


def shipped_commands(metrics: Any, name: str, paths: tuple[Path, ...]) -> Any:
    """The card's tables with each recorded command naming the model as shipped (its catalog name)
    instead of the run's paths, so that the command regenerates the table from ``pretrained/``."""
    if not isinstance(metrics, dict):
        return metrics
    out: dict[str, Any] = {}
    for key, table in metrics.items():
        if isinstance(table, dict) and isinstance(table.get("command"), str):
            command = table["command"]
            for path in paths:  # the card, the weights, then the folder (longest first)
                command = command.replace(str(path), name)
            table = {**table, "command": command}
        out[key] = table
    return out


def publish(source: Path | str, force: bool = False, into: Path | str | None = None) -> Path:
    """Copy the model of ``source`` (run folder, card or weights) into ``into`` (default ``pretrained/``);
    return the card written there. Raises :class:`PublishError` or :class:`CheckpointError`."""
    card_path = find_card(source)
    into = Path(into) if into is not None else checkpoints.PRETRAINED_DIR
    if is_inside(card_path, into):
        raise PublishError(f"{card_path} is in {into} already")
    _, card = load_denoiser(card_path)  # the card is valid, the weights match its sha256 and load
    name, weights = card["name"], card_path.parent / card["weights"]
    if not evaluation_tables(card):
        raise PublishError(f"{card_path}: no evaluation table in the card's metrics; measure one first:\n"
                           f"  {evaluate_command(card, card_path)}")
    targets = (into / f"{name}.safetensors", into / f"{name}.json")
    present = [p for p in targets if p.exists()]
    if present and not force:
        raise PublishError(f"{name} is a shipped model ({', '.join(str(p) for p in present)}); --force replaces it")
    into.mkdir(parents=True, exist_ok=True)
    published = {k: v for k, v in card.items() if k != "_card_path"}
    published["weights"] = targets[0].name
    published["metrics"] = shipped_commands(card.get("metrics"), name, (card_path, weights, card_path.parent))
    temporary = [p.with_name(f".{p.name}.publishing") for p in targets]
    try:
        shutil.copyfile(weights, temporary[0])
        digest = sha256_file(temporary[0])
        if digest != card["sha256"]:
            raise PublishError(f"{weights}: the copy's sha256 {digest[:12]}… is not the card's {card['sha256'][:12]}…; nothing published")
        temporary[1].write_text(json.dumps(published, indent=2) + "\n")
        for tmp, target in zip(temporary, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temporary:
            tmp.unlink(missing_ok=True)
    load_denoiser(targets[1])
    return targets[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.publish", description=__doc__.splitlines()[0])
    p.add_argument("source", metavar="RUN_DIR_OR_CARD", help="a run folder, a model card (.json) or its .safetensors")
    p.add_argument("--force", action="store_true", help="replace a model of the same name in pretrained/")
    args = p.parse_args(argv)
    try:
        card = publish(args.source, force=args.force)
    except (PublishError, CheckpointError, OSError) as e:
        print(f"explorer.publish: error: {e}", file=sys.stderr)
        return 1
    sha = json.loads(card.read_text())["sha256"]
    print(f"published {card.stem}: {card.with_suffix('.safetensors')} (sha256 {sha[:12]}…) and {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
