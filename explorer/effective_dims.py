"""Effective dimension (tr ∂x̂/∂y) of a denoiser over the images of a folder, batch by batch through
a runner (:mod:`explorer.runner`: serially here by default, or on a Dask cluster with
:class:`explorer.distributed.DaskRunner`; the numbers are the same)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import runner as runners
from .data.files import list_images
from .handle import ModelHandle
from .imagesets import Failures, each_image, noisy_image, open_model, portable
from .jacobian import DEFAULT_PROBES, Estimate, Method, effective_dim
from .runner import Runner


@dataclass
class EffectiveDims:
    """tr A (A = ∂x̂/∂y) at one noisy draw of every usable image of a folder, and the files that failed."""

    labels: list[str]
    estimates: list[Estimate]
    failures: Failures

    @property
    def values(self) -> np.ndarray:
        return np.array([e.value for e in self.estimates], dtype=np.float64)


def effective_dims_of(handle: ModelHandle, files: Sequence[tuple[int, str | Path]], sigma: float, method: Method,
                      probes: int, seed: int, progress: bool = False) -> tuple[dict[int, Estimate], Failures]:
    """:func:`explorer.jacobian.effective_dim` at y_i = x_i + σ z_i for every (index i, path) pair, with the
    noise of :func:`explorer.imagesets.noisy_image` (seeded by (seed, i, σ)); non-blind models are told σ."""
    def one(i: int, x: np.ndarray) -> Estimate:
        y = noisy_image(x, sigma, seed, i)
        return effective_dim(handle, y, None if handle.blind else sigma, method=method, probes=probes, seed=seed)

    return each_image(one, files, handle.channels == 1, "effective dim", progress)


def effective_dim_task(files: Sequence[tuple[int, str]], model: str, fingerprint: str, sigma: float, method: Method,
                       probes: int, seed: int) -> tuple[dict[int, Estimate], Failures]:
    """A runner task: :func:`effective_dims_of` of ``model`` (opened once per process, its weights checked
    against ``fingerprint``) on (index, path) images."""
    handle = runners.opened(("denoiser", model, fingerprint),
                            lambda: runners.verified([open_model(model)], [fingerprint])[0])
    return effective_dims_of(handle, files, sigma, method, probes, seed)


def effective_dims(model: str, folder: str | Path, sigma: float, method: Method = "auto", probes: int = DEFAULT_PROBES,
                   seed: int = 0, runner: Runner | None = None, progress: bool = True, client: Any = None) -> EffectiveDims:
    """Effective dimension (tr A) of ``model`` (a name or path) at noise level ``sigma`` ([0, 1] units)
    over the images of ``folder``, through ``runner`` (default: serially here). ``client=`` is the
    deprecated spelling of ``runner=explorer.distributed.DaskRunner(client)``."""
    run = runners.resolve(runner, client)
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    handle = open_model(model)
    paths = list_images(folder)
    files = list(enumerate(paths))
    if runners.is_in_process(run):
        task = partial(effective_dims_of, handle, sigma=sigma, method=method, probes=probes, seed=seed, progress=progress)
    else:
        task = partial(effective_dim_task, model=model, fingerprint=runners.model_fingerprint(handle), sigma=sigma,
                       method=method, probes=probes, seed=seed)
        files = portable(files)
    done, failures = runners.merge(run(task, files, desc="effective dim", progress=progress))
    order = sorted(done)
    return EffectiveDims([paths[i].name for i in order], [done[i] for i in order], failures)
