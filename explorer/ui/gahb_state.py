"""The GAHB tool's state without widgets: parameters, the staged computation (worker thread) and the
results and numbers it produces. :class:`~explorer.ui.gahb_view.GAHBView` adds the page; tests drive this.

Everything is computed by :mod:`explorer.jacobian` (``harmonic_basis``: the top-k SVD and the
eigen-shrinkage from one Krylov space; ``symmetry``, ``effective_dim_curve``, ``partial_shrinkage``).
One noise draw z (``numpy`` generator seeded with ``seed``) makes y = x + σz *and* the
effective-dimension curve, so the curve at the marked σ is tr A.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import param
import torch

from explorer import jacobian

from .models import sigma_arg
from .text import fmt_number

PER_PAGE = 16
CURVE_SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
EXACT_MAX_N = 256  # up to this many pixels traces and norms come from the dense Jacobian
#: Krylov settings of the top-k SVD and eigen-shrinkage, both from one block Lanczos space of A_s
#: (:func:`explorer.jacobian.harmonic_basis`): blocks of 3k/8 (small blocks reach a higher degree for the
#: same products), until every eigen-residual ≤ 0.3 % of λ₁ or 24 extensions. Measured on bf-natural-gray,
#: camera 64×64, σ = 0.1, k = 64, 1 torch thread with a training on the other core: 22 blocks, ≈ 27 s,
#: s₁..s₆₄ within 1.3 %, λ₁..λ₆₄ within 3e-5 λ₁ and x̂₆₄ within 0.4 % of converged solves; the separate
#: top_singular + shrinkage of before (3 steps, 1 %) took 26–46 s with x̂₆₄ 49 % off
#: (benchmarks/bench_jacobian.py --gahb 64).
KRYLOV = dict(steps=24, tol=3e-3)


def krylov_options(k: int) -> dict[str, Any]:
    return dict(KRYLOV, block=max(8, 3 * k // 8))


def noise_draw(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """z ~ N(0, I) of the tool: the same z for y = x + σz and for the σ-curve."""
    return np.random.default_rng(int(seed)).standard_normal(shape).astype(np.float32)


def as_numpy(t: Any) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def estimate_text(e: Any, digits: int = 3) -> str:
    if e is None:
        return "…"
    return fmt_number(e.value, digits) + (f" ± {fmt_number(e.stderr, 2)}" if e.stderr > 0 else " (exact)")


def compute_stages(req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
    """The worker: publishes dict(stage, value, seconds, progress) for 'images', 'svd' and 'shrinkage'
    (one Krylov run: the shrinkage comes with 0 s), 'stats' and each 'curve' point, and
    dict(stage='progress', progress) as the Krylov steps go."""
    h, y, k, x, z = req["handle"], req["y"], req["k"], req["x"], req["z"]
    s_arg = sigma_arg(h, req["sigma"])
    method = "exact" if y.size <= EXACT_MAX_N else "hutchinson"
    curve = [s for s in CURVE_SIGMAS if not math.isclose(s, req["sigma"])] if req["curve"] else []
    opts = krylov_options(k)
    total = 2 + (opts["steps"] + 1) + len(curve)  # images, stats, the Krylov blocks, curve points
    done = 0.0

    def tick(units: float = 1.0) -> int:
        nonlocal done
        done += units
        return min(99, int(100 * done / total))

    def stage(name: str, fn: Callable[[], Any], units: float = 1.0) -> Any:
        t0 = time.perf_counter()
        value = fn()
        publish(dict(stage=name, value=value, seconds=time.perf_counter() - t0, progress=tick(units)))
        return value

    def krylov_step(_step: int, _steps: int) -> None:
        publish(dict(stage="progress", progress=tick()))

    def images() -> dict[str, Any]:
        xhat = np.asarray(h.denoise(y, s_arg), np.float32)
        return dict(y=y, xhat=xhat, sigma_hat=float(h.estimate_sigma(h.to_tensor(y), s_arg)[0]))

    def stats() -> dict[str, Any]:
        # tr A and ‖A‖²_F from the σ-curve's routine at this σ and draw: the curve's point at σ *is* this
        c = jacobian.effective_dim_curve(h, x, [max(req["sigma"], 1e-6)], seed=req["seed"], method=method,
                                         probes=req["probes"], noise=z)
        est = lambda v, se: jacobian.Estimate(float(v), float(se), c.probes, c.method)  # noqa: E731
        return dict(trace=est(c.trace[0], c.trace_stderr[0]), sum_sq=est(c.sum_sq[0], c.sum_sq_stderr[0]),
                    symmetry=jacobian.symmetry(h, y, s_arg, method=method, probes=req["probes"], seed=req["seed"]),
                    method=method, curve=c)

    stage("images", images)
    if stop.is_set():
        return
    t0 = time.perf_counter()
    hb = jacobian.harmonic_basis(h, y, k, s_arg, seed=req["seed"], callback=krylov_step, **opts)
    publish(dict(stage="svd", value=hb.svd, seconds=time.perf_counter() - t0, progress=tick(0.0)))
    publish(dict(stage="shrinkage", value=hb.shrinkage, seconds=0.0, progress=tick(0.0)))
    if stop.is_set():
        return
    stage("stats", stats)
    for s in curve:
        if stop.is_set():
            return
        stage("curve", lambda s=s: jacobian.effective_dim_curve(h, x, [s], seed=req["seed"], method=method,
                                                                probes=req["probes"], noise=z))


class GAHBState(param.Parameterized):
    """Parameters: ``sigma`` (noise added to the clean image; 0 = the clean image itself), ``seed``,
    ``k`` (how many singular vectors / eigenvectors are computed), ``vectors`` (left u or right v),
    ``page`` (which page of the grid), ``terms`` (terms K of the shrinkage sum), ``probes`` (Hutchinson
    probes), ``curve``. Results: ``y``, ``xhat``, ``sigma_hat``, ``svd``, ``shrink``, ``stats`` (dict of
    Estimates), ``curve_data``, ``stage_seconds``, ``progress`` (0–100).
    """

    sigma = param.Number(default=0.1, bounds=(0.0, 0.5), step=0.005,
                         doc="σ: std of the noise added to the clean image ([0,1] units); 0 = the clean image")
    seed = param.Integer(default=0, bounds=(0, 99999), doc="Seed of the noise draw")
    k = param.Selector(objects=[4, 8, 16, 32, 64, 128, 256], default=16, doc="Number of singular vectors computed")
    vectors = param.Selector(objects=["u (output side)", "v (input side)"], default="u (output side)",
                             doc="Which singular vectors the grid shows")
    page = param.Integer(default=1, bounds=(1, 1), doc="Page of the singular-vector grid")
    terms = param.Integer(default=16, bounds=(1, 16), doc="Terms K of the shrinkage sum")
    probes = param.Integer(default=32, bounds=(4, 256), doc="Hutchinson probes for traces and norms")
    curve = param.Boolean(default=True, doc="Also compute the effective dimension against σ")
    progress = param.Integer(default=0, bounds=(0, 100), doc="Progress of the computation (%)")

    def reset_results(self, k: int) -> None:
        """Before a computation for k vectors: clear the results, set the terms and page ranges."""
        self.y = self.xhat = self.sigma_hat = None
        self.svd = self.shrink = None
        self.stats: dict[str, Any] = {}
        self.curve_data: dict[str, list[float]] = dict(sigma=[], trace=[], sum_sq=[], trace_se=[], sum_sq_se=[])
        self.stage_seconds: dict[str, float] = {}
        self.param.terms.bounds = (1, k)
        pages = max(1, math.ceil(k / PER_PAGE))
        self.param.page.bounds = (1, max(2, pages))  # a slider needs start < end; one page shows no slider
        self.param.update(terms=k, page=min(self.page, pages), progress=0)  # the slider shows the K used

    def request(self, handle: Any, x: np.ndarray) -> dict[str, Any]:
        z = noise_draw(x.shape, self.seed)
        y = (x + np.float32(self.sigma) * z).astype(np.float32)
        k = min(int(self.k), y.size)
        self.reset_results(k)
        return dict(handle=handle, x=x, y=y, z=z, sigma=float(self.sigma), k=k, probes=int(self.probes),
                    seed=int(self.seed), curve=bool(self.curve))

    def apply(self, msg: dict[str, Any]) -> str:
        """Store one published stage; returns its name."""
        stage, value = msg["stage"], msg.get("value")
        self.progress = msg["progress"]
        if stage == "progress":
            return stage
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + msg["seconds"]
        if stage == "images":
            self.y, self.xhat, self.sigma_hat = value["y"], value["xhat"], value["sigma_hat"]
        elif stage == "svd":
            self.svd = value
        elif stage == "shrinkage":
            self.shrink = value
        elif stage in ("stats", "curve"):
            if stage == "stats":
                self.stats = value
                value = value["curve"]
                if not self.curve or self.sigma <= 0:
                    return stage
            for key, arr in (("sigma", value.sigmas), ("trace", value.trace), ("sum_sq", value.sum_sq),
                             ("trace_se", value.trace_stderr), ("sum_sq_se", value.sum_sq_stderr)):
                self.curve_data[key].append(float(arr[0]))
        return stage

    def timing_text(self) -> str:
        names = dict(images="x̂", stats="traces", svd="top-k SVD + eigen-shrinkage (one Krylov space)",
                     shrinkage="eigen-shrinkage", curve="curve")
        return " · ".join(f"{names[k]} {v:.1f} s" for k, v in self.stage_seconds.items()
                          if not (k == "shrinkage" and v == 0.0))  # computed with the SVD

    def numbers_text(self) -> str:
        if self.y is None:
            return ""
        n, st = self.y.size, self.stats
        lines = [f"**N = {n}** pixels · noise σ = {fmt_number(self.sigma)} · "
                 f"σ̂ = {fmt_number(self.sigma_hat)} (noise std estimated from the residual, [0,1] units)"]
        if st:
            how = "exact (dense Jacobian)" if st["method"] == "exact" else f"Hutchinson, {self.probes} probes, ± 1 s.e."
            lines += [f"**effective dimension** tr A = {estimate_text(st['trace'])} "
                      f"(degrees of freedom kept, of N = {n}; {how}; the σ-curve's point at this σ, same noise draw)",
                      f"‖A‖²_F = Σₖ sₖ² = {estimate_text(st['sum_sq'])}",
                      f"**symmetry** ‖A − Aᵀ‖_F / ‖A‖_F = {estimate_text(st['symmetry'])} (0 = symmetric)"]
        else:
            lines.append("effective dimension, symmetry: computing…")
        if self.svd is not None:
            s = as_numpy(self.svd.values)
            lines.append(f"top singular values s₁ = {fmt_number(s[0])}, s_{len(s)} = {fmt_number(s[-1])}")
            if s[0] > 1:
                lines.append(f"s₁ = {fmt_number(s[0])} > 1: A is the Jacobian of a denoiser, not a projection, so "
                             "it may amplify some directions (x̂ changes faster than y there, e.g. across an edge)")
        return "<br>".join(lines)

    def grid_arrays(self) -> list[tuple[int, np.ndarray]]:
        """(k, vector image) for the vectors on the current page (k counted from 1)."""
        V, _ = self.vector_stack()
        first = min(int(self.page) - 1, max(0, (len(V) - 1) // PER_PAGE)) * PER_PAGE
        return [(first + i + 1, V[first + i]) for i in range(min(PER_PAGE, len(V) - first))]

    def vector_stack(self) -> tuple[np.ndarray, str]:
        if self.svd is None:
            return np.zeros((0, 1, 1)), ""
        left = self.vectors.startswith("u")
        return as_numpy(self.svd.U if left else self.svd.V)[:, 0], "u" if left else "v"

    def shrinkage_image(self) -> np.ndarray | None:
        """x̂_K = Σ_{k≤K} λ_k ⟨y, e_k⟩ e_k for K = ``terms`` (:func:`explorer.jacobian.partial_shrinkage`)."""
        if self.shrink is None or self.y is None:
            return None
        return jacobian.partial_shrinkage(as_numpy(self.shrink.eigenvalues), as_numpy(self.shrink.eigenvectors)[:, 0],
                                          self.y, int(self.terms)).astype(np.float32)

    def shrinkage_text(self) -> str:
        rec = self.shrinkage_image()
        if rec is None:
            return ""
        K, lam = int(self.terms), as_numpy(self.shrink.eigenvalues)
        err = np.linalg.norm(rec - self.xhat) / max(np.linalg.norm(self.xhat), 1e-12)
        e_K = as_numpy(self.shrink.eigenvectors)[K - 1, 0]
        coef = lam[K - 1] * float(e_K.ravel() @ self.y.ravel().astype(np.float64))
        return (f"x̂_K = Σ_(k≤K) λₖ⟨y, eₖ⟩eₖ with **K = {K}** of {len(lam)} computed terms · "
                f"‖x̂_K − x̂(y)‖ / ‖x̂(y)‖ = {fmt_number(err)} · λ_K⟨y, e_K⟩ = {fmt_number(coef)}")
