"""Checkpoints: safetensors weights + a JSON model card, verified by sha256; the model catalog.

A model NAME is two files side by side: ``NAME.safetensors`` (tensors only: no code can run on
load) and ``NAME.json``, the model card::

    {"name": ..., "architecture": "dncnn" | "unet" | ..., "config": {...constructor args...},
     "output": "residual" | "denoised", "channels": 1, "weights": "NAME.safetensors",
     "sha256": "<hex digest of the weights file>", "training": {...}, "metrics": {...}}

Catalog folders: the project's ``pretrained/`` and the user model folder (``$EXPLORER_MODELS``,
default ``~/.cache/denoiser-explorer/models``). Training writes into run folders under :func:`runs_dir`
(``$EXPLORER_RUNS``, default ``~/.cache/denoiser-explorer/runs``), never into ``pretrained/``; a model
enters ``pretrained/`` only through ``python -m explorer.publish``.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import energy  # noqa: F401  (registers the energy architectures for model cards)
from .denoisers import ARCHITECTURES, Denoiser, build
from .handle import ModelHandle

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
REQUIRED_CARD_KEYS = {"name": str, "architecture": str, "config": dict, "weights": str, "sha256": str}


class CheckpointError(ValueError):
    """A model file or card that cannot be used; the message names the file and the problem."""


def user_models_dir() -> Path:
    """``$EXPLORER_MODELS`` or ``~/.cache/denoiser-explorer/models``."""
    env = os.environ.get("EXPLORER_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "models"


def runs_dir() -> Path:
    """``$EXPLORER_RUNS`` or ``~/.cache/denoiser-explorer/runs``: where training runs write (one folder per run)."""
    env = os.environ.get("EXPLORER_RUNS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "runs"


def is_inside(path: Path | str, folder: Path | str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both resolved, so ``..`` and links count)."""
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def model_dirs() -> list[Path]:
    return [PRETRAINED_DIR, user_models_dir()]


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: Denoiser, architecture: str, directory: Path | str, name: str, **card_fields: Any) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` into ``directory``; return the card path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    card = {
        "name": name,
        "architecture": architecture,
        "config": dict(model.config),
        "output": "denoised",
        "channels": model.channels,
        "blind": model.blind,
        "bias_free": model.bias_free,
        "weights": weights.name,
        "sha256": sha256_file(weights),
        **card_fields,
    }
    card_path = directory / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path


def read_card(card_path: Path | str) -> dict[str, Any]:
    """Parse and validate a model card (schema, and weights file beside it)."""
    card_path = Path(card_path)
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{card_path}: unreadable model card ({e})") from e
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path}: a model card must be a JSON object")
    for key, typ in REQUIRED_CARD_KEYS.items():
        if not isinstance(card.get(key), typ):
            raise CheckpointError(f"{card_path}: card field {key!r} missing or not a {typ.__name__}")
    weights = card["weights"]
    if Path(weights).name != weights or weights in {".", ".."} or not weights.endswith(".safetensors"):
        raise CheckpointError(f"{card_path}: 'weights' must name a .safetensors file beside the card, got {weights!r}")
    if card["architecture"] not in ARCHITECTURES:
        raise CheckpointError(f"{card_path}: unknown architecture {card['architecture']!r}")
    card["_card_path"] = str(card_path)
    return card


def load_denoiser(card_path: Path | str) -> tuple[Denoiser, dict[str, Any]]:
    """Build the architecture of a card and load its verified weights (on the CPU)."""
    card = read_card(card_path)
    weights = Path(card_path).parent / card["weights"]
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    digest = sha256_file(weights)
    if digest != card["sha256"]:
        raise CheckpointError(f"{weights}: sha256 {digest[:12]}… does not match the card ({card['sha256'][:12]}…); file corrupt or tampered")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from e
    try:
        model = build(card["architecture"], card["config"])
        model.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights}: weights do not fit architecture {card['architecture']!r} ({e})") from e
    return model, card


def catalog() -> list[dict[str, Any]]:
    """The valid model cards found in ``pretrained/`` and the user model folder, sorted by name."""
    cards: dict[str, dict[str, Any]] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                card = read_card(path)
            except CheckpointError:
                continue
            cards.setdefault(card["name"], card)
    return [cards[k] for k in sorted(cards)]


def resolve(name_or_path: str | Path) -> Path:
    """A catalog name or a path to ``.safetensors``/``.json`` → the card path."""
    p = Path(name_or_path)
    if p.suffix in {".safetensors", ".json"}:
        card = p.with_suffix(".json")
        if not card.is_file():
            raise CheckpointError(f"{card}: no model card beside {p.name}")
        return card
    for folder in model_dirs():
        card = folder / f"{name_or_path}.json"
        if card.is_file():
            return card
    known = [c["name"] for c in catalog()]
    raise CheckpointError(f"no model named {name_or_path!r}; the catalog has {known}")


_HANDLES: dict[tuple[str, str, str], ModelHandle] = {}
_HANDLES_LOCK = threading.Lock()


def load(name_or_path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> ModelHandle:
    """A cached :class:`ModelHandle` for a catalog name or a ``.safetensors`` path (card beside it)."""
    card_path = resolve(name_or_path).resolve()
    from .device import default_device

    dev = torch.device(device) if device is not None else default_device()
    key = (str(card_path), str(dev), str(dtype))
    with _HANDLES_LOCK:
        if key not in _HANDLES:
            model, card = load_denoiser(card_path)
            _HANDLES[key] = ModelHandle(model, device=dev, dtype=dtype, card=card, name=card["name"])
        return _HANDLES[key]
