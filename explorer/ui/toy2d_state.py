"""The toy-2D tool's state without widgets: parameters, the density and arrows, the sampler's chains
and the animation frames. :class:`~explorer.ui.toy2d_view.Toy2DView` adds the page; tests drive this.

All the maths is :mod:`explorer.toy2d` (``CurvePrior``, ``CurveMMSE``, ``plane_grid``,
``CurvePrior.log_density``, ``ascent_trajectories``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import param
import torch

from explorer.toy2d import CurveMMSE, CurvePrior, Trajectories, ascent_trajectories, plane_grid

from .text import fmt_number

EXTENT = 2.0
PRIOR_POINTS = 1024
MAX_FRAMES = 150
MAX_STEPS = 3000


def density_result(req: dict[str, Any]) -> dict[str, Any]:
    """p_σ on the grid and the arrows y → x̂(y) (σ-conditioned MMSE) for a request (any thread)."""
    prior, sigma = req["prior"], req["sigma"]
    xs, _, grid = plane_grid(EXTENT, req["resolution"])
    logp = prior.log_density(grid, sigma)  # (R, R), row i = x₂ = xs[i]
    g = torch.Generator().manual_seed(req["seed"])
    x = prior.sample(req["n"], g) if req["n"] else torch.zeros(0, 2, dtype=torch.float64)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        xhat = CurveMMSE(prior, blind=False)(y, torch.full((len(y),), sigma, dtype=torch.float64)) if len(y) else y
    return dict(req=req, xs=xs.numpy(), logp=logp.numpy(), clean=x.numpy(), noisy=y.numpy(), denoised=xhat.numpy())


def trajectory_result(req: dict[str, Any]) -> dict[str, Any]:
    """Algorithm 1's chains for a request (any thread): pooled, σ-conditioned MMSE told the tracked level."""
    tr = ascent_trajectories(CurveMMSE(req["prior"], blind=False), req["chains"], h0=req["h0"], beta=req["beta"],
                             sigma0=req["sigma0"], sigma_L=req["sigma_L"], seed=req["seed"], max_steps=MAX_STEPS,
                             pooled=True)
    return dict(req=req, traj=tr)


def frame_steps(T: int) -> np.ndarray:
    """The sampler step t shown by each animation frame: all of 0…T, or MAX_FRAMES of them evenly spaced."""
    return np.unique(np.linspace(0, T, min(T + 1, MAX_FRAMES)).round().astype(int))


class Toy2DState(param.Parameterized):
    """Parameters: the curve (``lobes``, ``amplitude``), the noise level ``sigma`` of the heat map and the
    arrows, ``n_arrows``, ``log_scale``, the sampler (``beta``, ``h0``, ``sigma0``, ``sigma_L``,
    ``chains``, ``seed``) and ``frame`` (the animation frame). Results: ``density`` (R, R) (p_σ on the
    grid), ``xs`` (R,), ``noisy`` / ``denoised`` (n, 2), ``trajectories``, ``frames`` (step t of each
    frame), ``info`` and ``chain_info`` (the text under the plots), ``error``.
    """

    sigma = param.Number(default=0.2, bounds=(0.03, 1.0), step=0.01, doc="σ of the heat map and the arrows")
    lobes = param.Integer(default=5, bounds=(0, 9), doc="Number of lobes k of the curve")
    amplitude = param.Number(default=0.3, bounds=(0.0, 0.6), step=0.05, doc="Lobe amplitude a")
    n_arrows = param.Integer(default=40, bounds=(0, 300), doc="Number of noisy points (arrows)")
    log_scale = param.Boolean(default=False, doc="Show log p_σ instead of p_σ")
    resolution = param.Integer(default=121, bounds=(31, 301), doc="Grid points per side of the heat map")
    beta = param.Number(default=0.5, bounds=(0.02, 1.0), step=0.01, doc="β: fraction of the noise removed per step")
    h0 = param.Number(default=0.05, bounds=(0.005, 0.5), step=0.005, doc="h₀: initial step size")
    sigma0 = param.Number(default=1.0, bounds=(0.2, 2.0), step=0.05, doc="σ₀: initial noise std")
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), step=0.002, doc="σ_L: stop at this noise std")
    chains = param.Integer(default=8, bounds=(1, 64), doc="Number of sampler chains")
    seed = param.Integer(default=0, bounds=(0, 99999), doc="Seed of the points, the noise and the chains")
    frame = param.Integer(default=0, bounds=(0, 1), doc="Animation frame")
    info = param.String(default="", doc="Numbers about the heat map and the arrows")
    chain_info = param.String(default="", doc="Numbers about the chains")
    error = param.String(default="", doc="The last error ('' if none)")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.prior: CurvePrior | None = None
        self.xs: np.ndarray = np.zeros(0)
        self.density: np.ndarray | None = None
        self.log_density: np.ndarray | None = None
        self.clean = self.noisy = self.denoised = np.zeros((0, 2))
        self.trajectories: Trajectories | None = None
        self.frames = np.zeros(1, dtype=int)
        self.new_curve()

    # ------------------------------------------------------------------ requests (computed inline here;
    # the view runs them on worker threads by overriding submit_density / submit_trajectories)
    @param.depends("lobes", "amplitude", watch=True)
    def new_curve(self) -> None:
        try:
            self.prior = CurvePrior(r0=1.0, a=float(self.amplitude), lobes=int(self.lobes), n_points=PRIOR_POINTS)
        except ValueError as e:
            self.error = str(e)
            return
        self.curve_changed()
        self.update_density()
        self.update_trajectories()

    def curve_changed(self) -> None:
        """Hook: the curve changed (the view redraws it)."""

    @property
    def curve_points(self) -> np.ndarray:
        """The closed curve as a polyline (n + 1, 2)."""
        pts = self.prior.points.numpy()
        return np.vstack([pts, pts[:1]])

    @param.depends("sigma", "n_arrows", "resolution", "log_scale", "seed", watch=True)
    def update_density(self) -> None:
        self.submit_density(dict(prior=self.prior, sigma=float(self.sigma), n=int(self.n_arrows),
                                 resolution=int(self.resolution), seed=int(self.seed), log=bool(self.log_scale)))

    @param.depends("beta", "h0", "sigma0", "sigma_L", "chains", "seed", watch=True)
    def update_trajectories(self) -> None:
        self.submit_trajectories(dict(prior=self.prior, beta=float(self.beta), h0=float(self.h0),
                                      sigma0=float(self.sigma0), sigma_L=float(self.sigma_L),
                                      chains=int(self.chains), seed=int(self.seed)))

    def submit_density(self, req: dict[str, Any]) -> None:
        self.set_density(density_result(req))

    def submit_trajectories(self, req: dict[str, Any]) -> None:
        self.set_trajectories(trajectory_result(req))

    # ------------------------------------------------------------------ results
    def set_density(self, msg: dict[str, Any]) -> None:
        self.xs, self.log_density = msg["xs"], msg["logp"]
        self.density = np.exp(self.log_density)
        self.clean, self.noisy, self.denoised = msg["clean"], msg["noisy"], msg["denoised"]
        dx = float(self.xs[1] - self.xs[0])
        mass = float(self.density.sum() * dx * dx)
        moved = np.linalg.norm(self.denoised - self.noisy, axis=1).mean() if len(self.noisy) else float("nan")
        self.error = ""
        self.info = (f"σ = {fmt_number(msg['req']['sigma'])} (noise std) · ∫p_σ over the square = {mass:.3f} "
                     f"(grid {len(self.xs)}×{len(self.xs)}) · mean arrow length ‖x̂(y) − y‖ = "
                     f"{fmt_number(moved)} · {len(self.noisy)} noisy points")

    @property
    def heat(self) -> np.ndarray:
        """What the heat map shows: p_σ, or log p_σ with ``log_scale`` (row i is x₂ = xs[i])."""
        return self.log_density if self.log_scale else self.density

    def set_trajectories(self, msg: dict[str, Any]) -> None:
        tr = self.trajectories = msg["traj"]
        self.frames = frame_steps(tr.paths.shape[0] - 1)
        self.param.frame.bounds = (0, max(1, len(self.frames) - 1))
        steps = tr.steps.numpy()
        counts = {s: tr.status.count(s) for s in set(tr.status)}
        req = msg["req"]
        self.chain_info = (f"**{len(steps)} chains**, {int(steps.max())} steps (β = {fmt_number(req['beta'])}, "
                           f"h₀ = {fmt_number(req['h0'])}; σ_t estimated from all chains together, so they stop "
                           "together) · " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        with param.parameterized.discard_events(self):
            self.frame = 0

    @property
    def last_frame(self) -> int:
        return len(self.frames) - 1

    def frame_data(self, frame: int | None = None) -> tuple[np.ndarray, int, int]:
        """(paths y_0…y_t (t + 1, B, 2), t, T) for an animation frame (default: the current one)."""
        tr = self.trajectories
        if tr is None:
            return np.full((1, 1, 2), 10 * EXTENT), 0, 0
        k = int(self.frame if frame is None else frame)
        t = int(self.frames[min(max(k, 0), self.last_frame)])
        return tr.paths[: t + 1].numpy(), t, tr.paths.shape[0] - 1

    def play_from(self) -> int:
        """The frame ▶ starts from: the current one, or frame 0 when the animation is at its end."""
        if int(self.frame) >= self.last_frame:
            self.frame = 0
        return int(self.frame)

    def parameters(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("sigma", "lobes", "amplitude", "n_arrows", "resolution", "beta", "h0",
                                             "sigma0", "sigma_L", "chains", "seed")}
        out["extent"] = EXTENT
        return out
