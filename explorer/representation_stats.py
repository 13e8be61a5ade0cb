"""What the representation φ of a data set says, in pure functions of arrays (Kadkhodaie, Mallat & Simoncelli 2025).

Rows of ``phi`` (N, K) are images, columns channels (:func:`explorer.representation.features_of_images`).

- Clusters: :func:`kmeans` (scikit-learn's ``KMeans``: k-means++ seeding, ``n_init`` restarts kept by least
  inertia, Lloyd iterations in compiled code, reproducible from ``seed``) of φ or of its channels standardized
  (:func:`standardize`, z = (φ − μ)/s per channel), and :func:`purity` against labels,
  (1/N) Σ_k max_c |{n : k_n = k, c_n = c}|.
- Neighbours: :func:`nearest` — the Euclidean nearest rows of any vectors (φ, or flattened pixels).
- Sparsity and selectivity with the relative threshold τ: channel c is *on* for image n when
  φ_c(x_n) > τ max_c' φ_c'(x_n) (:func:`active`; relative, so unchanged by a contrast change, which scales φ
  of a bias-free network). :func:`sparsity` is the fraction of channels off per image, :func:`channel_activity`
  the fraction of images that switch each channel on, and :func:`class_selectivity` the selectivity index of
  each channel over labelled classes, SI_c = (μ_c,max − μ_c,rest) / (μ_c,max + μ_c,rest) ∈ [0, 1], μ_c,max the
  largest class mean of φ_c and μ_c,rest the mean of the other class means.
- Robustness: :func:`robustness` — the Pearson correlation across channels of φ(x + σz) with φ(x), per image.
- A 2-D view: :func:`pca_2d`, the projection on the first two principal axes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clusters:
    """k-means of N vectors: ``labels`` (N,) in 0…k−1, ``centroids`` (k, K), ``inertia`` Σ_n ‖v_n − c_{k_n}‖²."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float


def _rows(v: np.ndarray, name: str = "vectors") -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 2 or not len(a):
        raise ValueError(f"{name} must be a non-empty (N, K) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return a


def standardize(phi: np.ndarray) -> np.ndarray:
    """(φ − μ)/s per channel over the images (s = 1 where a channel is constant): every channel weighs the same
    in distances, instead of the few with the largest spread."""
    a = _rows(phi, "phi")
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> Clusters:
    """k-means of the rows of ``vectors`` into ``k`` clusters (scikit-learn, k-means++ with ``n_init`` restarts)."""
    from sklearn.cluster import KMeans

    a = _rows(vectors)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(a):
        raise ValueError(f"k must be an integer in [1, {len(a)}] for {len(a)} vectors, got {k!r}")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(a)
    return Clusters(km.labels_.astype(np.int64), km.cluster_centers_, float(km.inertia_))


def purity(clusters: np.ndarray, classes: np.ndarray) -> float:
    """(1/N) Σ_k max_c |{n : k_n = k, c_n = c}|: the fraction of images in their cluster's majority class."""
    k, c = np.asarray(clusters), np.asarray(classes)
    if k.shape != c.shape or k.ndim != 1 or not len(k):
        raise ValueError(f"clusters and classes must be equal-length 1-D arrays, got {k.shape} and {c.shape}")
    _, kk = np.unique(k, return_inverse=True)
    _, cc = np.unique(c, return_inverse=True)
    table = np.zeros((kk.max() + 1, cc.max() + 1), dtype=np.int64)
    np.add.at(table, (kk, cc), 1)
    return float(table.max(axis=1).sum() / len(k))


def majority(clusters: np.ndarray, classes: np.ndarray, k: int) -> list[tuple[object, float]]:
    """Per cluster 0…k−1: (its most frequent class, the fraction of its members in it); (None, 0) if empty."""
    out: list[tuple[object, float]] = []
    for j in range(k):
        members = np.asarray(classes)[np.asarray(clusters) == j]
        if not len(members):
            out.append((None, 0.0))
            continue
        values, counts = np.unique(members, return_counts=True)
        out.append((values[counts.argmax()].item(), float(counts.max() / len(members))))
    return out


def nearest(vectors: np.ndarray, query: np.ndarray, count: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` rows of ``vectors`` (N, K) nearest to ``query`` (K,) in Euclidean distance, nearest first:
    (indices, distances); row ``exclude`` (the query's own row) is left out."""
    a, q = _rows(vectors), np.asarray(query, dtype=np.float64).ravel()
    if q.shape != a.shape[1:]:
        raise ValueError(f"the query has {q.size} values, the vectors {a.shape[1]}")
    d = np.sqrt(((a - q) ** 2).sum(axis=1))
    if exclude is not None:
        d[exclude] = np.inf
    order = np.argsort(d, kind="stable")[:min(count, len(a) - (exclude is not None))]
    return order, d[order]


def active(phi: np.ndarray, tau: float = 0.1) -> np.ndarray:
    """(N, K) bool: φ_c(x_n) > τ max_c' φ_c'(x_n), channel c switched on by image n."""
    a = _rows(phi, "phi")
    if not 0 <= tau < 1:
        raise ValueError(f"the threshold τ must be in [0, 1), got {tau!r}")
    return a > tau * a.max(axis=1, keepdims=True).clip(min=0)


def sparsity(phi: np.ndarray, tau: float = 0.1) -> np.ndarray:
    """(N,) the fraction of channels off for each image (1 − mean of :func:`active` over channels)."""
    return 1.0 - active(phi, tau).mean(axis=1)


def channel_activity(phi: np.ndarray, tau: float = 0.1) -> np.ndarray:
    """(K,) the fraction of images that switch each channel on (a selective channel: a small fraction)."""
    return active(phi, tau).mean(axis=0)


def class_selectivity(phi: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(K,) SI_c = (μ_c,max − μ_c,rest)/(μ_c,max + μ_c,rest) over the class means of φ_c (0 for a channel
    never on); needs at least two classes."""
    a, c = _rows(phi, "phi"), np.asarray(classes)
    values = np.unique(c)
    if len(values) < 2 or c.shape != (len(a),):
        raise ValueError("class selectivity needs one class per image and at least two classes")
    means = np.stack([a[c == v].mean(axis=0) for v in values])  # (classes, K)
    top = means.max(axis=0)
    rest = (means.sum(axis=0) - top) / (len(values) - 1)
    denom = top + rest
    return np.where(denom > 0, (top - rest) / np.where(denom > 0, denom, 1.0), 0.0)


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) the Pearson correlation of rows a_n and b_n across their K entries (NaN for a constant row)."""
    x, y = _rows(a, "a"), _rows(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have one shape, got {x.shape} and {y.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=1) / denom, np.nan)


def robustness(clean: np.ndarray, noisy: dict[float, np.ndarray]) -> dict[float, float]:
    """σ → the mean over images of corr(φ(x_n + σz), φ(x_n)) (:func:`correlation`), from φ of the clean
    images (N, K) and of their noisy copies at each σ."""
    return {float(s): float(np.nanmean(correlation(v, clean))) for s, v in sorted(noisy.items())}


def most_robust(curves: dict[str, dict[float, float]]) -> str:
    """The block whose robustness curve (σ → correlation) has the largest mean over its σ values."""
    if not curves:
        raise ValueError("no robustness curves")
    return max(curves, key=lambda b: float(np.mean(list(curves[b].values()))))


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows projected on the first two principal axes, (N, 2), and the fraction of the variance each
    axis carries, (2,) (an SVD of the centred rows)."""
    a = _rows(vectors)
    centred = a - a.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    s2 = np.zeros(2)
    s2[:min(2, len(s))] = s[:2]
    coords = np.zeros((len(a), 2))
    coords[:, :min(2, u.shape[1])] = u[:, :2] * s[:2]
    total = float((s**2).sum())
    return coords, (s2**2 / total if total > 0 else s2)
