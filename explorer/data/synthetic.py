"""Seeded synthetic image families: dead leaves, 5-parameter discs, C^α contour images.

Every generator returns float32 in [0, 1] and is a deterministic function of its ``seed`` (an int,
or a :class:`numpy.random.Generator` to draw from). Pixel (row i, column j) sits at the point
(x, y) = (j, i); images are ``size`` × ``size``.
"""
from __future__ import annotations

import numpy as np

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_size(size: int, minimum: int = 2) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < minimum:
        raise ValueError(f"size must be an integer >= {minimum}, got {size!r}")
    return int(size)


def _check_count(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def soft_step(d: np.ndarray, smooth: float) -> np.ndarray:
    """Smooth indicator of {d < 0}: m(d) = ½ (1 − tanh(d / smooth)); the hard step when smooth = 0.

    m is infinitely differentiable in d for smooth > 0, goes from 0.9 to 0.1 over 2.2·smooth, and is
    odd about ½ (m(−d) = 1 − m(d)), so a soft disc of radius r keeps area π r² + O(smooth²).
    """
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    if smooth == 0:
        return ((d < 0) + 0.5 * (d == 0)).astype(np.float32)
    return (0.5 * (1.0 - np.tanh(d / smooth))).astype(np.float32)


# --------------------------------------------------------------------------------------- discs
def disc_image(
    size: int,
    cx: float,
    cy: float,
    radius: float,
    foreground: float,
    background: float,
    smooth: float = 0.5,
) -> np.ndarray:
    """The 5-parameter disc: x(i, j) = b + (f − b) · m(√((j − cx)² + (i − cy)²) − r).

    m is :func:`soft_step` with width ``smooth`` (≈ 1 pixel edge for the default 0.5), so the image is
    a smooth function of (cx, cy, r, f, b) (C^∞ but for a kink of size ~e^(−2r/smooth) where a pixel
    sits exactly on the centre). ``foreground`` f and ``background`` b must lie in [0, 1].
    """
    size = _check_size(size)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    for label, v in (("foreground", foreground), ("background", background)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{label} must be in [0, 1], got {v}")
    i, j = np.mgrid[0:size, 0:size].astype(np.float64)
    m = soft_step(np.hypot(j - cx, i - cy) - radius, smooth)
    return (background + (foreground - background) * m).astype(np.float32)


def random_disc_params(n: int, size: int, seed: Seed = None) -> np.ndarray:
    """(n, 5) disc parameters (cx, cy, radius, foreground, background), drawn independently.

    radius ~ U[size/8, size/3]; the centre is uniform over the positions that keep the whole disc at
    least one pixel inside the frame, cx, cy ~ U[r + 1, size − 2 − r]; foreground, background ~ U[0, 1].
    """
    n, size = _check_count(n), _check_size(size, minimum=9)  # so that r + 1 <= size - 2 - r
    rng = _rng(seed)
    r = rng.uniform(size / 8, size / 3, n)
    cx = rng.uniform(r + 1, size - 2 - r)
    cy = rng.uniform(r + 1, size - 2 - r)
    fg, bg = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    return np.stack([cx, cy, r, fg, bg], axis=1)


def random_discs(n: int, size: int, seed: Seed = None, smooth: float = 0.5) -> np.ndarray:
    """(n, size, size) images :func:`disc_image` of the parameters :func:`random_disc_params` draws."""
    params = random_disc_params(n, size, seed)
    return np.stack([disc_image(size, *p, smooth=smooth) for p in params])


# --------------------------------------------------------------------------------- dead leaves
def dead_leaves(
    size: int,
    n: int | None = None,
    seed: Seed = None,
    radius_range: tuple[float, float] | None = None,
    alpha: float = 3.0,
    smooth: float = 0.5,
) -> np.ndarray:
    """Dead-leaves image: occluding discs ("leaves") of uniform random gray, the first leaf on top.

    Radii have density p(r) ∝ r^(−alpha) on [r_min, r_max] (``radius_range`` in pixels, default
    [1, size/4]); alpha = 3 gives the scale-invariant model of natural images. Radii are drawn by
    inverting the CDF: r = (r_min^(1−α) + u (r_max^(1−α) − r_min^(1−α)))^(1/(1−α)), u ~ U[0, 1]
    (r = r_min (r_max/r_min)^u when α = 1). Centres are uniform over the frame grown by r_max, grays
    ~ U[0, 1]. Leaves are composited front to back with the :func:`soft_step` edge m:
    x ← x + T m g, T ← T (1 − m), starting from transmittance T = 1; what stays visible at the end
    (T > 0) shows a U[0, 1] gray ground. With ``n=None`` leaves fall until every pixel is covered
    (max T < 10⁻³); otherwise exactly ``n`` leaves fall.
    """
    size = _check_size(size)
    if n is not None:
        n = _check_count(n)
    r_min, r_max = (1.0, size / 4) if radius_range is None else map(float, radius_range)
    if not 0 < r_min <= r_max:
        raise ValueError(f"radius_range must satisfy 0 < r_min <= r_max, got {radius_range}")
    rng = _rng(seed)
    ground = rng.uniform(0, 1)
    img = np.zeros((size, size), dtype=np.float32)
    trans = np.ones((size, size), dtype=np.float32)
    pad = 8 * smooth + 1  # m < 1e-7 beyond r + pad: the bounding box loses nothing visible
    fallen, chunk = 0, 512
    while (n is None and trans.max() >= 1e-3) or (n is not None and fallen < n):
        k = chunk if n is None else min(chunk, n - fallen)
        u = rng.uniform(0, 1, k)
        if np.isclose(alpha, 1.0):
            radii = r_min * (r_max / r_min) ** u
        else:
            lo, hi = r_min ** (1 - alpha), r_max ** (1 - alpha)
            radii = (lo + u * (hi - lo)) ** (1 / (1 - alpha))
        cx = rng.uniform(-r_max, size - 1 + r_max, k)
        cy = rng.uniform(-r_max, size - 1 + r_max, k)
        grays = rng.uniform(0, 1, k)
        for r, x, y, g in zip(radii.tolist(), cx.tolist(), cy.tolist(), grays.tolist()):
            x0, x1 = max(int(x - r - pad), 0), min(int(x + r + pad) + 1, size)
            y0, y1 = max(int(y - r - pad), 0), min(int(y + r + pad) + 1, size)
            if x0 >= x1 or y0 >= y1:
                continue
            t = trans[y0:y1, x0:x1]
            if t.max() < 1e-7:  # already hidden behind earlier leaves
                continue
            dx, dy = np.arange(x0, x1) - x, np.arange(y0, y1)[:, None] - y
            m = soft_step(np.sqrt(dx * dx + dy * dy) - r, smooth)
            img[y0:y1, x0:x1] += t * m * g
            t *= 1.0 - m
        fallen += k
    return np.clip(img + trans * ground, 0.0, 1.0)


# -------------------------------------------------------------------------------- C^α images
def holder_series(size: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """A random periodic 1-D C^α function on ``size`` samples, normalised to [−1, 1].

    h(t) = Σ_{k=1}^{size/2} k^(−(α + ½)) (a_k cos 2πkt/size + b_k sin 2πkt/size), a_k, b_k ~ N(0, 1).
    Coefficient variance k^(−(2α+1)) is the spectrum of a (fractional-Brownian-like) process with
    Hölder exponent α (α = ½: Brownian bridge), so larger α gives a smoother curve.
    """
    k = np.arange(size // 2 + 1, dtype=np.float64)
    amp = np.zeros_like(k)
    amp[1:] = k[1:] ** -(alpha + 0.5)
    coef = amp * (rng.standard_normal(k.size) + 1j * rng.standard_normal(k.size))
    return _unit_range(np.fft.irfft(coef, n=size))


def holder_field(size: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """A random periodic 2-D C^α function on ``size`` × ``size`` pixels, normalised to [−1, 1].

    g = F⁻¹[ |ω|^(−(α + 1)) · F[w] ] with w Gaussian white noise and the DC term removed: the power
    spectrum |ω|^(−(2α + 2)) = |ω|^(−(2α + d)) for d = 2 is that of a fractional Brownian field with
    Hölder exponent α.
    """
    f = np.fft.fftfreq(size) * size
    radius = np.hypot(f[:, None], f[None, :])
    amp = np.zeros_like(radius)
    amp[radius > 0] = radius[radius > 0] ** -(alpha + 1.0)
    w = rng.standard_normal((size, size))
    return _unit_range(np.fft.ifft2(np.fft.fft2(w) * amp).real)


def _unit_range(v: np.ndarray) -> np.ndarray:
    lo, hi = v.min(), v.max()
    return 2.0 * (v - lo) / max(hi - lo, 1e-12) - 1.0


def calpha_image(
    size: int, alpha: float, seed: Seed = None, contrast: float = 0.3, texture: float = 0.15
) -> np.ndarray:
    """A C^α contour separating two C^α backgrounds (Kadkhodaie et al., ICLR 2024, C^α image class).

    Construction, with every random function C^α (see :func:`holder_series`, :func:`holder_field`):

    * contour: the graph y = h(x) = size/2 + (size/4) · s(x), s a random 1-D C^α series in [−1, 1],
      so the boundary stays in the middle half of the rows;
    * backgrounds: g_k(x, y) = c_k + texture · t_k(x, y), k = 1, 2, with t_k independent 2-D C^α
      fields in [−1, 1]; mean levels c_lo ~ U[texture, 1 − texture − contrast] and
      c_hi ~ U[c_lo + contrast, 1 − texture], assigned to the two sides in random order, so the
      regions differ in mean by at least ``contrast`` and all values stay in [0, 1];
    * image: x(i, j) = g_1(j, i) where i < h(j) (above the contour), g_2(j, i) elsewhere — point
      samples of a piecewise-C^α function whose discontinuity set is a C^α curve.

    Needs contrast + 2·texture ≤ 1.
    """
    return _calpha(size, alpha, _rng(seed), contrast, texture)[0]


def calpha_regions(
    size: int, alpha: float, seed: Seed = None, contrast: float = 0.3, texture: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of :func:`calpha_image` for the same arguments; mask is True above the contour."""
    return _calpha(size, alpha, _rng(seed), contrast, texture)


def _calpha(
    size: int, alpha: float, rng: np.random.Generator, contrast: float, texture: float
) -> tuple[np.ndarray, np.ndarray]:
    size = _check_size(size, minimum=4)
    if not alpha > 0:
        raise ValueError(f"alpha (the Hölder regularity) must be > 0, got {alpha}")
    if contrast < 0 or texture < 0 or contrast + 2 * texture > 1:
        raise ValueError(f"need contrast, texture >= 0 and contrast + 2*texture <= 1, got {contrast}, {texture}")
    h = size / 2 + size / 4 * holder_series(size, alpha, rng)
    c_lo = rng.uniform(texture, 1 - texture - contrast)
    levels = np.array([c_lo, rng.uniform(c_lo + contrast, 1 - texture)])
    rng.shuffle(levels)
    g1 = levels[0] + texture * holder_field(size, alpha, rng)
    g2 = levels[1] + texture * holder_field(size, alpha, rng)
    mask = np.arange(size)[:, None] < h[None, :]
    img = np.where(mask, g1, g2)
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def random_calpha(
    n: int, size: int, alpha: float, seed: Seed = None, contrast: float = 0.3, texture: float = 0.15
) -> np.ndarray:
    """(n, size, size) independent :func:`calpha_image` draws from one seeded stream."""
    n = _check_count(n)
    rng = _rng(seed)
    return np.stack([_calpha(size, alpha, rng, contrast, texture)[0] for _ in range(n)])
