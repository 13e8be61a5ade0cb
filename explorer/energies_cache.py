"""The on-disk cache of :mod:`explorer.energies`.

``$EXPLORER_ENERGY_CACHE`` or ``~/.cache/denoiser-explorer/energies/<model sha>-<source hash>.npz``, the
model sha over its weights (log Z included, :func:`explorer.runner.model_fingerprint`), the source hash
over the data description (:func:`explorer.energies_sources.source_spec`) and, when discrete, the
quantity. Entries are keyed by the items' keys; a file holds arrays ``keys``, ``values`` (nats),
``dims`` and ``draw_sd``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .energies_sources import quantity_of_source
from .handle import ModelHandle
from .likelihood import NLLQuantity
from .runner import model_fingerprint

Target = torch.nn.Module | ModelHandle  # an energy model, or its handle (whose lock every call then takes)
Energies = dict[str, tuple[float, int, float]]  # key → (nats, d, sd over the dequantization draws)


def _module(target: Target) -> torch.nn.Module:
    return target.model if isinstance(target, ModelHandle) else target


def cache_dir() -> Path:
    env = os.environ.get("EXPLORER_ENERGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "energies"


def cache_path(model: Target, source: str, quantity: NLLQuantity | None = None) -> Path:
    """The cache file of a model (its weights) and a source (with the quantity, when discrete)."""
    q = quantity_of_source(source) if quantity is None else quantity
    key = source if q == quantity_of_source(source) else source + "|" + json.dumps(q.spec())
    src = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{model_fingerprint(model)[:16]}-{src}.npz"


def read_cache(path: Path) -> Energies:
    """The entries of a cache file (:func:`cache_path`): cache key of an item → (nats, d, draw sd), the
    energy in nats per image, its dimension d = C·H·W and the standard deviation over the dequantization
    draws (NaN for a continuous quantity). A missing file gives {}; an unreadable one is reported on
    stderr and gives {}. Which items a cache already holds is ``set(read_cache(cache_path(model, source)))``."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            sds = z["draw_sd"] if "draw_sd" in z.files else np.full(len(z["values"]), np.nan)
            return {k: (float(v), int(d), float(s)) for k, v, d, s in zip(z["keys"].tolist(), z["values"], z["dims"], sds)}
    except (OSError, ValueError, KeyError) as e:
        print(f"warning: ignoring unreadable energy cache {path} ({e})", file=sys.stderr)
        return {}


def write_cache(path: Path, entries: Energies) -> None:
    """Write the entries (as :func:`read_cache` returns them) to ``path`` atomically (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    vals = list(entries.values())
    np.savez(tmp, keys=np.array(list(entries), dtype=str), values=np.array([e[0] for e in vals], dtype=np.float64),
             dims=np.array([e[1] for e in vals], dtype=np.int64), draw_sd=np.array([e[2] for e in vals], dtype=np.float64))
    tmp.replace(path)



_read_cache = read_cache  # the old private name, kept until every caller uses read_cache
_write_cache = write_cache
