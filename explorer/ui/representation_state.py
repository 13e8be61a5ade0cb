"""The representation tool without widgets: the two workers (the analysis of a data set's φ, and guided sampling),
what they return, and the image mosaics the page draws.
:class:`~explorer.ui.representation_view.RepresentationView` shows them.

The analysis of ``req`` (model, data, count, block, σ_φ, draws, k, standardize): φ_b(x_n; σ_φ) of the items
(:func:`explorer.representation_data.dataset_features`, cached), k-means with k clusters of φ (standardized
channels or not) and of the pixels, purity against the labels where there are labels, the PCA plane, sparsity and
selectivity; then the robustness curve of every block on :data:`ROBUSTNESS_IMAGES` items (kept per model and
data set). Guided sampling draws :data:`SAMPLES` images of Algorithm 1 pulled towards φ* (an item's φ or its
cluster's mean φ), each with its φ-distance and, with labels, the label of its nearest item in pixels.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.guidance import guided_sample, phi_distance
from explorer.representation import block_names, robustness_curves
from explorer.representation_data import DataSet, dataset, dataset_features
from explorer.representation_stats import (Clusters, channel_activity, class_selectivity, kmeans, majority, nearest,
                                           pca_2d, purity, sparsity, standardize)

from .models import get_handle

ROBUSTNESS_SIGMAS = (0.05, 0.1, 0.2, 0.4, 0.8)
ROBUSTNESS_IMAGES = 100
SAMPLES = 8
NEIGHBOURS = 8
TAU = 0.1  # the relative threshold of "on" (explorer.representation_stats.active)
_ROBUSTNESS: dict[tuple[str, str, int], dict[str, dict[float, float]]] = {}  # (model, source, count) → curves


@dataclass(frozen=True)
class Analysis:
    """φ of a data set and what it says: ``phi`` (N, K) as computed, ``vectors`` (what is clustered: φ or its
    standardized channels), ``clusters`` of the vectors and ``pixel_clusters`` of the pixels (k each),
    their ``purity`` and ``pixel_purity`` (None without labels), ``coords`` (N, 2) and ``share`` (2,) of the PCA,
    ``sparsity`` (N,), ``activity`` (K,), ``selectivity`` (K,) or None, and the seconds φ took."""

    data: DataSet
    model: str
    block: str
    sigma: float
    draws: int
    standardized: bool
    phi: np.ndarray
    vectors: np.ndarray
    clusters: Clusters
    pixel_clusters: Clusters
    purity: float | None
    pixel_purity: float | None
    coords: np.ndarray
    share: np.ndarray
    sparsity: np.ndarray
    activity: np.ndarray
    selectivity: np.ndarray | None
    seconds: float

    @property
    def pixels(self) -> np.ndarray:
        return self.data.images.reshape(len(self.data), -1)

    def neighbours(self, index: int, count: int = NEIGHBOURS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The ``count`` nearest other items of item ``index``: 'phi' (in the clustered vectors) and 'pixels',
        each (indices, Euclidean distances)."""
        return {"phi": nearest(self.vectors, self.vectors[index], count, exclude=index),
                "pixels": nearest(self.pixels, self.pixels[index], count, exclude=index)}

    def cluster_summary(self) -> list[str]:
        """Per cluster: 'cluster j · n items' and, with labels, its majority label and share."""
        k = len(self.clusters.centroids)
        sizes = np.bincount(self.clusters.labels, minlength=k)
        out = [f"cluster {j} · {n} items" for j, n in enumerate(sizes)]
        if self.data.classes is not None:
            for j, (label, share) in enumerate(majority(self.clusters.labels, self.data.classes, k)):
                if label is not None:
                    out[j] += f" · {share:.0%} are {label}"
        return out


def analyse(handle: Any, data: DataSet, model: str, block: str, sigma: float, draws: int, k: int, standardized: bool,
            progress: Callable[[int, int], object] | None = None, stop: Callable[[], bool] | None = None,
            cache: bool = True) -> Analysis | None:
    """The :class:`Analysis` of ``data`` (None if stopped)."""
    t0 = time.perf_counter()
    phi = dataset_features(handle, data, block, sigma or None, draws, cache=cache, progress=progress, stop=stop)
    if stop is not None and stop():
        return None
    seconds = time.perf_counter() - t0
    vectors = standardize(phi) if standardized else phi.astype(np.float64)
    k = min(k, len(data))
    clusters = kmeans(vectors, k)
    pixel_clusters = kmeans(data.images.reshape(len(data), -1), k)
    labelled = data.classes is not None
    coords, share = pca_2d(vectors)
    return Analysis(data, model, block, float(sigma or 0.0), draws, standardized, phi, vectors, clusters,
                    pixel_clusters, purity(clusters.labels, data.classes) if labelled else None,
                    purity(pixel_clusters.labels, data.classes) if labelled else None, coords, share,
                    sparsity(phi, TAU), channel_activity(phi, TAU),
                    class_selectivity(phi, data.classes) if labelled and len(np.unique(data.classes)) > 1 else None,
                    seconds)


def compute(req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
    """The analysis worker: publishes dict(progress=(done, N)) while φ is computed, dict(analysis=Analysis), then
    dict(robustness={block: {σ: corr}}) and dict(done=seconds). Returns early once ``stop`` is set."""
    t0 = time.perf_counter()
    handle = get_handle(req["model"])
    names = block_names(handle)
    if req["block"] not in names:
        raise ValueError(f"{req['model']} has no block {req['block']!r}; it offers {', '.join(names)}")
    data = dataset(req["data"], count=req["count"])
    result = analyse(handle, data, req["model"], req["block"], req["sigma"], req["draws"], req["k"],
                     req["standardize"], progress=lambda done, total: publish(dict(progress=(done, total))),
                     stop=stop.is_set, cache=req.get("cache", True))
    if result is None:
        return
    publish(dict(analysis=result))
    key = (req["model"], req["data"], len(data))
    if key not in _ROBUSTNESS:
        curves = robustness_curves(handle, data.images[:ROBUSTNESS_IMAGES], list(ROBUSTNESS_SIGMAS), stop=stop.is_set)
        if stop.is_set():
            return
        _ROBUSTNESS[key] = curves
    publish(dict(robustness=_ROBUSTNESS[key]))
    publish(dict(done=time.perf_counter() - t0))


@dataclass(frozen=True)
class Guided:
    """Guided samples: the ``target`` image (None for a centroid), its description, the ``images`` (B, H, W),
    their φ-distances ‖φ(x̂) − φ*‖/‖φ*‖ and nearest-item labels (None without labels), steps and seconds."""

    target: np.ndarray | None
    target_text: str
    images: np.ndarray
    distances: np.ndarray
    labels: list[Any] | None
    steps: int
    seconds: float


def target_phi(analysis: Analysis, index: int, centroid: bool) -> tuple[np.ndarray, np.ndarray | None, str]:
    """φ* for guided sampling: the mean φ of item ``index``'s cluster, or the item's own φ (as the analysis
    computed it); with the target image (None for a centroid) and a description."""
    if centroid:
        j = int(analysis.clusters.labels[index])
        members = analysis.clusters.labels == j
        return analysis.phi[members].mean(axis=0), None, f"the mean φ of cluster {j} ({int(members.sum())} items)"
    return analysis.phi[index], analysis.data.images[index], f"item #{index}: {analysis.data.names[index]}"


def sample_guided(req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
    """The sampling worker: ``req`` holds the ``analysis``, ``index``, ``centroid``, ``strength``, ``seed``.
    Publishes dict(progress=t) per iteration and dict(guided=Guided) at the end (nothing once stopped)."""
    t0 = time.perf_counter()
    a: Analysis = req["analysis"]
    handle = get_handle(a.model)
    phi_star, image, text = target_phi(a, req["index"], req["centroid"])
    h, w = a.data.images.shape[1:]
    result = guided_sample(handle, phi_star, a.block, (SAMPLES, 1, h, w), strength=req["strength"],
                           sigma=a.sigma or None, seed=req["seed"], snapshot_every=None,
                           callback=lambda state: publish(dict(progress=state.t)), stop=stop)
    if stop.is_set():
        return
    x = result.image.detach().cpu()
    dist = phi_distance(handle, x, phi_star, a.block, a.sigma or None, max(a.draws, 1) if a.sigma else 1,
                        seed=req["seed"])
    labels = None
    if a.data.classes is not None:
        labels = [a.data.classes[nearest(a.pixels, xi.ravel(), 1)[0][0]].item() for xi in x[:, 0].numpy()]
    publish(dict(guided=Guided(image, text, x[:, 0].numpy(), dist, labels, int(result.steps.max()),
                               time.perf_counter() - t0)))


def mosaic(images: np.ndarray, cols: int, gap: int = 2) -> np.ndarray:
    """Images (n, H, W) tiled row by row into ``cols`` columns with ``gap`` NaN pixels between (NaN also fills
    the last row); the page draws NaN as white."""
    n, h, w = images.shape
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype=np.float32)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = im
    return out


def tile_at(x: float, y: float, shape: tuple[int, int], rows: int, cols: int, gap: int = 2) -> tuple[int, int] | None:
    """The (row, column) of the :func:`mosaic` tile under plot point (x, y) (row 0 at the top), None on a gap."""
    h, w = shape
    total_h = rows * (h + gap) - gap
    r_px, c_px = total_h - y, x
    r, c = int(r_px // (h + gap)), int(c_px // (w + gap))
    if not (0 <= r < rows and 0 <= c < cols) or r_px % (h + gap) >= h or c_px % (w + gap) >= w:
        return None
    return r, c


def cluster_members(analysis: Analysis, per_cluster: int) -> list[np.ndarray]:
    """Per cluster, up to ``per_cluster`` member indices, nearest to the centroid first."""
    out = []
    for j, c in enumerate(analysis.clusters.centroids):
        idx = np.flatnonzero(analysis.clusters.labels == j)
        d = ((analysis.vectors[idx] - c) ** 2).sum(axis=1)
        out.append(idx[np.argsort(d, kind="stable")[:per_cluster]])
    return out

