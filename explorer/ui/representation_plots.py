"""The figures of the representation tool, as HoloViews elements built from an
:class:`~explorer.ui.representation_state.Analysis` (no widgets here).

- :func:`labelled_mosaic` — images tiled in gray [0, 1] with square pixels, gaps in white, each row or column
  named on its axis (the clusters, the neighbours, the guided samples);
- :func:`pca_plot` — the PCA plane of the clustered vectors coloured by cluster or label;
- :func:`sparsity_plot`, :func:`activity_plot`, :func:`selectivity_plot`, :func:`robustness_plot`.
"""
from __future__ import annotations

from collections.abc import Sequence

import holoviews as hv
import numpy as np

from .plots import gray_image
from .representation_state import Analysis, mosaic
from .text import fmt_number
from .theme import ACCENT

GAP = 2  # white pixels between tiles
PLOT = dict(toolbar=None, show_grid=True, fontsize={"title": "10pt", "labels": "9pt", "xticks": "8pt", "yticks": "8pt"})


def labelled_mosaic(images: np.ndarray, cols: int, scale: float, title: str, row_labels: Sequence[str] = (),
                    col_labels: Sequence[str] = (), xlabel: str = "", tap: bool = False) -> hv.Image:
    """Images (n, H, W) tiled ``cols`` a row (:func:`~explorer.ui.representation_state.mosaic`), ``scale`` screen
    pixels per image pixel, rows named on the y axis and columns on the x axis when labels are given."""
    n, h, w = images.shape
    m = mosaic(images, cols, GAP)
    rows = m.shape[0] // (h + GAP) + 1
    opts: dict = dict(clipping_colors={"NaN": "white"}, fontsize={"title": "10pt", "xticks": "8pt", "yticks": "8pt",
                                                                  "labels": "9pt"})
    if row_labels:
        opts.update(yaxis="left", yticks=[(m.shape[0] - (r * (h + GAP) + h / 2), t) for r, t in enumerate(row_labels)],
                    ylabel="")
    if col_labels:
        opts.update(xaxis="bottom", xticks=[(c * (w + GAP) + w / 2, t) for c, t in enumerate(col_labels)],
                    xlabel=xlabel)
    if tap:
        opts.update(tools=["tap", "hover"])
    return gray_image(m, title, size=int(round(m.shape[1] * scale)), **opts)


def cluster_mosaic(a: Analysis, members: list[np.ndarray], per_cluster: int, scale: float) -> hv.Image:
    """Row j: up to ``per_cluster`` members of cluster j nearest its centroid (blank tiles where it has fewer)."""
    h, w = a.data.images.shape[1:]
    tiles = np.full((len(members) * per_cluster, h, w), np.nan, dtype=np.float32)
    for j, idx in enumerate(members):
        tiles[j * per_cluster:j * per_cluster + len(idx)] = a.data.images[idx]
    what = "standardized φ" if a.standardized else "φ"
    return labelled_mosaic(tiles, per_cluster, scale,
                           f"k-means clusters of {what} ({a.block}), nearest the centroid first",
                           row_labels=a.cluster_summary(), tap=True)


def pca_plot(a: Analysis, color_by: str, query: int | None) -> hv.Overlay:
    """The items in the plane of the first two principal axes of the clustered vectors."""
    labels = a.data.classes if color_by == "label" and a.data.classes is not None else a.clusters.labels
    name = "label" if labels is not a.clusters.labels else "cluster"
    order = np.argsort(labels, kind="stable")  # the legend lists the labels in order of appearance: sorted
    pts = hv.Points({"PC1": a.coords[order, 0], "PC2": a.coords[order, 1], name: np.asarray(labels)[order].astype(str),
                     "item": order}, ["PC1", "PC2"], [name, "item"])
    layers = [pts.opts(color=name, cmap="Category20" if len(np.unique(labels)) > 10 else "Category10", size=4,
                       alpha=0.7, tools=["hover"], legend_position="right", show_legend=True)]
    if query is not None:
        layers.append(hv.Points([tuple(a.coords[query])], ["PC1", "PC2"], label=f"item #{query}").opts(
            marker="circle", size=14, fill_alpha=0, line_color="black", line_width=2))
    what = "standardized φ" if a.standardized else "φ"
    return hv.Overlay(layers).opts(
        xlabel=f"PC1 ({a.share[0]:.0%} of the variance)", ylabel=f"PC2 ({a.share[1]:.0%} of the variance)",
        title=f"PCA of {what}, coloured by {name}", frame_width=280, frame_height=280, **PLOT)


def sparsity_plot(a: Analysis, tau: float) -> hv.Histogram:
    """The fraction of channels off per image."""
    counts, edges = np.histogram(a.sparsity, bins=20, range=(0, 1))
    return hv.Histogram((edges, counts), kdims=[f"fraction of channels off (φ_c ≤ {tau:g}·max φ)"], vdims=["images"]).opts(
        title=f"Sparsity: median {np.median(a.sparsity):.0%} of {a.phi.shape[1]} off",
        color=ACCENT, frame_width=260, frame_height=180, **PLOT)


def activity_plot(a: Analysis) -> hv.Curve:
    """The fraction of images that switch each channel on, channels sorted."""
    rate = np.sort(a.activity)[::-1]
    return hv.Curve((np.arange(1, len(rate) + 1), rate), "channel (sorted by activity)",
                    "fraction of images it is on for").opts(
        title="Selectivity: images per channel", color=ACCENT, line_width=2, ylim=(0, 1.02),
        frame_width=260, frame_height=180, **PLOT)


def selectivity_plot(a: Analysis) -> hv.Curve | None:
    """Each channel's class selectivity index (μ_max − μ_rest)/(μ_max + μ_rest), sorted (None without labels)."""
    if a.selectivity is None:
        return None
    si = np.sort(a.selectivity)[::-1]
    return hv.Curve((np.arange(1, len(si) + 1), si), "channel (sorted by selectivity)",
                    "class selectivity index").opts(
        title=f"Class selectivity: median {fmt_number(float(np.median(si)), 2)}", color=ACCENT, line_width=2,
        ylim=(0, 1.02), frame_width=260, frame_height=180, **PLOT)


def robustness_plot(curves: dict[str, dict[float, float]], current: str) -> hv.Overlay:
    """corr(φ_b(x + σz), φ_b(x)) against σ, a curve per block (the block analysed drawn thicker)."""
    layers = []
    for name, c in curves.items():
        s = sorted(c)
        layers.append(hv.Curve((s, [c[v] for v in s]), "σ of the added noise", "correlation across channels, φ(x + σz) with φ(x)",
                               label=name).opts(line_width=4 if name == current else 1.5))
        layers.append(hv.Scatter((s, [c[v] for v in s]), "σ of the added noise", "correlation across channels, φ(x + σz) with φ(x)",
                                 label=name).opts(size=5))
    return hv.Overlay(layers).opts(
        title="Robustness of φ per block, mean over images", logx=True,
        xlim=(0.04, 1.0), ylim=(-0.1, 1.05), legend_position="right", frame_width=420, frame_height=220, **PLOT)
