"""Exact MMSE denoisers x̂(y) = E[x | y], y = x + σz, for priors whose posterior mean is known.

- :class:`GaussianPriorDenoiser`: x ~ N(μ, Σ) on a fixed image shape (dense covariance).
- :class:`StationaryGaussianDenoiser`: x ~ N(μ, Σ) with Σ circulant (a periodic stationary field
  with power spectrum P), diagonal in the Fourier basis, any image size.
- :class:`EmpiricalDenoiser`: x ~ (1/n) Σ δ(x − x_i), the "perfectly memorising" denoiser.

Each also gives the log-density of the noisy marginal, ``log_prob(y, sigma)`` = log p_σ(y), so
Tweedie/Miyasawa x̂(y) = y + σ² ∇_y log p_σ(y) can be checked by autograd. None is bias-free.

Blind use (``sigma=None``). The Gaussian ones plug in the maximum-likelihood noise level of y under
their own prior: y − μ ~ N(0, Σ + σ²I), so in the eigenbasis of Σ (the Fourier basis of a
stationary field) the coefficients c_k are independent N(0, λ_k + σ²) and s = σ² maximises

    ℓ(s) = −½ Σ_k [c_k²/(λ_k + s) + log(λ_k + s)],   ℓ'(s) = ½ Σ_k [c_k² − (λ_k + s)] / (λ_k + s)²

over s ≥ 0 (:func:`noise_variance_mle`), then x̂(y) = x̂(y, σ̂). σ̂ is consistent for any Σ (for an
8×8 prior with eigenvalues 10⁻¹ … 10⁻³ its median over images is within 3 % of σ down to σ² ≈ λ_min;
below that y says little about σ, and ŝ = 0 for about half the images at σ = 0.01), whereas a rule
that assumes a smooth image, Donoho's Haar-MAD σ̂, counts a correlated prior's own fine-scale variance
as noise (1.7σ at σ = 0.1, 4.8σ at σ = 0.03 on that prior). The empirical one marginalises σ over a
log-uniform grid (see its docstring).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Denoiser, SigmaLike
from .classical import BadImageError, BadSigmaError, check_batch, frequency_grid, noise_level

Spectrum = Callable[[Tensor, Tensor], Tensor] | Tensor | np.ndarray


def _image_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """A (C, H, W) triple from (H, W) or (C, H, W), validated."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise BadImageError(f"image shape must be (H, W) or (C, H, W) with positive sides, got {shape}")
    return shape


def _check_shape(y: Tensor, shape: tuple[int, ...], name: str) -> None:
    check_batch(y)
    if tuple(y.shape[1:]) != tuple(shape):
        raise BadImageError(f"{name} is defined on images of shape (C, H, W) = {tuple(shape)}, got {tuple(y.shape[1:])}")


def noise_variance_mle(c2: Tensor, lam: Tensor, per_decade: int = 4, decades: int = 12, iterations: int = 16) -> Tensor:
    """ŝ = argmax_{s ≥ 0} ℓ(s) for each row of c2 (B, d), the squared coefficients c_k², given λ (d,) ≥ 0.

    ℓ(s) = −½ Σ_k [c_k²/(λ_k + s) + log(λ_k + s)] is the log-likelihood of N(0, diag(λ) + sI). Every
    term of φ(s) = 2ℓ'(s) = Σ_k [c_k² − λ_k − s]/(λ_k + s)² is negative for s > max_k c_k², so the
    maximum lies in [0, max_k c_k²]. It is located on a grid shared by the batch (``per_decade``
    log-spaced points per decade, from the largest max_k c_k² down to ``decades`` decades below the
    smallest, and s = 0), then refined between the best point's neighbours by Fisher scoring,
    s ← s + φ(s)/Σ_k (λ_k + s)⁻² (a geometric bisection when a step leaves the bracket); a best point
    at the bottom of the grid, or c = 0, gives ŝ = 0. The search runs in float64 without gradients;
    the answer is one more Newton step ŝ − φ(ŝ)/φ'(ŝ), φ'(s) = Σ_k [1/(λ_k + s)² − 2c_k²/(λ_k + s)³],
    taken with gradients from the detached root, so dŝ/dc_k² = −(λ_k + ŝ)⁻²/φ'(ŝ), the implicit
    derivative. Returns (B,) in c2's dtype.
    """
    tiny = torch.finfo(torch.float64).tiny
    with torch.no_grad():
        c2d, lamd = c2.detach().double(), lam.detach().double().clamp_min(0)
        top = c2d.max(dim=1).values
        if not bool((top > 0).any()):
            return torch.zeros_like(c2[:, 0])
        high, low = math.log10(float(top.max())), math.log10(float(top[top > 0].min())) - decades
        count = math.ceil((high - low) * per_decade) + 1
        grid = torch.cat([torch.logspace(high, low, count, dtype=torch.float64, device=c2.device),
                          torch.zeros(1, dtype=torch.float64, device=c2.device)])  # decreasing
        v = (lamd + grid[:, None]).clamp_min(tiny)  # (G, d); λ_k + s = 0 counts as the smallest float
        best = (-0.5 * (c2d @ (1 / v).T + v.log().sum(1))).argmax(dim=1)
        bottom = grid.numel() - 2  # the smallest s > 0
        hi, lo = grid[(best - 1).clamp_min(0)], grid[(best + 1).clamp_max(bottom)]
        s = (lo * hi).sqrt()
        for _ in range(iterations):
            w = lamd + s[:, None]
            phi = ((c2d - w) / w**2).sum(1)
            rising = phi > 0
            lo, hi = torch.where(rising, s, lo), torch.where(rising, hi, s)
            scoring = s + phi / (1 / w**2).sum(1)  # Fisher scoring: the information is ½ Σ_k (λ_k + s)⁻²
            s = torch.where((scoring >= lo) & (scoring <= hi), scoring, (lo * hi).sqrt())
        inside = (best < bottom) & (top > 0)
        root = torch.where(inside, s, torch.ones_like(s)).to(c2.dtype)  # 1: a finite stand-in
    v = lam.to(c2.dtype).clamp_min(0) + root[:, None]
    newton = root - ((c2 - v) / v**2).sum(1) / (1 / v**2 - 2 * c2 / v**3).sum(1)
    return torch.where(inside, newton, torch.zeros_like(newton))


def _positive_sigma(y: Tensor, sigma: SigmaLike, what: str) -> Tensor:
    if sigma is None:
        raise BadSigmaError(f"{what} needs the noise level sigma")
    s = noise_level(y, sigma)
    if bool((s <= 0).any()):
        raise BadSigmaError(f"{what} needs sigma > 0")
    return s


class GaussianPriorDenoiser(Denoiser):
    """Posterior mean for the Gaussian prior x ~ N(μ, Σ) on (C, H, W) images, d = C·H·W:

        x̂(y) = μ + Σ(Σ + σ²I)⁻¹(y − μ) = μ + V diag(λ/(λ + σ²)) Vᵀ (y − μ),

    with Σ = V diag(λ) Vᵀ computed once (float64 ``eigh``; eigenvalues above −1e-10·max|λ| are
    clamped to 0, more negative ones are rejected). The noisy marginal is N(μ, Σ + σ²I), so
    log p_σ(y) = −½ Σ_k [c_k²/(λ_k + σ²) + log 2π(λ_k + σ²)], c = Vᵀ(y − μ). With ``sigma=None``
    σ² is the σ̂² that maximises it (:meth:`noise_variance`).

    ``mean`` has shape (H, W) or (C, H, W) (its shape is the image shape), ``cov`` (d, d). Built from
    ``shape`` alone (the card constructor) it is N(0, I) until a state dict is loaded; the buffers
    ``mean``, ``eigenvalues``, ``eigenvectors`` are what a checkpoint stores.
    """

    blind = True
    bias_free = False

    def __init__(self, mean: Tensor | np.ndarray | None = None, cov: Tensor | np.ndarray | None = None, shape: Sequence[int] | None = None):
        super().__init__()
        if mean is None and cov is None:
            if shape is None:
                raise ValueError("GaussianPriorDenoiser needs mean and cov, or the image shape for a placeholder")
            c, h, w = _image_shape(shape)
            mean, cov = torch.zeros(c, h, w), torch.eye(c * h * w)
        elif mean is None or cov is None:
            raise ValueError("GaussianPriorDenoiser needs both mean and cov")
        mean = torch.as_tensor(mean)
        if not mean.is_floating_point():
            mean = mean.to(torch.get_default_dtype())
        image_shape = _image_shape(mean.shape)
        if shape is not None and _image_shape(shape) != image_shape:
            raise ValueError(f"shape {tuple(shape)} does not match the mean's shape {tuple(mean.shape)}")
        d = math.prod(image_shape)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (d, d):
            raise ValueError(f"cov must be ({d}, {d}) for images of shape {image_shape}, got {tuple(cov.shape)}")
        if not torch.isfinite(cov).all() or not torch.allclose(cov, cov.T, rtol=1e-6, atol=1e-12 * float(cov.abs().max())):
            raise ValueError("cov must be a finite symmetric matrix")
        lam, vec = torch.linalg.eigh(cov)
        if float(lam.min()) < -1e-10 * float(lam.abs().max()):
            raise ValueError(f"cov is not positive semi-definite (smallest eigenvalue {float(lam.min()):.3g})")
        self.image_shape = image_shape
        self.channels = image_shape[0]
        self.config = dict(shape=list(image_shape))
        self.register_buffer("mean", mean.reshape(image_shape).clone())
        self.register_buffer("eigenvalues", lam.clamp_min(0).to(mean.dtype))
        self.register_buffer("eigenvectors", vec.to(mean.dtype))

    def _coefficients(self, y: Tensor) -> Tensor:
        """c = Vᵀ(y − μ), shape (B, d)."""
        _check_shape(y, self.image_shape, type(self).__name__)
        return (y - self.mean).flatten(1) @ self.eigenvectors

    def noise_variance(self, y: Tensor) -> Tensor:
        """The maximum-likelihood σ̂² of y under N(μ, Σ + σ²I), shape (B,) (:func:`noise_variance_mle`)."""
        return noise_variance_mle(self._coefficients(y) ** 2, self.eigenvalues)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        c = self._coefficients(y)
        s2 = (noise_variance_mle(c**2, self.eigenvalues) if sigma is None else noise_level(y, sigma).flatten() ** 2)[:, None]
        lam = self.eigenvalues
        gain = lam / (lam + s2).clamp_min(torch.finfo(y.dtype).tiny)  # 0 where λ = σ = 0
        return self.mean + ((c * gain) @ self.eigenvectors.T).reshape(y.shape)

    def log_prob(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """log N(y; μ, Σ + σ²I) per image, shape (B,); σ > 0 required."""
        c = self._coefficients(y)
        v = self.eigenvalues + _positive_sigma(y, sigma, "log_prob").reshape(-1, 1) ** 2
        return -0.5 * (c**2 / v + torch.log(2 * math.pi * v)).sum(dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws x = μ + V diag(√λ) z of the prior, shape (n, C, H, W)."""
        z = torch.randn(n, self.eigenvalues.numel(), generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + ((z * self.eigenvalues.sqrt()) @ self.eigenvectors.T).reshape(n, *self.image_shape)


def power_law(amplitude: float, exponent: float = 2.0) -> Callable[[Tensor, Tensor], Tensor]:
    """The spectrum P(f) = A / max(|f|, f₀)^exponent, f₀ the lowest nonzero frequency of the grid (1/max(H, W))."""
    if not (math.isfinite(amplitude) and amplitude > 0):
        raise ValueError(f"amplitude must be a finite number > 0, got {amplitude}")

    def spectrum(fy: Tensor, fx: Tensor) -> Tensor:
        f = torch.cat([fy.abs().flatten(), fx.abs().flatten()])
        f0 = f[f > 0].min() if bool((f > 0).any()) else 1.0
        return amplitude / torch.sqrt(fy**2 + fx**2).clamp_min(f0) ** exponent

    return spectrum


class StationaryGaussianDenoiser(Denoiser):
    """Posterior mean for a periodic stationary Gaussian field x ~ N(μ𝟙, Σ), Σ circulant:

        x̂(y) = μ + F⁻¹[ P/(P + σ²) · F(y − μ) ],

    F the unitary 2-D DFT and P(f) ≥ 0 the eigenvalues of Σ (the variance of each unitary Fourier
    coefficient; P = DFT of the autocovariance). log p_σ(y) = −½ Σ_f [|F(y − μ)(f)|²/(P + σ²)
    + log 2π(P + σ²)]. Channels are independent with the same spectrum. With ``sigma=None`` σ² is
    the σ̂² that maximises it (:meth:`noise_variance`).

    ``spectrum``: a function P(f_y, f_x) of frequency grids in cycles/pixel (any image size, e.g.
    :func:`power_law`), or an (H, W) array of P on ``fftfreq`` grids (that size only; it must be
    even, P(f) = P(−f), for Σ to be real). ``mean`` μ is a scalar. Not registered for model cards,
    since a function cannot be written to one.
    """

    blind = True
    bias_free = False

    def __init__(self, spectrum: Spectrum, mean: float = 0.0, channels: int = 1):
        super().__init__()
        if callable(spectrum):
            self._spectrum_fn = spectrum
            self.register_buffer("spectrum", None)
        else:
            p = torch.as_tensor(spectrum)
            p = p.to(torch.get_default_dtype()) if not p.is_floating_point() else p
            if p.ndim != 2:
                raise ValueError(f"a spectrum array must be (H, W), got shape {tuple(p.shape)}")
            flipped = torch.roll(p.flip(0, 1), shifts=(1, 1), dims=(0, 1))  # P(−f)
            if not torch.allclose(p, flipped, rtol=1e-6, atol=1e-12):
                raise ValueError("a spectrum array must be even, P(f) = P(−f), for a real covariance")
            self._spectrum_fn = None
            self.register_buffer("spectrum", p.clone())
        if not math.isfinite(mean):
            raise ValueError(f"mean must be finite, got {mean}")
        self.mean, self.channels = float(mean), channels
        self.config = dict(mean=float(mean), channels=channels)

    def power(self, h: int, w: int, like: Tensor) -> Tensor:
        """P on the (h, w) ``fftfreq`` grid, validated finite and ≥ 0."""
        if self._spectrum_fn is None:
            if tuple(self.spectrum.shape) != (h, w):
                raise BadImageError(f"the spectrum array is {tuple(self.spectrum.shape)}, images are {h}×{w}")
            p = self.spectrum.to(like.dtype)
        else:
            fy, fx = frequency_grid(h, w, like)
            p = torch.as_tensor(self._spectrum_fn(fy, fx), dtype=like.dtype, device=like.device).expand(h, w)
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            raise ValueError("the spectrum must be finite and ≥ 0 at every frequency")
        return p

    def _fourier(self, y: Tensor) -> Tensor:
        check_batch(y)
        return torch.fft.fft2(y - self.mean, norm="ortho")

    def noise_variance(self, y: Tensor) -> Tensor:
        """The maximum-likelihood σ̂² of y under N(μ𝟙, Σ + σ²I), shape (B,), one |F(y − μ)(f)|² per
        frequency and channel (:func:`noise_variance_mle`)."""
        return self._noise_variance(self._fourier(y), self.power(*y.shape[-2:], y))

    def _noise_variance(self, yf: Tensor, p: Tensor) -> Tensor:
        return noise_variance_mle(yf.abs().flatten(1) ** 2, p.expand(yf.shape[1:]).flatten())

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        yf = self._fourier(y)
        p = self.power(*y.shape[-2:], y)
        s2 = self._noise_variance(yf, p).view(-1, 1, 1, 1) if sigma is None else noise_level(y, sigma) ** 2
        gain = p / (p + s2).clamp_min(torch.finfo(y.dtype).tiny)  # 0 where P = σ = 0
        return self.mean + torch.fft.ifft2(yf * gain, norm="ortho").real

    def log_prob(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """log N(y; μ𝟙, Σ + σ²I) per image, shape (B,); σ > 0 required."""
        yf = self._fourier(y)
        v = self.power(*y.shape[-2:], y) + _positive_sigma(y, sigma, "log_prob") ** 2
        return -0.5 * (yf.abs() ** 2 / v + torch.log(2 * math.pi * v)).flatten(1).sum(dim=1)

    def nll(self, x: Tensor) -> Tensor:
        """−log N(x; μ𝟙, Σ) per image in nats, shape (B,), float64: the density of the clean image (σ = 0),

            −log p(x) = ½ Σ_f [|F(x − μ)(f)|²/P(f) + log 2πP(f)]      (summed over the channels too),

        the exact negative log-likelihood of the stationary Gaussian (used as the baseline of
        :mod:`explorer.gaussian_baseline`). Defined only where P > 0 at every frequency (otherwise Σ is
        singular and there is no density): raises ValueError there."""
        check_batch(x)
        xf = torch.fft.fft2(x.to(torch.float64) - self.mean, norm="ortho")
        p = self.power(*x.shape[-2:], xf.real)
        if bool((p <= 0).any()):
            raise ValueError("the spectrum is 0 at some frequency: Σ is singular and the Gaussian has no density")
        return 0.5 * (xf.abs() ** 2 / p + torch.log(2 * math.pi * p)).flatten(1).sum(dim=1)

    def sample(self, n: int, shape: Sequence[int], generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """n draws x = μ + F⁻¹[√P · F(z)], z white, of shape (n, C, H, W) for ``shape`` (H, W) or (C, H, W)."""
        c, h, w = _image_shape(shape)
        z = torch.randn(n, c, h, w, generator=generator, dtype=dtype)
        p = self.power(h, w, z)
        return self.mean + torch.fft.ifft2(torch.fft.fft2(z, norm="ortho") * p.sqrt(), norm="ortho").real


class EmpiricalDenoiser(Denoiser):
    """Exact MMSE denoiser for the empirical prior p(x) = (1/n) Σ_i δ(x − x_i) ("perfect memorisation"):

        x̂(y) = Σ_i w_i x_i,   w = softmax_i(−‖y − x_i‖² / (2σ²)),
        log p_σ(y) = logsumexp_i(−‖y − x_i‖²/(2σ²)) − log n − (D/2) log(2πσ²),  D = C·H·W.

    Squared distances are formed in float64 (‖y‖² − 2⟨y, x_i⟩ + ‖x_i‖² would cancel in float32).

    Blind mode (``sigma=None``): σ gets a log-uniform prior discretised on ``grid_size`` points
    σ_1..σ_K geometrically spaced over [``sigma_min``, ``sigma_max``]. The joint posterior is
    p(i, k | y) ∝ σ_k^(−D) exp(−‖y − x_i‖²/(2σ_k²)), and x̂(y) = Σ_{i,k} p(i, k | y) x_i is the exact
    posterior mean under that hierarchical prior; :meth:`sigma_posterior` gives p(k | y).

    Built from ``count`` and ``shape`` alone (the card constructor) it holds zero images until a
    state dict (buffer ``images``) is loaded.
    """

    blind = True
    bias_free = False

    def __init__(
        self,
        images: Tensor | np.ndarray | None = None,
        sigma_min: float = 1e-3,
        sigma_max: float = 1.0,
        grid_size: int = 64,
        count: int | None = None,
        shape: Sequence[int] | None = None,
    ):
        super().__init__()
        if images is None:
            if count is None or shape is None:
                raise ValueError("EmpiricalDenoiser needs images, or count and shape for a placeholder")
            images = torch.zeros(int(count), *_image_shape(shape))
        images = torch.as_tensor(images)
        images = images.to(torch.get_default_dtype()) if not images.is_floating_point() else images
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4 or images.shape[0] < 1:
            raise ValueError(f"images must be (n, H, W) or (n, C, H, W) with n ≥ 1, got shape {tuple(images.shape)}")
        if count is not None and int(count) != images.shape[0]:
            raise ValueError(f"count {count} does not match the {images.shape[0]} images given")
        if shape is not None and _image_shape(shape) != tuple(images.shape[1:]):
            raise ValueError(f"shape {tuple(shape)} does not match the images' shape {tuple(images.shape[1:])}")
        if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)) or int(grid_size) < 1:
            raise ValueError(f"need 0 < sigma_min < sigma_max < ∞ and grid_size ≥ 1, got {sigma_min}, {sigma_max}, {grid_size}")
        self.image_shape = tuple(images.shape[1:])
        self.channels = self.image_shape[0]
        self.sigma_min, self.sigma_max, self.grid_size = float(sigma_min), float(sigma_max), int(grid_size)
        self.config = dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, grid_size=self.grid_size,
                           count=images.shape[0], shape=list(self.image_shape))
        self.register_buffer("images", images.clone())

    def sigma_grid(self) -> Tensor:
        """The σ grid of the blind mode, float64, geometrically spaced (log-uniform prior)."""
        return torch.logspace(math.log10(self.sigma_min), math.log10(self.sigma_max), self.grid_size,
                              dtype=torch.float64, device=self.images.device)

    def squared_distances(self, y: Tensor) -> Tensor:
        """‖y − x_i‖², shape (B, n), float64."""
        _check_shape(y, self.image_shape, type(self).__name__)
        yd, xd = y.flatten(1).double(), self.images.flatten(1).double()
        return ((yd**2).sum(1, keepdim=True) - 2 * yd @ xd.T + (xd**2).sum(1)).clamp_min(0)

    def _joint_logits(self, d2: Tensor) -> Tensor:
        """log p(i, k | y) + const, shape (B, n, K), for the blind σ grid."""
        s = self.sigma_grid()
        dim = math.prod(self.image_shape)
        return -d2[..., None] / (2 * s**2) - dim * torch.log(s)

    def sigma_posterior(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(σ grid (K,), p(σ_k | y) of shape (B, K)) under the blind mode's log-uniform prior."""
        logits = self._joint_logits(self.squared_distances(y))
        return self.sigma_grid().to(y.dtype), torch.softmax(logits.flatten(1), dim=1).reshape(logits.shape).sum(1).to(y.dtype)

    def weights(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        """Posterior p(i | y) over the training images, shape (B, n) (σ marginalised when None)."""
        d2 = self.squared_distances(y)
        if sigma is None:
            logits = self._joint_logits(d2)
            return torch.softmax(logits.flatten(1), dim=1).reshape(logits.shape).sum(2).to(y.dtype)
        s2 = _positive_sigma(y, sigma, type(self).__name__).double().reshape(-1, 1) ** 2
        return torch.softmax(-d2 / (2 * s2), dim=1).to(y.dtype)

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        w = self.weights(y, sigma)
        return (w @ self.images.flatten(1).to(y.dtype)).reshape(y.shape)

    def log_prob(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """log p_σ(y) of the Gaussian mixture (1/n) Σ N(x_i, σ²I), per image, shape (B,)."""
        d2 = self.squared_distances(y)
        s2 = _positive_sigma(y, sigma, "log_prob").double().reshape(-1) ** 2
        n, dim = d2.shape[1], math.prod(self.image_shape)
        lp = torch.logsumexp(-d2 / (2 * s2[:, None]), dim=1) - math.log(n) - 0.5 * dim * torch.log(2 * math.pi * s2)
        return lp.to(y.dtype)
