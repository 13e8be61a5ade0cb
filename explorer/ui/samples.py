"""The sample shelf: images the sampler kept, which every tool's image source can open.

A kept sample is one ``.npz`` file (no pickles) in :func:`shelf_dir` holding ``image`` (float32, (H, W)
in [0, 1]) and ``meta`` (a JSON string: model, β, h₀, σ₀, σ_L, seed, chain, steps, −log p when known).
The shelf is a folder of the user running the explorer, so samples survive restarts and are shared by
the sessions of one server (everything else a session holds stays its own).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_LISTED = 200


def shelf_dir() -> Path:
    """``$EXPLORER_SAMPLES``, else ``~/.cache/denoiser-explorer/samples``."""
    env = os.environ.get("EXPLORER_SAMPLES")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "samples"


def sample_label(meta: dict[str, Any]) -> str:
    """A short human label: model, β, seed, chain, steps."""
    beta = meta.get("beta")
    beta_text = f"{beta:g}" if isinstance(beta, (int, float)) else "?"
    return (f"{meta.get('model', '?')} · β={beta_text} · seed {meta.get('seed', '?')} · "
            f"chain {meta.get('chain', '?')} · {meta.get('steps', '?')} steps")


def keep_samples(images: np.ndarray, meta: dict[str, Any], chains_meta: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write each (H, W) image of ``images`` (B, H, W) to the shelf with ``meta`` (plus chain number and
    ``chains_meta[k]``); returns the files, newest last."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim != 3 or not np.isfinite(a).all():
        raise ValueError(f"expected finite (B, H, W) samples, got shape {a.shape}")
    folder = shelf_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ns = time.time_ns()  # date-time plus nanoseconds: file names sort in the order they were kept
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ns // 1_000_000_000)) + f"-{ns % 1_000_000_000:09d}"
    paths = []
    for k, img in enumerate(a):
        m = {**meta, "chain": k + 1, **((chains_meta or [{}] * len(a))[k])}
        path = folder / f"sample-{stamp}-{k + 1:02d}.npz"
        np.savez(path, image=np.clip(img, 0.0, 1.0), meta=np.asarray(json.dumps(m)))
        paths.append(path)
    return paths


def load_sample(path: Path | str) -> tuple[np.ndarray, dict[str, Any]]:
    """(image, meta) of a shelf file; ValueError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as f:
            image = np.asarray(f["image"], dtype=np.float32)
            meta = json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{Path(path).name} is not a kept sample: {e}") from e
    if image.ndim != 2:
        raise ValueError(f"{Path(path).name}: expected an (H, W) image, got shape {image.shape}")
    return image, meta


def list_samples() -> dict[str, Path]:
    """{label: file} of the kept samples, newest first (at most MAX_LISTED); unreadable files are skipped."""
    folder = shelf_dir()
    if not folder.is_dir():
        return {}
    out: dict[str, Path] = {}
    for path in sorted(folder.glob("sample-*.npz"), reverse=True)[:MAX_LISTED]:
        try:
            _, meta = load_sample(path)
        except ValueError:
            continue
        label = f"{sample_label(meta)} · {path.stem[7:22]}"
        out[label if label not in out else f"{label} ({path.stem[23:32]})"] = path
    return out
