"""What the photograph views of the Energies tool draw, from an
:class:`~explorer.ui.energy_patch_state.EnergyPatchState`.

- :func:`scatter_figure` — −log p of each image against its gradient energy (log axis) or its denoising
  gain, with the correlations in the title (:func:`explorer.patch_measures.correlations`);
- :func:`map_figure` — the photograph and −log p of its patches as a heat map over it, with a labelled
  colour bar; :func:`map_markdown` — what the map shows, in numbers.
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from explorer.energies import log10_probability_ratio
from explorer.patch_measures import correlations

from .energy_patch_state import EnergyPatchState
from .energy_plots import axis_label
from .plots import gray_image
from .text import fmt_number
from .theme import ACCENT

SCATTER_SIZE = (430, 330)
MAP_PX = 360
MAP_CMAP = "inferno"
MAP_ALPHA = 0.7


def scatter_data(s: EnergyPatchState, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, −log p in the energies' unit) of the images with a finite x; x = log10 G or the gain in dB."""
    v = s.energy.values()
    x = s.gradient if which == "gradient" else s.gain
    if len(x) != len(v):
        return np.zeros(0), np.zeros(0)
    x = np.log10(np.where(x > 0, x, np.nan)) if which == "gradient" else x
    ok = np.isfinite(x) & np.isfinite(v)
    return x[ok], v[ok]


def correlation_text(s: EnergyPatchState, which: str) -> str:
    """"Pearson r = …, Spearman ρ = … (n images)" of −log p against x, or why there are none."""
    x, v = scatter_data(s, which)
    c = correlations(x, v)
    if not np.isfinite(c["pearson"]):
        return f"no correlation ({c['n']} images with a value)"
    of = "log₁₀ G" if which == "gradient" else "the gain"
    return f"Pearson r = {c['pearson']:.3f} (with {of}), Spearman ρ = {c['spearman']:.3f}, n = {c['n']}"


def scatter_figure(s: EnergyPatchState, which: str) -> hv.Scatter | None:
    """−log p (y, the energies' unit) against the gradient energy or the denoising gain (x)."""
    x, v = scatter_data(s, which)
    if x.size == 0:
        return None
    e = s.energy
    xlabel = "log₁₀ G, G = mean squared gradient per pixel" if which == "gradient" else (
        f"denoising gain of {s.denoiser} at σ = 25/255 (dB)")
    ylabel = axis_label(e.unit, e.quantity)
    c = correlations(x, v)
    title = ("−log p vs local contrast" if which == "gradient" else "−log p vs denoisability") + \
        f"\nPearson r = {c['pearson']:.3f}, Spearman ρ = {c['spearman']:.3f} (n = {c['n']})"
    return hv.Scatter((x, v), kdims=[xlabel], vdims=[ylabel]).opts(
        color=ACCENT, alpha=0.55, size=4, width=SCATTER_SIZE[0], height=SCATTER_SIZE[1], show_grid=True,
        tools=["hover"], toolbar=None, title=title, fontsize={"title": "9.5pt", "labels": "9pt"})


def map_figure(s: EnergyPatchState) -> hv.Layout | None:
    """The photograph (gray, [0, 1]) beside −log p of its patches over it (heat map, colour bar in the unit)."""
    m, img = s.map, s.map_image
    if m is None or img is None:
        return None
    e = s.energy
    h, w = img.shape
    left, top, right, bottom = m.extent()
    values = m.in_unit(e.unit)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    photo = gray_image(img, title=f"{s.map_label} ({h}×{w}, gray [0, 1])", size=MAP_PX, fontsize={"title": "9.5pt"})
    heat = hv.Image(values, bounds=(left, h - bottom, right, h - top), kdims=["x", "y"],
                    vdims=[hv.Dimension("nll", label=axis_label(e.unit, e.quantity))]).opts(
        cmap=MAP_CMAP, alpha=MAP_ALPHA, clim=(lo, hi if hi > lo else lo + 1e-9), colorbar=True,
        colorbar_opts={"title": axis_label(e.unit, e.quantity)}, tools=["hover"])
    under = gray_image(img, size=MAP_PX)
    title = (f"−log p of {m.nats.size} patches {m.size}×{m.size}, stride {m.stride}, over the photograph\n"
             f"(each cell: the {m.stride}×{m.stride} square at its patch's centre)")
    over = (under * heat).opts(title=title, fontsize={"title": "9.5pt"}, toolbar=None)
    return (photo + over).opts(shared_axes=False, toolbar=None)


def map_markdown(s: EnergyPatchState) -> str:
    """The map's range in the unit, its most and least probable patches, and the spread as a probability ratio."""
    m = s.map
    if m is None:
        return ""
    v = m.in_unit(s.energy.unit)
    i_lo, i_hi = np.unravel_index(np.nanargmin(v), v.shape), np.unravel_index(np.nanargmax(v), v.shape)
    at = lambda ij: f"({m.tops[ij[0]]}, {m.lefts[ij[1]]})"  # noqa: E731
    k = log10_probability_ratio(m.nats[np.isfinite(m.nats)])
    unit = "nats per patch" if s.energy.unit == "nats" else s.energy.unit
    return (f"{m.quantity.short()} over the map: from {fmt_number(float(np.nanmin(v)), 4)} (most probable patch, "
            f"top-left at row, column {at(i_lo)}) to {fmt_number(float(np.nanmax(v)), 4)} {unit} (least probable, "
            f"{at(i_hi)}): a probability ratio of 10^{k:.0f} between them.")
