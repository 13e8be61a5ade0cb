"""Memorization versus generalization in denoisers trained on disjoint sets (issue #16).

Kadkhodaie, Guth, Simoncelli & Mallat, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR 2024. The same denoiser architecture is trained on
two disjoint sets A and B of N images each; both models then run Algorithm 1 (coarse-to-fine
stochastic ascent, :mod:`explorer.sampling`) from the *same* initial noise with the *same* injected
noise. For small N each model returns images of its own training set (memorization); as N grows the
two return nearly the same new image (generalization: the prior no longer depends on which N images
it saw).

Same noise for every model (:func:`same_noise_samples`). Each chain runs, for t = 1, 2, …,

    h_t = h₀t / (1 + h₀(t − 1)),   f = x̂(y_{t−1}) − y_{t−1},   σ_t² = ‖f‖²/D  (D = C·H·W),
    γ_t² = ((1 − βh_t)² − (1 − h_t)²) σ_t²,   y_t = y_{t−1} + h_t f + γ_t z_t,

from y₀ = m·e + σ₀z₀ (e the all-ones image), and stops after the step whose σ_t ≤ σ_L. The noises
z₀, z₁, z₂, … are the successive full-batch draws ``torch.randn(shape, generator=g)`` of one CPU
generator g seeded with ``seed`` (:func:`noise_stream`): :class:`~explorer.sampling.Sampler` draws
z_t at every iteration t for the whole batch, whether or not a chain has stopped, and each model
gets its own Sampler, hence its own generator. So z_t is a function of (seed, shape, t) only: model
A's step t and model B's step t add the same z_t (chain b gets row b) however early either model, or
any chain, stops; a model that runs longer simply reads further along the same stream. (The draws are
float32 on the CPU and then cast to each model's device and dtype, so models in different dtypes see
the same z up to that rounding.)

Similarities (the paper's measure): the cosine of mean-subtracted images,

    cos(a, b) = ⟨a − ā, b − b̄⟩ / (‖a − ā‖ ‖b − b̄‖),   ā the mean pixel of a,

between the paired samples of A and B (:func:`pair_similarity`), and between a sample and its
nearest image of a training set (:func:`nearest_training`). A sample is *memorized* when that
nearest cosine is ≥ 0.95 (:func:`memorization_fraction`). The other evidence is the denoising gap
(:func:`psnr_gap`): a memorizing model denoises its training images far better than held-out ones.

The published pairs and their verified subsets are :mod:`explorer.generalization_pairs`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .denoisers.base import Denoiser
from .handle import ModelHandle
from .sampling import STATUSES, SampleResult, Sampler, SamplerState

ArrayLike = np.ndarray | Tensor
MEMORIZED = 0.95


# --------------------------------------------------------------------------- handles
def as_handle(denoiser: Any, device: torch.device | str | None = "cpu", name: str | None = None) -> Any:
    """A :class:`ModelHandle` for a :class:`Denoiser` module (placed on ``device``, frozen, eval);
    anything with ``denoise``/``blind``/``channels``/``device``/``dtype`` (a handle) is returned as is."""
    if isinstance(denoiser, Denoiser):
        return ModelHandle(denoiser, device=device, name=name)
    if callable(getattr(denoiser, "denoise", None)):
        return denoiser
    raise TypeError(f"expected a Denoiser or a ModelHandle, got {type(denoiser).__name__}")


def handle_name(handle: Any, index: int) -> str:
    return str(getattr(handle, "name", None) or f"model {index}")


# --------------------------------------------------------------------------- the shared noise
def noise_stream(seed: int, shape: tuple[int, int, int, int]) -> Iterator[Tensor]:
    """z₀, z₁, z₂, …: the noises every same-seed chain uses (float32, CPU, full batch ``shape``).

    z₀ makes y₀ = m·e + σ₀z₀ and z_t (t ≥ 1) is added at iteration t: exactly the draws of
    :class:`~explorer.sampling.Sampler` (one ``torch.randn(shape, generator=g)`` per draw from
    ``g = torch.Generator().manual_seed(seed)``).
    """
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(shape, generator=g, dtype=torch.float32)


@dataclass
class SameNoiseSamples:
    """Algorithm 1 run by several models from the same y₀ with the same injected noises z_t.

    - ``names`` (M,): the models, in the order given.
    - ``images`` (M, B, C, H, W): x̂(y_T) of each model's chains (CPU, float32); ``y`` the last y_T.
    - ``initial`` (B, C, H, W): the shared y₀ (CPU, float32).
    - ``steps`` (M, B): iterations applied to each chain; ``status`` M lists of B statuses
      ('converged' | 'max_steps' | 'diverged'); ``converged`` (M, B) bool.
    - ``seconds`` (M,): wall time of each model's run. ``results``: the full
      :class:`~explorer.sampling.SampleResult` of each model (σ_t, γ_t, h_t histories).
    """

    names: list[str]
    images: Tensor
    y: Tensor
    initial: Tensor
    steps: Tensor
    status: list[list[str]]
    converged: Tensor
    seconds: list[float]
    seed: int
    settings: dict[str, Any]
    results: list[SampleResult] = field(repr=False)

    def index(self, model: int | str) -> int:
        """The position of a model given by position or name."""
        if isinstance(model, str):
            return self.names.index(model)
        return int(model)

    def samples(self, model: int | str) -> Tensor:
        """(B, C, H, W) final samples of one model."""
        return self.images[self.index(model)]


def same_noise_samples(
    denoisers: Sequence[Any],
    shape: tuple[int, int, int, int] = (1, 1, 32, 32),
    seed: int = 0,
    beta: float = 0.5,
    h0: float = 0.01,
    sigma_L: float = 0.01,
    sigma0: float = 1.0,
    mean: float = 0.5,
    max_steps: int = 5000,
    callback: Callable[[int, SamplerState], Any] | None = None,
    device: torch.device | str | None = "cpu",
) -> SameNoiseSamples:
    """Algorithm 1 (Kadkhodaie & Simoncelli 2021) for every denoiser, from one y₀ and one noise stream.

    ``denoisers`` are :class:`ModelHandle` objects or :class:`Denoiser` modules (wrapped on
    ``device``). Each runs its own :class:`~explorer.sampling.Sampler` with the same ``seed``, so all
    start from y₀ = mean·e + σ₀z₀ and add the same z_t at iteration t (module docstring: z_t depends on
    (seed, shape, t) only, never on when a chain stops). Chains stop individually after the step whose
    σ_t ≤ ``sigma_L`` (or after ``max_steps``, or on divergence). ``callback(model_index, state)``
    is called after every iteration of every model (models run one after another). A B-chain batch
    uses the stream of ``shape``: seed s with B = 1 and seed s with B = 4 give different chains.
    """
    handles = [as_handle(d, device) for d in denoisers]
    if not handles:
        raise ValueError("same_noise_samples needs at least one denoiser")
    shape = tuple(int(s) for s in shape)
    settings = dict(shape=shape, beta=beta, h0=h0, sigma_L=sigma_L, sigma0=sigma0, mean=mean, max_steps=max_steps)
    results, initial, seconds = [], None, []
    for i, handle in enumerate(handles):
        start = time.perf_counter()
        sampler = Sampler(handle, shape, beta=beta, h0=h0, sigma0=sigma0, sigma_L=sigma_L, seed=seed,
                          max_steps=max_steps, mean=mean, snapshot_every=None)
        y0 = sampler.state.y.detach().to("cpu", torch.float32)
        if initial is None:
            initial = y0
        elif not torch.allclose(y0, initial, rtol=0, atol=1e-5 * max(1.0, sigma0)):
            raise RuntimeError(f"{handle_name(handle, i)} did not start from the shared y₀: the Sampler's noise "
                               "is no longer a function of the seed alone")
        results.append(sampler.run(None if callback is None else (lambda s, i=i: callback(i, s))))
        seconds.append(time.perf_counter() - start)
    status = [r.status for r in results]
    return SameNoiseSamples(
        names=[handle_name(h, i) for i, h in enumerate(handles)],
        images=torch.stack([r.image.detach().to("cpu", torch.float32) for r in results]),
        y=torch.stack([r.y.detach().to("cpu", torch.float32) for r in results]),
        initial=initial,
        steps=torch.stack([r.steps.cpu() for r in results]),
        status=status,
        converged=torch.tensor([[s == STATUSES[1] for s in row] for row in status]),
        seconds=seconds,
        seed=seed,
        settings=settings,
        results=results,
    )


# --------------------------------------------------------------------------- similarities
def _flat(images: ArrayLike) -> Tensor:
    """A (B, ...) batch → a (B, D) float64 tensor on the CPU (D the pixels of one image)."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images.detach())
    t = t.to("cpu", torch.float64)
    if t.ndim < 2:
        raise ValueError(f"expected a batch of images (B, ...), got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1)


def _unit_centred(x: Tensor) -> Tensor:
    """Rows minus their mean, divided by their norm (a constant row stays 0, so its cosines are 0)."""
    c = x - x.mean(dim=1, keepdim=True)
    norm = c.norm(dim=1, keepdim=True)
    return c / torch.where(norm > 0, norm, torch.ones_like(norm))


def cosine_similarity(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """cos(a_i, b_i) of paired images, mean-subtracted: ⟨a−ā, b−b̄⟩/(‖a−ā‖‖b−b̄‖), shape (B,).

    ``a`` and ``b`` are (B, ...) batches of the same shape; a constant image has cosine 0 with anything.
    """
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        raise ValueError(f"paired batches must have the same shape, got {tuple(fa.shape)} and {tuple(fb.shape)}")
    return (_unit_centred(fa) * _unit_centred(fb)).sum(dim=1).numpy()


@dataclass
class Nearest:
    """For each image: ``indices`` (B,) of its nearest training image and ``cosines`` (B,) with it."""

    indices: np.ndarray
    cosines: np.ndarray


def nearest_training(images: ArrayLike, training_set: ArrayLike) -> Nearest:
    """Each image's most similar training image, by the cosine of mean-subtracted images.

    With u_i = (x_i − x̄_i)/‖x_i − x̄_i‖ for the (B, ...) ``images`` and v_j likewise for the (n, ...)
    ``training_set`` (same image shape), the cosines are the (B, n) matrix U Vᵀ (one product, float64);
    the answer is its row-wise argmax (the first on ties) and max. Invariant to adding a constant to,
    or scaling by a positive factor, either image.
    """
    u, v = _flat(images), _flat(training_set)
    if u.shape[1] != v.shape[1]:
        raise ValueError(f"images have {u.shape[1]} pixels but the training images {v.shape[1]}")
    if v.shape[0] == 0:
        raise ValueError("the training set is empty")
    cos = _unit_centred(u) @ _unit_centred(v).T
    best = cos.max(dim=1)
    return Nearest(indices=best.indices.numpy().astype(np.int64), cosines=best.values.numpy())


def pair_similarity(samples: SameNoiseSamples, a: int | str = 0, b: int | str = 1) -> np.ndarray:
    """cos(x_A, x_B) (mean-subtracted) of the paired samples of models ``a`` and ``b``, shape (B,).

    Near 1 for every seed means the two models return the same image from the same noise:
    generalization in the sense of the paper (or, for two copies of one set, memorization of it).
    """
    return cosine_similarity(samples.samples(a), samples.samples(b))


def memorization_fraction(cosines: ArrayLike, threshold: float = MEMORIZED) -> float:
    """The fraction of samples whose nearest-training cosine is ≥ ``threshold`` (the paper's 0.95)."""
    c = np.asarray(cosines.detach().cpu() if isinstance(cosines, Tensor) else cosines, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("no cosines given")
    return float(np.mean(c >= threshold))


# --------------------------------------------------------------------------- denoising gap
@dataclass
class PsnrGap:
    """Mean denoising PSNR (dB, images in [0, 1], peak 1) on training and held-out images at one σ.

    ``gap`` = ``training`` − ``held_out``: large for a model that memorized its training set.
    """

    sigma: float
    training: float
    held_out: float
    gap: float
    training_count: int
    held_out_count: int


def mean_denoising_psnr(denoiser: Any, images: ArrayLike, sigma: float, seed: int = 0, batch: int = 256) -> float:
    """Mean over images of PSNR = 10 log10(1/MSE) of clip(x̂(x_i + σz_i), 0, 1) against x_i (dB).

    The protocol of :mod:`explorer.evaluate`: z_i drawn by :func:`explorer.evaluate.noisy_image`
    from (seed, i, σ), so image i of any set gets the same noise as it would in the benchmark; blind
    models get no σ, non-blind ones the true σ. ``images`` (n, H, W) or (n, C, H, W) in [0, 1].
    """
    from .evaluate import noisy_image

    handle = as_handle(denoiser)
    x = np.asarray(images.detach().cpu() if isinstance(images, Tensor) else images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"expected (n, H, W) or (n, C, H, W) images, got shape {x.shape}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be > 0, got {sigma}")
    psnrs = []
    for lo in range(0, len(x), batch):
        clean = x[lo:lo + batch]
        noisy = np.stack([noisy_image(im, sigma, seed, lo + k) for k, im in enumerate(clean)])
        out = handle.denoise(torch.from_numpy(noisy), None if handle.blind else sigma)
        out = out.detach().to("cpu", torch.float64).clamp(0, 1).numpy()
        mse = ((out - clean.astype(np.float64)) ** 2).reshape(len(clean), -1).mean(axis=1)
        psnrs.append(10 * np.log10(1.0 / np.maximum(mse, 1e-20)))
    return float(np.concatenate(psnrs).mean())


def psnr_gap(denoiser: Any, training_images: ArrayLike, held_out_images: ArrayLike, sigma: float = 0.2,
             seed: int = 0) -> PsnrGap:
    """Denoising PSNR (dB) on the model's training images versus held-out ones at noise level σ ([0, 1] units).

    The paper's second piece of evidence: a memorizing model denoises the images it saw much better
    than new ones (a large gap); a generalizing one does about equally well on both.
    """
    train = mean_denoising_psnr(denoiser, training_images, sigma, seed)
    held = mean_denoising_psnr(denoiser, held_out_images, sigma, seed)
    return PsnrGap(sigma=float(sigma), training=train, held_out=held, gap=train - held,
                   training_count=len(training_images), held_out_count=len(held_out_images))
