"""Energies (−log p) of every image of a data set under an energy model, cached on disk.

    python -m explorer.energies MODEL --data DIR|builtin|mnist|mnist:held-out|mnist:training|patches:DIR --out FILE.{npz,json}

Which quantity (:class:`explorer.energy.NLLQuantity`, printed by the CLI and shown by the tool):

- a model trained on dequantized b-bit data (its card says ``energy.dequantize_bits`` = b, e.g.
  ``energy-mnist``, b = 8) gets the **discrete b-bit likelihood** −log P(x), the uniform-dequantization
  bound E_u[−log p(x + u)] + b·d·ln 2 averaged over 8 seeded draws per image
  (:func:`explorer.energy.discrete_nll`; bits/dim of it are the usual "bits/dim" of 8-bit data);
- any other model (or ``--continuous``) gets the **continuous density** −log p(x) on [0,1]^d at the
  image itself, NLL(x) = U(x, t_min) + log Z (the model's :meth:`nll`).

A model not yet normalized gives the relative energy U(x, t_min), flagged ``normalized = False``.
Values are nats per image, also in nats/dim, bits/dim and dB/dim (:func:`explorer.energy.in_unit`).
Around them: summary statistics, a histogram with a maximum-likelihood Gumbel fit, the images at
chosen percentiles and the extremes, and reference energies of constant images at each gray level
and of uniform-noise images.

MNIST (:mod:`explorer.data.registry`): ``mnist:held-out`` are the last 500 digits (never trained on),
``mnist:training`` the first 9500 (which trained ``bf-mnist`` and ``energy-mnist``), ``mnist`` all
10 000 (labelled as one or the other). The digits are zero-padded to 32×32, so d = 1024 per image
(240 values always 0): bits/dim are per padded pixel, not comparable with 28×28 MNIST results.

Cache: ``$EXPLORER_ENERGY_CACHE`` or ``~/.cache/denoiser-explorer/energies/<model sha>-<source hash>.npz``,
the model sha over its weights (log Z included), the source hash over the data description. Each
entry is keyed by its file's path, size and modification time (and index or patch position), so
re-running is instant and only changed or new files are recomputed. Unreadable or unusable files
are reported (message and stderr), never silently dropped.

Scale-out: ``--workers N`` (a local Dask cluster of N processes) or ``--scheduler ADDRESS`` (a running
Dask cluster) splits the uncached images into batches computed by the workers (each loads the model
once; see :mod:`explorer.distributed`); the energies come back to this process, which writes the same
cache as the single-machine path. Workers read the model and the images by path: on a remote
cluster both must be at the same (absolute) path on every worker.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import optimize, stats
from tqdm import tqdm

from .data import builtin, files, mnist, registry
from .energy import CONTINUOUS, DEFAULT_DRAWS, UNITS, NLLQuantity, in_unit, nll_quantity, nll_values
from .handle import ModelHandle

if TYPE_CHECKING:
    from distributed import Client

EULER_GAMMA = 0.5772156649015329
DEFAULT_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)
MNIST_SOURCES = {"mnist": "all", "mnist:held-out": "held-out", "mnist:training": "training"}
PADDED_MNIST_NOTE = ("d = 1024 values per image: the 28×28 digits zero-padded to 32×32 (240 values always 0), "
                     "so bits/dim are per padded pixel, not comparable with 28×28 MNIST results")

Target = torch.nn.Module | ModelHandle  # an energy model, or its handle (whose lock every call then takes)


@dataclass
class Item:
    """One image of a data set: a cache key (changes when the file changes), a label, a loader, and the
    quantity its −log p is computed as when the source description names one (:func:`items_for_source`)."""

    key: str
    label: str
    load: Callable[[], np.ndarray]
    quantity: NLLQuantity | None = None


@dataclass
class EnergyReport:
    """Energies of a data set; ``values`` in nats per image of ``quantity``, ``dims`` = C·H·W of each
    image, ``draw_sd`` (nats) the standard deviation over the dequantization draws of each value
    (discrete quantities; NaN otherwise)."""

    labels: list[str]
    values: np.ndarray
    dims: np.ndarray
    normalized: bool
    failures: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    quantity: NLLQuantity = CONTINUOUS
    draw_sd: np.ndarray | None = None

    def in_unit(self, unit: str = "bits/dim") -> np.ndarray:
        """The energies in ``unit``: nats (per image), nats/dim, bits/dim or dB/dim (:func:`explorer.energy.in_unit`)."""
        return np.asarray(in_unit(np.asarray(self.values, dtype=np.float64), np.asarray(self.dims), unit), dtype=np.float64)

    def mean_stderr(self, unit: str = "bits/dim") -> float:
        """Standard error, in ``unit``, that the dequantization draws leave on the mean over the images
        (√(Σ_i sd_i²/K)/N for K draws each, the draws independent between images); NaN when unknown."""
        if not self.quantity.discrete or self.draw_sd is None or len(self.values) == 0:
            return float("nan")
        per_image = np.asarray(in_unit(np.asarray(self.draw_sd, np.float64), np.asarray(self.dims), unit)) / math.sqrt(self.quantity.draws)
        return float(math.sqrt(float(np.sum(per_image**2))) / len(per_image))


# --------------------------------------------------------------------------- sources
def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def folder_items(folder: str | Path, gray: bool = True) -> list[Item]:
    return [Item(_file_key(p), p.name, lambda p=p: files.load_image(p, gray=gray)) for p in files.list_images(folder)]


def builtin_items(size: int | None = None, gray: bool = True) -> list[Item]:
    out = []
    for name in builtin.BUILTIN_IMAGES:
        path = builtin.builtin_path(name)
        out.append(Item(f"{_file_key(path)}|{size}", name, lambda name=name: builtin.builtin_image(name, size)))
    return out


def mnist_label(i: int, count: int) -> str:
    """"held-out digit i" or "training digit i" (i the index among all ``count`` digits; the registry's split)."""
    return f"{'held-out' if registry.is_held_out_digit(i, count) else 'training'} digit {i}"


def mnist_items(path: str | Path | None = None, part: str = "all") -> list[Item]:
    """The MNIST digits padded to 32×32: ``part`` "held-out" (the registry's last 500, each once),
    "training" (the first 9500) or "all", each labelled by its split and its index among all digits."""
    if part not in ("all", "held-out", "training"):
        raise ValueError(f"part must be all, held-out or training, got {part!r}")
    p = Path(path) if path else mnist.default_mnist_path()
    digits = mnist.load_mnist(p, pad_to=32)
    train, held = registry.mnist_split(len(digits))
    idx = {"all": np.arange(len(digits)), "held-out": held, "training": train}[part]
    base = _file_key(p)
    return [Item(f"{base}|{i}", mnist_label(int(i), len(digits)), lambda i=int(i): digits[i]) for i in idx]


def data_note(data: str) -> str | None:
    """What a reader must know about the numbers of a data set (the padded MNIST digits' d), or None."""
    return PADDED_MNIST_NOTE if data in MNIST_SOURCES else None


def patch_items(folder: str | Path, size: int, per_image: int, gray: bool = True) -> list[Item]:
    """Non-overlapping size×size tiles of every image of ``folder`` (up to ``per_image``, evenly spread)."""
    out = []
    for p in files.list_images(folder):
        try:
            img = files.load_image(p, gray=gray)
        except files.ImageFileError as e:
            out.append(Item(_file_key(p), p.name, lambda e=e: (_ for _ in ()).throw(e)))  # reported at compute time
            continue
        tiles = [(r, c) for r in range(0, img.shape[0] - size + 1, size) for c in range(0, img.shape[1] - size + 1, size)]
        chosen = [tiles[i] for i in np.unique(np.linspace(0, len(tiles) - 1, min(per_image, len(tiles))).round().astype(int))] if tiles else []
        for r, c in chosen:
            out.append(Item(f"{_file_key(p)}|{r},{c}|{size}", f"{p.name}@{r},{c}", lambda img=img, r=r, c=c: img[r:r + size, c:c + size]))
    return out


def items_for(source: str, gray: bool = True, size: int | None = None, patch: int = 32, per_image: int = 16) -> list[Item]:
    """``mnist`` / ``mnist:held-out`` / ``mnist:training``, ``builtin`` (optionally resized to ``size``),
    ``patches:DIR`` or a folder path."""
    if source in MNIST_SOURCES:
        return mnist_items(part=MNIST_SOURCES[source])
    if source == "builtin":
        return builtin_items(size, gray)
    if source.startswith("patches:"):
        return patch_items(source.split(":", 1)[1], patch, per_image, gray)
    return folder_items(source, gray)


def source_spec(data: str, gray: bool = True, size: int | None = None, patch: int = 32, per_image: int = 16,
                quantity: NLLQuantity = CONTINUOUS) -> str:
    """The JSON description of a data set (the :func:`items_for` arguments) and of the quantity computed
    (named only when discrete): the cache's source id and what Dask workers re-list the items from."""
    spec: dict[str, Any] = {"data": data, "size": size, "patch": patch, "per_image": per_image, "gray": gray}
    if quantity.discrete:
        spec["quantity"] = quantity.spec()
    return json.dumps(spec)


def quantity_of_source(source: str) -> NLLQuantity:
    """The quantity a :func:`source_spec` description names (the continuous density when none, or for
    a plain string)."""
    try:
        s = json.loads(source)
    except ValueError:
        return CONTINUOUS
    q = s.get("quantity") if isinstance(s, dict) else None
    return NLLQuantity(**q) if q else CONTINUOUS


def items_for_source(source: str) -> list[Item]:
    """The items of a :func:`source_spec` description (carrying its quantity)."""
    s = json.loads(source)
    items = items_for(s["data"], gray=s["gray"], size=s["size"], patch=s["patch"], per_image=s["per_image"])
    q = quantity_of_source(source)
    for it in items:
        it.quantity = q
    return items


def absolute_source(source: str) -> str:
    """A :func:`source_spec` description with its folder made absolute, so that any process can list it.

    Raises ValueError for a source that is not such a description."""
    try:
        s = json.loads(source)
        if not isinstance(s, dict) or set(s) - {"quantity"} != {"data", "size", "patch", "per_image", "gray"}:
            raise ValueError
    except ValueError:
        raise ValueError(f"distributed energies need a source_spec(...) description as source, got {source!r}") from None
    data = s["data"]
    if data.startswith("patches:"):
        s["data"] = "patches:" + str(Path(data.split(":", 1)[1]).resolve())
    elif data not in (*MNIST_SOURCES, "builtin"):
        s["data"] = str(Path(data).resolve())
    return json.dumps(s)


# --------------------------------------------------------------------------- the cache
def _module(target: Target) -> torch.nn.Module:
    return target.model if isinstance(target, ModelHandle) else target


def model_fingerprint(model: Target) -> str:
    """sha256 over the names, shapes and bytes of the model's state dict (weights and buffers)."""
    model = _module(model)
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().to("cpu").contiguous()
        h.update(f"{name}{tuple(a.shape)}{a.dtype}".encode())
        h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.float().numpy().tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    env = os.environ.get("EXPLORER_ENERGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "denoiser-explorer" / "energies"


def cache_path(model: Target, source: str, quantity: NLLQuantity | None = None) -> Path:
    """The cache file of a model (its weights) and a source (with the quantity, when discrete)."""
    q = quantity_of_source(source) if quantity is None else quantity
    key = source if q == quantity_of_source(source) else source + "|" + json.dumps(q.spec())
    src = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{model_fingerprint(model)[:16]}-{src}.npz"


def _read_cache(path: Path) -> dict[str, tuple[float, int, float]]:
    """key → (nats, d, draw sd) from a cache file; an unreadable cache is reported and ignored."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            sds = z["draw_sd"] if "draw_sd" in z.files else np.full(len(z["values"]), np.nan)
            return {k: (float(v), int(d), float(s)) for k, v, d, s in zip(z["keys"].tolist(), z["values"], z["dims"], sds)}
    except (OSError, ValueError, KeyError) as e:
        print(f"warning: ignoring unreadable energy cache {path} ({e})", file=sys.stderr)
        return {}


def _write_cache(path: Path, entries: dict[str, tuple[float, int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    vals = list(entries.values())
    np.savez(tmp, keys=np.array(list(entries), dtype=str), values=np.array([e[0] for e in vals], dtype=np.float64),
             dims=np.array([e[1] for e in vals], dtype=np.int64), draw_sd=np.array([e[2] for e in vals], dtype=np.float64))
    tmp.replace(path)


# --------------------------------------------------------------------------- computing energies
def _as_batch(images: Sequence[np.ndarray], channels: int) -> torch.Tensor:
    a = np.stack([im if im.ndim == 3 else im[..., None] for im in images])  # (B, H, W, C)
    if a.shape[-1] != channels:
        raise ValueError(f"images have {a.shape[-1]} channels, the model takes {channels}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=np.float32))


def is_normalized(target: Target) -> bool:
    return bool(torch.isfinite(_module(target).log_z))


def nll_function(target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ −log p(x) in nats per image (U(x, t_min) when not normalized). A :class:`ModelHandle` is
    called through its methods, so each call holds the handle's lock; a bare model runs under no_grad."""
    module = _module(target)
    t_min = float(module.t_min)
    if isinstance(target, ModelHandle):
        return target.nll if is_normalized(target) else (lambda x: target.energy(x, t_min))

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module.nll(x) if is_normalized(module) else module.energy(x, t_min)
    return f


def energies_and_spread(target: Target, images: torch.Tensor, batch: int = 64,
                        quantity: NLLQuantity = CONTINUOUS) -> tuple[np.ndarray, np.ndarray]:
    """(nats, draw sd) per image of a (B, C, H, W) batch in ``quantity`` (:func:`explorer.energy.nll_values`)."""
    fn = nll_function(target)
    vals, sds = [], []
    for chunk in images.split(batch):
        v, s = nll_values(fn, chunk, quantity)
        vals.append(v)
        sds.append(s)
    return torch.cat(vals).numpy(), torch.cat(sds).numpy()


def image_energies(target: Target, images: torch.Tensor, batch: int = 64, quantity: NLLQuantity = CONTINUOUS) -> np.ndarray:
    """Nats per image of a (B, C, H, W) batch in ``quantity``: the model's ``nll`` if normalized, else
    U(x, t_min); the discrete bound for a discrete quantity."""
    return energies_and_spread(target, images, batch, quantity)[0]


Energies = dict[str, tuple[float, int, float]]  # key → (nats, d, sd over the dequantization draws)
Failures = list[tuple[str, str]]


def energies_of(model: Target, items: Sequence[Item], batch: int = 64, progress: bool = True,
                quantity: NLLQuantity | None = None) -> tuple[Energies, Failures]:
    """key → (nats, d, draw sd) of every usable item, and (label, reason) of the others.

    Items are loaded, grouped by shape and run through the model ``batch`` at a time. ``quantity``
    defaults to the one the items carry (:func:`items_for_source`), else the continuous density."""
    if quantity is None:
        carried = {it.quantity for it in items if it.quantity is not None}
        if len(carried) > 1:
            raise ValueError(f"items of different quantities: {sorted(q.spec() for q in carried)}")
        quantity = carried.pop() if carried else CONTINUOUS
    fresh: Energies = {}
    failures: Failures = []
    groups: dict[tuple[int, ...], list[tuple[Item, np.ndarray]]] = {}
    for it in tqdm(items, desc="loading", disable=not progress or not items, leave=False):
        try:
            img = np.asarray(it.load(), dtype=np.float32)
            if img.ndim not in (2, 3) or not np.isfinite(img).all():
                raise ValueError(f"not a finite (H, W) or (H, W, C) image, shape {img.shape}")
        except (files.ImageFileError, OSError, ValueError) as e:
            failures.append((it.label, str(e)))
            continue
        groups.setdefault(img.shape, []).append((it, img))
    bar = tqdm(total=sum(len(m) for m in groups.values()), desc="energies", disable=not progress or not groups)
    for shape, members in groups.items():
        channels = _module(model).channels
        d = int(np.prod(shape)) * (channels if len(shape) == 2 else 1)
        for start in range(0, len(members), batch):
            part = members[start:start + batch]
            try:
                e, sd = energies_and_spread(model, _as_batch([im for _, im in part], channels), batch, quantity)
            except (ValueError, RuntimeError) as err:
                failures += [(it.label, f"{shape}: {err}") for it, _ in part]
            else:
                for (it, _), v, s in zip(part, e, sd):
                    if math.isfinite(v):
                        fresh[it.key] = (float(v), d, float(s))
                    else:
                        failures.append((it.label, "non-finite energy"))
            bar.update(len(part))
    bar.close()
    return fresh, failures


def compute_energies(
    model: Target,
    items: Sequence[Item],
    source: str,
    batch: int = 64,
    use_cache: bool = True,
    progress: bool = True,
    client: Client | None = None,
    model_ref: str | None = None,
    quantity: NLLQuantity | None = None,
) -> EnergyReport:
    """Energies of ``items`` (cached per item); failures are collected and printed to stderr.

    ``model`` is an energy model or its :class:`ModelHandle` (every model call then takes the handle's
    lock: what the tools pass). ``quantity`` defaults to the one ``source`` names
    (:func:`source_spec`), else the continuous density; the cache is per model, source and quantity.
    With a Dask ``client`` the uncached items are computed by its workers: ``model_ref`` is the name
    or path they load the model from (checked to have the same weights as ``model``) and ``source``
    must be the :func:`source_spec` the items were listed from (naming the quantity, which the workers
    read from it). The cache is written here either way.
    """
    if quantity is None:
        quantity = quantity_of_source(source)
    if isinstance(model, torch.nn.Module):
        model = model.eval()
    cpath = cache_path(model, source, quantity)
    cache = _read_cache(cpath) if use_cache else {}
    todo = [it for it in items if it.key not in cache]
    if client is None:
        fresh, failures = energies_of(model, todo, batch, progress, quantity)
    else:
        if quantity != quantity_of_source(source):
            raise ValueError("distributed energies read the quantity from the source: pass "
                             "source_spec(..., quantity=...) as source")
        if model_ref is None:
            raise ValueError("distributed energies need model_ref, the name or path workers load the model from")
        from .distributed import remote_energies

        fresh, failures = remote_energies(client, model_ref, model_fingerprint(model), source, todo, batch, progress)
    for label, msg in failures:
        print(f"skipped {label}: {msg}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(items)} images skipped", file=sys.stderr)
    # merged, never pruned: a call on a subset (one chunk, the first N images) keeps the other entries;
    # a changed file has a new key (size, mtime), so its old entry is simply never read again
    known = cache | fresh
    if use_cache and fresh:
        _write_cache(cpath, known)
    good = [it for it in items if it.key in known]
    return EnergyReport([it.label for it in good], np.array([known[it.key][0] for it in good], dtype=np.float64),
                        np.array([known[it.key][1] for it in good], dtype=np.int64), is_normalized(model),
                        failures, cached=len(items) - len(todo), quantity=quantity,
                        draw_sd=np.array([known[it.key][2] for it in good], dtype=np.float64))


# --------------------------------------------------------------------------- statistics
def summary(values: np.ndarray) -> dict[str, float]:
    """count, mean, std (ddof 1), min, median, max and sample skewness of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no energies to summarise (every image failed?)")
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()),
            "skewness": float(stats.skew(v)) if v.size > 2 else 0.0}


def gumbel_fit(values: np.ndarray, side: str | None = None) -> dict[str, Any]:
    """Maximum-likelihood Gumbel fit, initialised by the method of moments.

    Right-skewed (``side="right"``, maxima): f(x) = (1/β) exp(−z − e^(−z)), z = (x − μ)/β, with mean
    μ + γβ and variance π²β²/6 (γ Euler's constant), so the moments give β₀ = s√6/π, μ₀ = x̄ − γβ₀.
    ``"left"`` fits the mirror image (minima). Default: the side of the sample skewness. The negative
    log-likelihood n log β + Σ z + Σ e^(−z) is minimised over (μ, log β) with L-BFGS-B.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 3 or x.std() == 0:
        raise ValueError(f"a Gumbel fit needs at least 3 distinct values, got {x.size}")
    side = side or ("right" if stats.skew(x) >= 0 else "left")
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    sign = 1.0 if side == "right" else -1.0
    y = sign * x
    beta0 = y.std(ddof=1) * math.sqrt(6) / math.pi
    mu0 = y.mean() - EULER_GAMMA * beta0

    def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
        mu, log_b = p
        b = math.exp(log_b)
        z = (y - mu) / b
        ez = np.exp(-z)
        f = y.size * log_b + z.sum() + ez.sum()
        dz = (1 - ez)  # ∂f/∂z per sample
        return float(f), np.array([-dz.sum() / b, y.size - (dz * z).sum()])

    res = optimize.minimize(nll, np.array([mu0, math.log(beta0)]), jac=True, method="L-BFGS-B")
    mu, beta = float(res.x[0]), float(math.exp(res.x[1]))
    return {"side": side, "loc": sign * mu, "scale": beta, "loc_moments": sign * mu0, "scale_moments": beta0,
            "log_likelihood": -float(res.fun), "converged": bool(res.success)}


def gumbel_pdf(x: np.ndarray, fit: dict[str, Any]) -> np.ndarray:
    """The fitted density at ``x``."""
    sign = 1.0 if fit["side"] == "right" else -1.0
    z = (sign * np.asarray(x, dtype=np.float64) - sign * fit["loc"]) / fit["scale"]
    return np.exp(-z - np.exp(-z)) / fit["scale"]


def histogram(values: np.ndarray, bins: int | str = "auto") -> dict[str, list[float]]:
    counts, edges = np.histogram(values, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def percentile_indices(values: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, int]:
    """Index of the image at each percentile (nearest rank on the sorted energies), and of min and max."""
    order = np.argsort(values, kind="stable")
    n = len(values)
    out = {"min": int(order[0])}
    for p in percentiles:
        if not 0 <= p <= 100:
            raise ValueError(f"percentiles must be in [0, 100], got {p}")
        out[f"p{p:g}"] = int(order[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))])
    out["max"] = int(order[-1])
    return out


def reference_energies(model: Target, shape: tuple[int, int], levels: int = 11, noise_images: int = 8, seed: int = 0,
                       quantity: NLLQuantity = CONTINUOUS) -> dict[str, Any]:
    """NLL (nats, in ``quantity``) of constant images at ``levels`` gray levels in [0, 1] and of U[0, 1] noise images."""
    h, w = shape
    c = _module(model).channels
    grays = np.linspace(0.0, 1.0, levels)
    const = torch.from_numpy(grays.astype(np.float32)).view(-1, 1, 1, 1).expand(levels, c, h, w).contiguous()
    noise = torch.rand(noise_images, c, h, w, generator=torch.Generator().manual_seed(seed))
    e_const, e_noise = image_energies(model, const, quantity=quantity), image_energies(model, noise, quantity=quantity)
    return {"shape": [c, h, w], "gray_levels": grays.tolist(), "constant": e_const.tolist(),
            "uniform_noise": e_noise.tolist(), "uniform_noise_mean": float(e_noise.mean())}


def analyse(report: EnergyReport, model: Target, shape: tuple[int, int], unit: str = "bits/dim",
            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, Any]:
    """Summary, histogram, Gumbel fit and percentile images (as labels) in ``unit``; references in nats and ``unit``."""
    v = report.in_unit(unit)
    idx = percentile_indices(v, percentiles)
    refs = reference_energies(model, shape, quantity=report.quantity)
    d = int(np.prod(refs["shape"]))
    conv = (lambda e: np.asarray(in_unit(np.asarray(e, dtype=np.float64), d, unit)).tolist())
    return {
        "unit": unit,
        "quantity": {**report.quantity.spec(), "name": report.quantity.short(), "description": report.quantity.describe()},
        "normalized": report.normalized,
        "summary": summary(v),
        "mean_stderr_of_draws": report.mean_stderr(unit),
        "summary_nats": summary(report.values),
        "histogram": histogram(v),
        "gumbel": gumbel_fit(v) if len(v) >= 3 else None,
        "percentiles": {k: {"index": i, "label": report.labels[i], "value": float(v[i])} for k, i in idx.items()},
        "references": {**refs, "constant_" + unit: conv(refs["constant"]), "uniform_noise_" + unit: conv(refs["uniform_noise"])},
        "failures": [{"label": a, "reason": b} for a, b in report.failures],
        "cached": report.cached,
    }


# --------------------------------------------------------------------------- CLI
def heldout_metrics(result: dict[str, Any], command: str) -> dict[str, Any]:
    """The card's held-out NLL entry from a CLI result (its mean in nats, bits/dim and dB/dim)."""
    nats = np.asarray(result["nats"], dtype=np.float64)
    dims = np.asarray(result["dims"], dtype=np.int64)
    rep = EnergyReport(result["labels"], nats, dims, result["normalized"], quantity=NLLQuantity(**{
        k: result["quantity"][k] for k in ("bits", "draws", "seed")}), draw_sd=np.asarray(result["draw_sd"], dtype=np.float64))
    d = sorted(set(dims.tolist()))
    entry = {"command": command, "data": result["data"], "images": int(len(nats)), "dims": d[0] if len(d) == 1 else d,
             "quantity": result["quantity"]["description"], "draws": result["quantity"]["draws"],
             "seed": result["quantity"]["seed"], "mean_nats": round(float(nats.mean()), 3)}
    for unit, key in (("bits/dim", "bits_per_dim"), ("dB/dim", "db_per_dim")):
        entry[f"mean_{key}"] = round(float(rep.in_unit(unit).mean()), 5)
        entry[f"stderr_{key}_draws"] = round(rep.mean_stderr(unit), 6)
        entry[f"std_{key}_images"] = round(float(rep.in_unit(unit).std(ddof=1)), 5)
    if result.get("note"):
        entry["note"] = result["note"]
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.energies", description=__doc__.splitlines()[0])
    p.add_argument("model", help="catalog name or path to a model card / .safetensors")
    p.add_argument("--data", required=True, help="image folder, builtin, mnist, mnist:held-out, mnist:training, or patches:DIR")
    p.add_argument("--out", required=True, help="FILE.json (report with every energy) or FILE.npz (arrays + percentile images + report)")
    p.add_argument("--unit", default="bits/dim", choices=UNITS)
    p.add_argument("--count", type=int, default=None, help="use the first N images of the data set")
    p.add_argument("--continuous", action="store_true",
                   help="the continuous density −log p(x) at the images even for a model trained on dequantized data")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS, help="dequantization draws per image (discrete likelihood)")
    p.add_argument("--size", type=int, default=None, help="builtin: resize to size×size")
    p.add_argument("--patch", type=int, default=32, help="patches: tile size")
    p.add_argument("--per-image", type=int, default=16, help="patches: tiles per image")
    p.add_argument("--percentiles", type=lambda s: [float(v) for v in s.split(",")], default=list(DEFAULT_PERCENTILES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--write-card", action="store_true",
                   help='store the mean in the model card: metrics["heldout_nll"] for --data mnist:held-out '
                        '(and the card\'s headline held-out bits/dim), else metrics["nll " + DATA]')
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="compute on a running Dask cluster (e.g. tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N", help="compute on a local Dask cluster of N worker processes")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be ≥ 1")
    if args.draws < 1 or (args.count is not None and args.count < 1):
        p.error("--draws and --count must be ≥ 1")

    from .checkpoints import load

    handle = load(args.model, device="cpu")
    model = handle.model
    if not callable(getattr(model, "nll", None)):
        print(f"error: {handle.name} is not an energy model (no nll)", file=sys.stderr)
        return 2
    quantity = CONTINUOUS if args.continuous else nll_quantity(handle.card, draws=args.draws)
    gray = model.channels == 1
    items = items_for(args.data, gray=gray, size=args.size, patch=args.patch, per_image=args.per_image)[:args.count]
    if not items:
        print(f"error: no images found in {args.data}", file=sys.stderr)
        return 2
    source = source_spec(args.data, gray, args.size, args.patch, args.per_image, quantity)
    from .distributed import client_for

    with client_for(args.scheduler, args.workers) as client:
        report = compute_energies(handle, items, source, args.batch, use_cache=not args.no_cache, progress=not args.quiet,
                                  client=client, model_ref=args.model)
    if len(report.values) == 0:
        print("error: every image failed", file=sys.stderr)
        return 1
    by_label = {it.label: it for it in items}
    first = np.asarray(by_label[report.labels[0]].load())
    result = analyse(report, handle, first.shape[:2], args.unit, args.percentiles)
    note = data_note(args.data)
    result.update(model=handle.name, data=args.data, labels=report.labels, nats=report.values.tolist(), dims=report.dims.tolist(),
                  draw_sd=report.draw_sd.tolist() if report.draw_sd is not None else None, note=note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        picks = result["percentiles"]
        imgs = [np.asarray(by_label[v["label"]].load(), dtype=np.float32) for v in picks.values()]
        same = len({im.shape for im in imgs}) == 1
        np.savez(out, labels=np.array(report.labels, dtype=str), nats=report.values, dims=report.dims,
                 percentile_names=np.array(list(picks), dtype=str),
                 percentile_images=np.stack(imgs) if same else np.zeros(0), report=np.array(json.dumps(result)))
    else:
        out.write_text(json.dumps(result, indent=1) + "\n")
    s, g = result["summary"], result["gumbel"]
    print(f"{handle.name} on {args.data}: {s['count']} images ({report.cached} cached, {len(report.failures)} skipped)"
          f"{'' if report.normalized else ' — model not normalized: relative energies U(x, t_min)'}")
    print(f"  quantity: {quantity.describe()}")
    se = result["mean_stderr_of_draws"]
    se_text = f" ± {se:.4f} (draws)" if math.isfinite(se) else ""
    print(f"  {quantity.short()} in {args.unit}: mean {s['mean']:.4f}{se_text}  std {s['std']:.4f}  min {s['min']:.4f}  "
          f"median {s['median']:.4f}  max {s['max']:.4f}")
    if g:
        print(f"  Gumbel ({g['side']}): loc {g['loc']:.4f}  scale {g['scale']:.4f}")
    if note:
        print(f"  note: {note}")
    if args.write_card:
        from .evaluate import write_card_metrics

        command = "python -m explorer.energies " + " ".join(argv if argv is not None else sys.argv[1:])
        entry = heldout_metrics(result, command)
        key = "heldout_nll" if args.data == "mnist:held-out" else f"nll {args.data}"
        write_card_metrics(handle.card["_card_path"], key, entry)
        if key == "heldout_nll" and quantity.discrete:  # the card's headline figures are this measurement
            card_path = Path(handle.card["_card_path"])
            card = json.loads(card_path.read_text())
            m = card["metrics"]
            d = entry["dims"]
            m["heldout_nll_nats"] = round(entry["mean_nats"] - d * quantity.bits * math.log(2.0), 3)
            m["heldout_bits_per_dim"] = round(entry["mean_bits_per_dim"] - quantity.bits, 4)
            m[f"heldout_bits_per_dim_{quantity.bits}bit"] = round(entry["mean_bits_per_dim"], 4)
            card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"  wrote metrics[{key!r}] of {handle.card['_card_path']}")
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
