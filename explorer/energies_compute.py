"""Computing the energies of :mod:`explorer.energies`: −log p of every item of a data set under an
energy model, batched by shape, the failures recorded, the cache (:mod:`explorer.energies_cache`)
read and merged; the uncached items go through a runner (:mod:`explorer.runner`)."""
from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import runner as runners
from .checkpoints import load
from .data import files
from .energies_cache import Energies, Target, _module, cache_path, model_fingerprint, read_cache, write_cache
from .energies_sources import Item, absolute_source, items_for_source, quantity_of_source
from .handle import ModelHandle
from .likelihood import CONTINUOUS, NLLQuantity, in_unit, nll_values
from .runner import Runner


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
        """The energies in ``unit``: nats (per image), nats/dim, bits/dim or dB/dim (:func:`explorer.likelihood.in_unit`)."""
        return np.asarray(in_unit(np.asarray(self.values, dtype=np.float64), np.asarray(self.dims), unit), dtype=np.float64)

    def mean_stderr(self, unit: str = "bits/dim") -> float:
        """Standard error, in ``unit``, that the dequantization draws leave on the mean over the images
        (√(Σ_i sd_i²/K)/N for K draws each, the draws independent between images); NaN when unknown."""
        if not self.quantity.discrete or self.draw_sd is None or len(self.values) == 0:
            return float("nan")
        per_image = np.asarray(in_unit(np.asarray(self.draw_sd, np.float64), np.asarray(self.dims), unit)) / math.sqrt(self.quantity.draws)
        return float(math.sqrt(float(np.sum(per_image**2))) / len(per_image))



def _as_batch(images: Sequence[np.ndarray], channels: int) -> torch.Tensor:
    a = np.stack([im if im.ndim == 3 else im[..., None] for im in images])  # (B, H, W, C)
    if a.shape[-1] != channels:
        raise ValueError(f"images have {a.shape[-1]} channels, the model takes {channels}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=np.float32))


def is_normalized(target: Target) -> bool:
    """Whether ``target``'s −log p is absolute: an energy model whose log Z is known, or a model with an
    exact density and no log Z buffer at all (the stationary Gaussian of :mod:`explorer.gaussian_baseline`)."""
    log_z = getattr(_module(target), "log_z", None)
    return log_z is None or bool(torch.isfinite(log_z))


def nll_function(target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ −log p(x) in nats per image (U(x, t_min) when not normalized). A :class:`ModelHandle` is
    called through its methods, so each call holds the handle's lock; a bare model runs under no_grad."""
    module = _module(target)
    normalized = is_normalized(target)
    t_min = None if normalized else float(module.t_min)
    if isinstance(target, ModelHandle):
        return target.nll if normalized else (lambda x: target.energy(x, t_min))

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module.nll(x) if normalized else module.energy(x, t_min)
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
    runner: Runner | None = None,
    model_ref: str | None = None,
    quantity: NLLQuantity | None = None,
    client: Any = None,
) -> EnergyReport:
    """Energies of ``items`` (cached per item); failures are collected and printed to stderr.

    ``model`` is an energy model or its :class:`ModelHandle` (every model call then takes the handle's
    lock: what the tools pass). ``quantity`` defaults to the one ``source`` names
    (:func:`source_spec`), else the continuous density; the cache is per model, source and quantity.
    The uncached items are computed batch by batch through ``runner`` (:mod:`explorer.runner`; default:
    serially here). A runner whose tasks run in other processes (e.g.
    ``explorer.distributed.DaskRunner(client)``) needs ``model_ref``, the name or path they load the
    model from (checked to have the same weights as ``model``), and ``source`` must be the
    :func:`source_spec` the items were listed from (naming the quantity, which the tasks read from it).
    The cache is written here either way. ``client=`` is the deprecated spelling of
    ``runner=DaskRunner(client)``.
    """
    run = runners.resolve(runner, client)
    if quantity is None:
        quantity = quantity_of_source(source)
    if isinstance(model, torch.nn.Module):
        model = model.eval()
    cpath = cache_path(model, source, quantity)
    cache = read_cache(cpath) if use_cache else {}
    todo = [it for it in items if it.key not in cache]
    if runners.is_in_process(run):
        fresh, failures = runners.merge(run(partial(_energies_here, model, batch=batch, progress=progress,
                                                    quantity=quantity), todo, desc="energies", progress=progress))
    else:
        if quantity != quantity_of_source(source):
            raise ValueError("distributed energies read the quantity from the source: pass "
                             "source_spec(..., quantity=...) as source")
        if model_ref is None:
            raise ValueError("distributed energies need model_ref, the name or path workers load the model from")
        task = partial(energies_task, model_ref=model_ref, fingerprint=model_fingerprint(model),
                       source=absolute_source(source), batch=batch)
        pairs = [(it.key, it.label) for it in todo]
        fresh, failures = runners.merge(run(task, pairs, most=batch, desc="energies", progress=progress))
    for label, msg in failures:
        print(f"skipped {label}: {msg}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(items)} images skipped", file=sys.stderr)
    # merged, never pruned: a call on a subset (one chunk, the first N images) keeps the other entries;
    # a changed file has a new key (size, mtime), so its old entry is simply never read again
    known = cache | fresh
    if use_cache and fresh:
        write_cache(cpath, known)
    good = [it for it in items if it.key in known]
    return EnergyReport([it.label for it in good], np.array([known[it.key][0] for it in good], dtype=np.float64),
                        np.array([known[it.key][1] for it in good], dtype=np.int64), is_normalized(model),
                        failures, cached=len(items) - len(todo), quantity=quantity,
                        draw_sd=np.array([known[it.key][2] for it in good], dtype=np.float64))



def _energies_here(model: Target, items: list[Item], batch: int, progress: bool,
                   quantity: NLLQuantity) -> tuple[Energies, Failures]:
    return energies_of(model, items, batch, progress, quantity)


_LISTING: dict[str, dict[str, Item]] = {}
_LISTING_LOCK = threading.Lock()


def _listed(source: str, pairs: Sequence[tuple[str, str]]) -> tuple[list[Item], Failures]:
    """The items of ``source`` with the given (key, label) pairs, and failures for keys not found
    (the file changed or vanished since the caller listed it). The last listing is kept per process."""
    with _LISTING_LOCK:
        listing = _LISTING.get(source)
        if listing is None or any(key not in listing for key, _ in pairs):
            _LISTING.clear()
            listing = _LISTING[source] = {it.key: it for it in items_for_source(source)}
    found = [listing[key] for key, _ in pairs if key in listing]
    missing = [(label, "changed or vanished since it was listed") for key, label in pairs if key not in listing]
    return found, missing


def energies_task(pairs: Sequence[tuple[str, str]], model_ref: str, fingerprint: str, source: str,
                  batch: int) -> tuple[Energies, Failures]:
    """A runner task: energies of the items (key, label) of ``source`` (a :func:`source_spec`, re-listed
    here) under the energy model ``model_ref`` (opened once per process, its weights checked)."""
    handle = runners.opened(("energy", model_ref, fingerprint),
                            lambda: runners.verified([load(model_ref, device="cpu")], [fingerprint])[0])
    items, missing = _listed(source, pairs)
    fresh, failures = energies_of(handle.model, items, batch, progress=False)
    return fresh, missing + failures
