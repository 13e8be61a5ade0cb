"""The σ_t and h_t plots of a coarse-to-fine run (the sampler's Algorithm 1, the inverse tool's Algorithm 2).

Built once per run as :class:`~explorer.ui.live_curves.LiveCurves` and refreshed in place from the run's
history (``{"t": (T,), "sigma": (T, chains), "h": (T,)}``): σ_t of every chain against the designed
schedule σ̄_t, and the step size h_t against h_t = h₀t / (1 + h₀(t − 1)).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from .live_curves import LiveCurves
from .plots import CHAIN_COLORS
from .theme import ACCENT

RUN_COLORS = ["#9aa5b1", "#c9a227", "#7fb77e", "#b07aa1", "#e8a07b", "#76b7b2"]


def chain_key(j: int) -> str:
    """The name of chain ``j``'s live σ_t line."""
    return f"chain {j}"


def sigma_curves(run: Any, title: str, ylabel: str, chain_label: Callable[[int], str],
                 earlier: Iterable[dict[str, Any]] = (), sigma_L: float | None = None, x_end: int = 0,
                 min_height: int = 300, width: float = 2.2) -> LiveCurves:
    """σ_t of ``run``'s chains (live, empty until :func:`show_sigma`) over the predicted σ̄_t (dashed),
    ``earlier`` runs (``{"t", "sigma", "label"}``, faded) and the target ``sigma_L`` (dotted). The log
    y-range is the run's and never flips; the x-range starts at ``run.x_range(x_end)``."""
    pt, pred = run.predicted_curve()
    plot = LiveCurves(title, "iteration t", ylabel, y_range=run.sigma_range(), x_range=run.x_range(x_end),
                      log_y=True, min_height=min_height)
    for k, old in enumerate(earlier):
        for j in range(old["sigma"].shape[1]):
            plot.add_line(old["t"], old["sigma"][:, j], label=old["label"] if j == 0 else "",
                          color=RUN_COLORS[k % len(RUN_COLORS)], alpha=0.55)
    plot.add_line(pt, pred, label="predicted σ̄ₜ", dash="dashed")
    for j in range(int(run.chains)):
        plot.add_live(chain_key(j), chain_label(j), CHAIN_COLORS[j % len(CHAIN_COLORS)], width=width)
    if sigma_L is not None:
        plot.add_level(float(sigma_L), "σ_L")
    return plot


def show_sigma(plot: LiveCurves, run: Any, hist: dict[str, np.ndarray], x_end: int = 0) -> None:
    """Show σ_t so far: swap the live lines' data and widen the x-range past the prediction (and past
    ``x_end``, the longest earlier run)."""
    t = hist["t"]
    for j in range(hist["sigma"].shape[1]):
        plot.update(chain_key(j), t, hist["sigma"][:, j])
    plot.set_x_range(*run.x_range(max(x_end, int(t[-1]) if t.size else 0)))


def step_size_curves(run: Any) -> LiveCurves:
    """h_t of this run (live) over the schedule h₀t / (1 + h₀(t − 1)) (dashed)."""
    ts, sched = run.h_schedule()
    plot = LiveCurves("Step size h_t", "iteration t", "step size h_t", y_range=(0.0, 1.05),
                      x_range=run.x_range(), min_height=180, legend_location="top_left", toolbar=False)
    plot.add_line(ts, sched, label="schedule h₀t/(1+h₀(t−1))", dash="dashed", width=1.2)
    plot.add_live("h", "this run", ACCENT)
    return plot


def show_step_size(plot: LiveCurves, run: Any, hist: dict[str, np.ndarray]) -> None:
    """Show h_t so far and widen the x-range with the run."""
    t = hist["t"]
    plot.update("h", t, hist["h"])
    plot.set_x_range(*run.x_range(int(t[-1]) if t.size else 0))
