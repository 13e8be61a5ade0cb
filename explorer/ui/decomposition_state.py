"""The decomposition tool without widgets: the worker that decomposes the image with each denoiser, the
texts it shows and the arrays it downloads. :class:`~explorer.ui.decomposition_view.DecompositionView`
draws them.

For each chosen denoiser f, :mod:`explorer.decomposition` gives x = fⁿ(x) + Σ_{k<n} r_k with
r_k = f^k(x) − f^{k+1}(x), one application at a time so the page can show progress and a Stop can end
the work between two applications.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.decomposition import Decomposition, from_iterates, iterates, sigma_told

from .models import CLASSICAL, get_handle
from .text import fmt_number

LABELS = ("A", "B")  # the rows, one per compared denoiser
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclass(frozen=True)
class Row:
    """One denoiser's result: its picker ``name``, the :class:`~explorer.decomposition.Decomposition` (None if
    it failed: ``error`` says why), the wall ``seconds`` of its n applications and whether it is ``blind``."""

    name: str
    decomposition: Decomposition | None = None
    error: str = ""
    seconds: float = 0.0
    blind: bool = True


def power(k: int) -> str:
    """f^k(x) as text: x, f(x), f²(x), …"""
    return "x" if k == 0 else "f(x)" if k == 1 else f"f{str(k).translate(SUPERSCRIPTS)}(x)"


def layer_title(k: int) -> str:
    """'r₂ = f²(x) − f³(x)' (r₀ = x − f(x))."""
    return f"r{str(k).translate(SUBSCRIPTS)} = {power(k)} − {power(k + 1)}"


def strength_text(row: Row) -> str:
    """How the denoiser was told σ at each application."""
    s = row.decomposition.sigma if row.decomposition is not None else None
    if s is not None:
        told = f"told σ = {fmt_number(s)} at every application"
        if not row.blind:
            return told
        return told + (" (fixed strength)" if row.name in CLASSICAL else
                       " (fixed strength: a network without a σ input ignores it)")
    return "blind: each application estimates the noise level of its own input"


def exactness_text(d: Decomposition) -> str:
    """The reconstruction check as the page shows it."""
    n = str(d.n).translate(SUPERSCRIPTS)
    return (f"‖f{n}(x) + Σ r_k − x‖/‖x‖ = {fmt_number(d.relative_error, 2)} (summed in float64) · "
            f"base energy ‖f{n}(x)‖²/N = {fmt_number(d.base_energy)}")


def compute(req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
    """The worker: decompose ``req['image']`` with each of ``req['models']`` (``n``, ``sigma``, ``fixed``).

    Publishes dict(progress=(done, total)) after each application, dict(row=i, result=Row) after each
    denoiser (a failing one gets a Row with its ``error``; the others go on) and dict(done=seconds) at the end.
    Returns early, publishing nothing more, once ``stop`` is set.
    """
    t0, n, names = time.perf_counter(), int(req["n"]), list(req["models"])
    total, done = n * len(names), 0
    for i, name in enumerate(names):
        t_row, blind = time.perf_counter(), True
        try:
            handle = get_handle(name)
            blind = bool(getattr(handle, "blind", True))
            applied = []
            for u in iterates(handle, req["image"], n, req["sigma"], req["fixed"]):
                if stop.is_set():
                    return
                applied.append(u)
                done += 1
                publish(dict(progress=(done, total)))
            told = sigma_told(handle, req["sigma"], req["fixed"])
            row = Row(name, from_iterates(req["image"], applied, told), seconds=time.perf_counter() - t_row, blind=blind)
        except Exception as e:  # noqa: BLE001 - a model that cannot run here says why; the other row goes on
            done = (i + 1) * n
            row = Row(name, error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t_row, blind=blind)
        if stop.is_set():
            return
        publish(dict(row=i, result=row))
    publish(dict(done=time.perf_counter() - t0))


def png_panels(rows: Sequence[Row]) -> list[tuple[str, np.ndarray, str]]:
    """The PNG download's tiles, a row per denoiser: the layers (each in its own ±max, stated) and the base."""
    panels: list[tuple[str, np.ndarray, str]] = []
    for label, row in zip(LABELS, rows):
        d = row.decomposition
        if d is None:
            continue
        for k, r in enumerate(d.layers):
            panels.append((f"{label} r{k} (±{fmt_number(float(np.abs(r).max()), 2)})", r, "diverging"))
        panels.append((f"{label} base f^{d.n}(x)", d.base, "gray"))
    return panels


def npz_arrays(image: np.ndarray | None, rows: Sequence[Row]) -> dict[str, Any]:
    """The NPZ download's arrays: x, and per denoiser (A, B) its layers, base and energies (all float64)."""
    arrays: dict[str, Any] = dict(x=image)
    for label, row in zip(LABELS, rows):
        d = row.decomposition
        if d is not None:
            arrays.update({f"{label}_layers": d.layers, f"{label}_base": d.base, f"{label}_energies": d.energies})
    return arrays


def npz_params(rows: Sequence[Row], **params: Any) -> dict[str, Any]:
    """The NPZ download's parameters: ``params`` and, per denoiser, its name, σ told, error and timing."""
    out = dict(params)
    for label, row in zip(LABELS, rows):
        d = row.decomposition
        out[label] = dict(model=row.name, sigma_told=d.sigma if d else None, error=row.error, seconds=row.seconds,
                          relative_error=d.relative_error if d else None, base_energy=d.base_energy if d else None)
    return out
