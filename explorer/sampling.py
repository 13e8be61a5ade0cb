"""Coarse-to-fine stochastic ascent on the prior implicit in a denoiser (Kadkhodaie & Simoncelli 2021).

Algorithm 1 (synthesis) and Algorithm 2 (linear inverse problems) as one batched sampler. With the
denoiser's ascent direction f(y) = x̂(y) − y = −r(y) (σ²∇log p_σ(y) by Miyasawa/Tweedie), iteration t
(t = 1, 2, ...) of every chain is

    h_t = h₀t / (1 + h₀(t − 1))                       (or a fixed h)
    d_t = (I − MMᵀ) f(y_{t−1}) + M(x_c − Mᵀy_{t−1})    (d_t = f(y_{t−1}) for synthesis, M = 0)
    σ_t = ‖d_t‖ / √N                                   (N = C·H·W; the paper's noise estimate)
    γ_t = σ_t √((1 − βh_t)² − (1 − h_t)²)
    y_t = y_{t−1} + h_t d_t + γ_t z_t,   z_t ~ N(0, I)

starting from y₀ ~ N(mean·(e − MMᵀe) + Mx_c, σ₀²I) (e the all-ones image). A chain stops after the
iteration whose σ_t ≤ σ_L (status 'converged'); its answer is x̂(y_T). β ∈ (0, 1] sets the fraction
of noise removed per step: were the residual all of the noise, the noise level of y_t would be
σ₀Π_{s≤t}(1 − βh_s) (:func:`predicted_sigmas`).

The noise level of y_t, s_t, is what a non-blind denoiser is told for x̂(y_t) (a blind one estimates
it itself). With the level of an image y defined by s² = tr(Cov y − Cov x)/N, x ~ p (s = σ for
y = x + σz), it is tracked in closed form from s₀ = σ₀ (:func:`tracked_noise_level`):

    s_t² = γ_t² + max((1 − 2h_t) s_{t−1}² + h_t² σ_t², 0).

Derivation (one step from y = x + sz, x ~ p, x̂ the MMSE denoiser at s, f = x̂ − y). x̂ = E[x | y]
gives E f = 0 and Cov(x̂, y) = Cov(x, y) = Cov x, so tr Cov(f, y) = tr(Cov x − Cov y) = −Ns², and
y' = y + hf + γz' has tr Cov y' = tr Cov y + 2h tr Cov(f, y) + h² E‖f‖² + Nγ²:

    s'² = (1 − 2h) s² + h² E‖f‖²/N + γ²,   with E‖f‖²/N estimated by σ_t².

If the residual is all of the noise (σ_t = s, e.g. a point-mass prior) this is (1 − h)²s² + γ² =
(1 − βh)²s², the design. An MMSE residual misses the posterior-variance share, E‖f‖²/N =
s² − E‖x̂ − x‖²/N, and that share decays by only (1 − 2h) per step, so (1 − βh_t)σ_t — what
non-blind denoisers used to be told — is too small: 0.985 / 0.71 / 0.16 of the level after one step
(h = 0.01) from s = 1 / 0.1 / 0.01 on an 8×8 Gaussian prior with eigenvalues 10⁻¹ … 10⁻³, where the
rule above gives 1.000 (tests/test_sampling_gaussian.py). The rule is exact for one step from
y = x + sz; after that the excess covariance of y is no longer isotropic (per step, directions the
denoiser keeps lose h²s² more than those it removes), so over a run it is accurate to first order in
h: on that prior it stays within 3 % of the σ that best fits the chains' covariance down to s = 0.1.
For h > ½ the first term can turn negative (y is then under-dispersed along directions the denoiser
keeps, where σ hardly matters); it is clamped at 0, so a denoiser is always told at least the fresh
noise γ_t. In Algorithm 2 the measured part of d_t is exactly minus the noise there, a case the same
recursion covers (σ_t = s in that subspace).

A ``guidance`` callable g(y_{t−1}, d_t, chains) adds a step to the update, y_t = y_{t−1} + h_t (d_t + g) + γ_t z_t,
with σ_t and γ_t still measured on d_t alone; it is given the running chains only (``chains``: their indices).
:mod:`explorer.guidance` pulls towards a target's representation this way.

Each step costs one denoiser call: x̂(y_t) is computed once and reused by the next step and as the
final image. All randomness comes from one CPU ``torch.Generator`` seeded with ``seed`` (then moved
to the device), so two denoisers given the same seed see identical initial and injected noise.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

STATUSES = ("running", "converged", "max_steps", "diverged")
RUNNING, CONVERGED, MAX_STEPS, DIVERGED = range(4)

StopSignal = threading.Event | Callable[[], bool] | None


# --------------------------------------------------------------------------- the update rules
def step_size(t: int, h0: float) -> float:
    """The step schedule h_t = h₀t / (1 + h₀(t − 1)): h₁ = h₀, rising towards 1."""
    return h0 * t / (1.0 + h0 * (t - 1))


def injected_noise_scale(sigma: Tensor, h: float, beta: float) -> Tensor:
    """γ_t = σ_t √((1 − βh_t)² − (1 − h_t)²): the paper's injected noise, from its estimate σ_t.

    Were σ_t all of the noise, the step would leave (1 − h)σ_t of it and adding γz would make the total
    (1 − βh)σ_t. β = 1 gives γ = 0.
    """
    return sigma * math.sqrt(max((1.0 - beta * h) ** 2 - (1.0 - h) ** 2, 0.0))


def predicted_sigmas(sigma0: float, h0: float, beta: float, steps: int, fixed_h: float | None = None) -> Tensor:
    """The designed noise levels σ̄_t = σ₀Π_{s≤t}(1 − βh_s) for t = 0, …, steps (a float64 tensor).

    Entry t is the noise level of y_t when the residual is all of the noise (then the sampler's σ_{t+1},
    row t of ``SampleResult.sigmas``, measured on y_t, estimates it), so ``predicted_sigmas(...)[:T]``
    lines up with ``sigmas``. For a denoiser whose residual misses part of the noise see
    :func:`tracked_noise_level`.
    """
    hs = torch.tensor([fixed_h if fixed_h is not None else step_size(t, h0) for t in range(1, steps + 1)],
                      dtype=torch.float64)
    return sigma0 * torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - beta * hs, 0)])


def predicted_steps(sigma0: float, h0: float, beta: float, sigma_L: float, cap: int = 100_000,
                    fixed_h: float | None = None) -> int:
    """How many iterations the designed schedule takes from σ₀ down to σ_L: the smallest T with σ̄_T ≤ σ_L.

    The schedule removes a fraction βh_t of the noise per step,

        σ̄₀ = σ₀,   σ̄_t = (1 − βh_t) σ̄_{t−1}   (σ_{t+1} ≈ (1 − βh_t)σ_t for the measured σ),

    with h_t = h₀t / (1 + h₀(t − 1)) (:func:`step_size`, or ``fixed_h``), so σ̄_T = σ₀Π_{s≤T}(1 − βh_s) as in
    :func:`predicted_sigmas`. 0 if σ₀ ≤ σ_L already; ``cap`` if the schedule does not get there within
    ``cap`` steps. A pure function: what a UI shows as "≈ T steps predicted" and sizes its plots with.
    """
    sig, t = float(sigma0), 0
    while sig > sigma_L and t < cap:
        t += 1
        sig *= 1.0 - beta * (fixed_h if fixed_h is not None else step_size(t, h0))
    return t


def tracked_noise_level(level: Tensor, sigma: Tensor, gamma: Tensor, h: float) -> Tensor:
    """s_t = √(γ_t² + max((1 − 2h_t)s_{t−1}² + h_t²σ_t², 0)), the noise level of y_t from that of y_{t−1}.

    ``level`` is s_{t−1}, ``sigma`` σ_t = ‖d_t‖/√N and ``gamma`` γ_t, per chain; derived in the module
    docstring (exact in expectation for one step from y_{t−1} = x + s_{t−1}z and an MMSE denoiser).
    """
    return (gamma**2 + ((1.0 - 2.0 * h) * level**2 + h * h * sigma**2).clamp_min(0)).sqrt()


def ascent_direction(f: Tensor, y: Tensor, measurement: Any = None, x_c: Tensor | None = None) -> Tensor:
    """d = (I − MMᵀ)f + M(x_c − Mᵀy): the prior's step off the measured subspace, the data's on it.

    Without a measurement (synthesis) d = f. M is any operator with ``forward`` (Mᵀ), ``adjoint`` (M)
    and ``project`` (MMᵀ).
    """
    if measurement is None:
        return f
    return f - measurement.project(f) + measurement.adjoint(x_c - measurement.forward(y))


def initial_mean(shape: tuple[int, ...], mean: float, measurement: Any = None, x_c: Tensor | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """The centre of y₀: mean·(e − MMᵀe) + Mx_c (mean·e for synthesis), e the all-ones image."""
    e = torch.full(shape, float(mean), device=device, dtype=dtype)
    if measurement is None:
        return e
    return e - measurement.project(e) + measurement.adjoint(x_c)


# --------------------------------------------------------------------------- records
@dataclass
class SamplerState:
    """The sampler after iteration t: y = y_t, x_hat = x̂(y_t), and the step that produced them.

    ``d``, ``sigma`` (B,), ``h`` and ``gamma`` (B,) are those of iteration t (at t = 0: d = 0,
    σ = σ₀, h = γ = 0); chains that have stopped keep the values of their last iteration.
    ``level`` (B,) is the tracked noise level s_t of y_t, the σ a non-blind denoiser was given for
    x_hat (σ₀ at t = 0; see :func:`tracked_noise_level`).
    ``done`` (B,) bool; ``status`` one of 'running' | 'converged' | 'max_steps' | 'diverged' per chain.
    """

    t: int
    y: Tensor
    x_hat: Tensor
    d: Tensor
    sigma: Tensor
    level: Tensor
    h: float
    gamma: Tensor
    done: Tensor
    status: list[str]


@dataclass
class SampleResult:
    """A finished (or cancelled) run of B chains over T iterations.

    - ``image`` (B, C, H, W): x̂(y_T) of each chain; ``y`` (B, C, H, W): its last y_T.
    - ``sigmas``, ``gammas`` (T, B): σ_t, γ_t of iteration t in row t − 1; NaN once a chain has stopped
      (the iteration at which a chain diverges is recorded, but its update was not applied).
    - ``hs`` (T,): h_t. ``steps`` (B,): updates applied to each chain (its T).
    - ``snapshots``: (t, y_t, x̂(y_t)) on the CPU for t = 0, k, 2k, … and the last t.
    - ``status``: per chain, as in :class:`SamplerState` ('running' means the run was cancelled).
    """

    image: Tensor
    y: Tensor
    sigmas: Tensor
    hs: Tensor
    gammas: Tensor
    steps: Tensor
    snapshots: list[tuple[int, Tensor, Tensor]]
    status: list[str]

    @property
    def history(self) -> dict[str, Tensor]:
        """The per-iteration records as CPU tensors: 't' (T,), 'h' (T,), 'sigma' and 'gamma' (T, B)."""
        t = torch.arange(1, self.hs.numel() + 1)
        return {"t": t, "h": self.hs.cpu(), "sigma": self.sigmas.cpu(), "gamma": self.gammas.cpu()}


# --------------------------------------------------------------------------- checks
def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_shape(shape: tuple[int, ...], channels: int) -> tuple[int, int, int, int]:
    dims = tuple(shape)
    if len(dims) != 4 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in dims):
        raise ValueError(f"shape must be (B, C, H, W) positive integers, got {shape!r}")
    if dims[1] != channels:
        raise ValueError(f"the denoiser takes {channels}-channel images but shape has C = {dims[1]}")
    return dims


def _check_measurement(measurement: Any, x_c: Tensor | None, shape: tuple[int, int, int, int],
                       device: torch.device, dtype: torch.dtype) -> Tensor | None:
    """x_c as a (B, m) tensor on the device (an (m,) or (1, m) x_c is shared by all chains)."""
    if measurement is None:
        if x_c is not None:
            raise ValueError("x_c was given without a measurement operator")
        return None
    if x_c is None:
        raise ValueError("a measurement operator needs the measurements x_c")
    if tuple(measurement.shape) != shape[1:]:
        raise ValueError(f"the measurement is built for images {tuple(measurement.shape)}, "
                         f"but the sampler makes {shape[1:]}")
    x_c = torch.as_tensor(x_c).to(device, dtype)
    m = measurement.forward(torch.zeros(1, *shape[1:], device=device, dtype=dtype)).shape[1]
    if x_c.ndim == 1:
        x_c = x_c[None]
    if x_c.ndim != 2 or x_c.shape[1] != m or x_c.shape[0] not in (1, shape[0]):
        raise ValueError(f"x_c must have shape ({m},), (1, {m}) or ({shape[0]}, {m}), got {tuple(x_c.shape)}")
    return x_c.expand(shape[0], m)


def _should_stop(stop: StopSignal) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


# --------------------------------------------------------------------------- the sampler
class Sampler:
    """B chains of Algorithm 1 (``measurement=None``) or Algorithm 2, advanced one iteration per ``step``.

    ``handle`` is a :class:`~explorer.handle.ModelHandle` (anything with ``denoise(y, sigma)``,
    ``blind``, ``channels``, ``device``, ``dtype``). A non-blind denoiser is given the tracked noise
    level s_t of the y_t it is applied to (σ₀ for y₀; module docstring). ``init`` optionally replaces
    the random y₀, which is then taken to have level σ₀ (the seeded noise sequence is unchanged). A
    chain whose σ_t is non-finite or exceeds ``divergence_factor``·max(σ₀, σ₁), or whose update is
    non-finite, stops as 'diverged' and keeps its last good state; chains still running after
    ``max_steps`` iterations stop as 'max_steps'. Stopped chains are frozen and no longer sent through
    the denoiser. ``guidance`` (module docstring) adds its step to every update of the running chains.
    """

    def __init__(
        self,
        handle: Any,
        shape: tuple[int, int, int, int] = (1, 1, 64, 64),
        measurement: Any = None,
        x_c: Tensor | None = None,
        beta: float = 0.5,
        h0: float = 0.01,
        sigma0: float = 1.0,
        sigma_L: float = 0.01,
        seed: int = 0,
        max_steps: int = 5000,
        fixed_h: float | None = None,
        mean: float = 0.5,
        snapshot_every: int | None = 10,
        divergence_factor: float = 10.0,
        init: Tensor | None = None,
        guidance: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ):
        self.handle = handle
        self.guidance = guidance
        self.shape = _check_shape(shape, handle.channels)
        self.beta = _check_fraction("beta", beta)
        self.h0 = _check_fraction("h0", h0)
        self.fixed_h = None if fixed_h is None else _check_fraction("fixed_h", fixed_h)
        self.sigma0 = _check_positive("sigma0", sigma0)
        self.sigma_L = _check_positive("sigma_L", sigma_L)
        if self.sigma_L >= self.sigma0:
            raise ValueError(f"sigma_L ({sigma_L}) must be smaller than sigma0 ({sigma0})")
        self.max_steps = _check_count("max_steps", max_steps)
        self.snapshot_every = None if snapshot_every is None else _check_count("snapshot_every", snapshot_every)
        if isinstance(divergence_factor, bool) or not isinstance(divergence_factor, (int, float)) \
                or not divergence_factor > 1:
            raise ValueError(f"divergence_factor must be a number > 1, got {divergence_factor!r}")
        self.divergence_factor = float(divergence_factor)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self.device, self.dtype = torch.device(handle.device), handle.dtype
        self.measurement = measurement
        self._x_c = _check_measurement(measurement, x_c, self.shape, self.device, self.dtype)
        self._n = math.prod(self.shape[1:])
        self._generator = torch.Generator().manual_seed(seed)

        centre = initial_mean(self.shape, mean, measurement, self._x_c, self.device, self.dtype)
        z0 = self._noise()
        if init is None:
            y0 = centre + self.sigma0 * z0
        else:
            if tuple(init.shape) != self.shape:
                raise ValueError(f"init has shape {tuple(init.shape)}, expected {self.shape}")
            y0 = init.to(self.device, self.dtype)
        b = self.shape[0]
        self._t = 0
        self._y = y0
        self._x_hat = self._denoise(y0, torch.full((b,), self.sigma0, device=self.device, dtype=self.dtype))
        self._d = torch.zeros_like(y0)
        self._sigma = torch.full((b,), self.sigma0, device=self.device, dtype=self.dtype)
        self._gamma = torch.zeros(b, device=self.device, dtype=self.dtype)
        self._h = 0.0
        self._sigma_ref = self._sigma
        self._level = self._sigma
        self._codes = torch.zeros(b, dtype=torch.int8, device=self.device)
        self._steps = torch.zeros(b, dtype=torch.long, device=self.device)
        self._sigmas: list[Tensor] = []
        self._gammas: list[Tensor] = []
        self._hs: list[float] = []
        self._snapshots: list[tuple[int, Tensor, Tensor]] = []
        if not torch.isfinite(self._x_hat).all():
            raise ValueError("the denoiser returned non-finite values for the initial image y₀")
        if self.snapshot_every is not None:
            self._snapshot()

    # ----------------------------------------------------------------- public
    @property
    def t(self) -> int:
        """Iterations performed so far."""
        return self._t

    @property
    def done(self) -> bool:
        """True when every chain has stopped."""
        return bool((self._codes != RUNNING).all())

    @property
    def status(self) -> list[str]:
        """Per chain: 'running', 'converged', 'max_steps' or 'diverged'."""
        return [STATUSES[c] for c in self._codes.tolist()]

    @property
    def state(self) -> SamplerState:
        """The current :class:`SamplerState` (tensors are not copied; the sampler never writes into them)."""
        return SamplerState(
            t=self._t, y=self._y, x_hat=self._x_hat, d=self._d, sigma=self._sigma, level=self._level, h=self._h,
            gamma=self._gamma, done=self._codes != RUNNING, status=self.status,
        )

    def step(self) -> SamplerState:
        """One iteration for the running chains (a no-op once ``done``); returns the new state."""
        if self.done:
            return self.state
        t = self._t + 1
        h = self.fixed_h if self.fixed_h is not None else step_size(t, self.h0)
        running = self._codes == RUNNING

        d = ascent_direction(self._x_hat - self._y, self._y, self.measurement, self._x_c)
        sigma = d.flatten(1).norm(dim=1) / math.sqrt(self._n)
        gamma = injected_noise_scale(sigma, h, self.beta)
        step = d if self.guidance is None else d + self._guide(d, running)
        y_new = self._y + h * step + gamma.view(-1, 1, 1, 1) * self._noise()
        if t == 1:
            self._sigma_ref = torch.clamp(sigma, min=self.sigma0)

        healthy = torch.isfinite(sigma) & (sigma <= self.divergence_factor * self._sigma_ref)
        healthy &= torch.isfinite(y_new).flatten(1).all(dim=1)
        move = running & healthy
        level = tracked_noise_level(self._level, sigma, gamma, h)
        x_new = self._denoise_where(y_new, move, level)
        move &= torch.isfinite(x_new).flatten(1).all(dim=1)

        self._record(t, h, running, sigma, gamma)
        m4 = move.view(-1, 1, 1, 1)
        self._y = torch.where(m4, y_new, self._y)
        self._x_hat = torch.where(m4, x_new, self._x_hat)
        self._d = torch.where(running.view(-1, 1, 1, 1), d, self._d)
        self._sigma = torch.where(running, sigma, self._sigma)
        self._level = torch.where(move, level, self._level)
        self._gamma = torch.where(running, gamma, self._gamma)
        self._h = h
        self._steps += move.long()
        self._codes = self._next_codes(running, move, sigma, t)
        self._t = t
        if self.snapshot_every is not None and (t % self.snapshot_every == 0 or self.done):
            self._snapshot()
        return self.state

    def run(self, callback: Callable[[SamplerState], Any] | None = None, stop: StopSignal = None) -> SampleResult:
        """Step until every chain stops (or ``stop`` — an Event or a callable — says so); callback(state) each step."""
        while not self.done and not _should_stop(stop):
            state = self.step()
            if callback is not None:
                callback(state)
        return self.result()

    def result(self) -> SampleResult:
        """The records so far as a :class:`SampleResult`."""
        b = self.shape[0]
        empty = torch.empty(0, b, device=self.device, dtype=self.dtype)
        return SampleResult(
            image=self._x_hat,
            y=self._y,
            sigmas=torch.stack(self._sigmas) if self._sigmas else empty,
            hs=torch.tensor(self._hs, dtype=torch.float64),
            gammas=torch.stack(self._gammas) if self._gammas else empty,
            steps=self._steps.clone(),
            snapshots=list(self._snapshots),
            status=self.status,
        )

    # ----------------------------------------------------------------- internals
    def _noise(self) -> Tensor:
        """z ~ N(0, I) of the full batch shape from the seeded CPU generator, moved to the device."""
        z = torch.randn(self.shape, generator=self._generator, dtype=torch.float32)
        return z.to(self.device, self.dtype)

    def _guide(self, d: Tensor, running: Tensor) -> Tensor:
        """The guidance step g(y, d, chains) of the running chains (0 for the others)."""
        g = torch.zeros_like(d)
        idx = running.nonzero().squeeze(1)
        if len(idx):
            g[idx] = self.guidance(self._y[idx], d[idx], idx)
        return g

    def _denoise(self, y: Tensor, sigma: Tensor) -> Tensor:
        return self.handle.denoise(y, None if self.handle.blind else sigma)

    def _denoise_where(self, y: Tensor, which: Tensor, sigma: Tensor) -> Tensor:
        """x̂(y) for the chains in ``which`` (only those go through the denoiser); the old x̂ elsewhere."""
        if bool(which.all()):
            return self._denoise(y, sigma)
        out = self._x_hat.clone()
        if bool(which.any()):
            idx = which.nonzero().squeeze(1)
            out[idx] = self._denoise(y[idx], sigma[idx])
        return out

    def _record(self, t: int, h: float, running: Tensor, sigma: Tensor, gamma: Tensor) -> None:
        nan = torch.full_like(sigma, float("nan"))
        self._sigmas.append(torch.where(running, sigma, nan))
        self._gammas.append(torch.where(running, gamma, nan))
        self._hs.append(h)

    def _next_codes(self, running: Tensor, move: Tensor, sigma: Tensor, t: int) -> Tensor:
        codes = self._codes.clone()
        codes[running & ~move] = DIVERGED
        codes[move & (sigma <= self.sigma_L)] = CONVERGED
        if t >= self.max_steps:
            codes[codes == RUNNING] = MAX_STEPS
        return codes

    def _snapshot(self) -> None:
        self._snapshots.append((self._t, self._y.to("cpu", copy=True), self._x_hat.to("cpu", copy=True)))


# --------------------------------------------------------------------------- one-call helpers
def sample(
    handle: Any,
    shape: tuple[int, int, int, int] = (1, 1, 64, 64),
    beta: float = 0.5,
    callback: Callable[[SamplerState], Any] | None = None,
    stop: StopSignal = None,
    **kw: Any,
) -> SampleResult:
    """Algorithm 1: draw ``shape[0]`` samples from the denoiser's implicit prior (see :class:`Sampler`)."""
    return Sampler(handle, shape, beta=beta, **kw).run(callback, stop)


def solve_inverse(
    handle: Any,
    measurement: Any,
    x_c: Tensor,
    beta: float = 0.01,
    callback: Callable[[SamplerState], Any] | None = None,
    stop: StopSignal = None,
    **kw: Any,
) -> SampleResult:
    """Algorithm 2: images x̂ with Mᵀx̂ ≈ x_c drawn from the implicit prior restricted to the measurements.

    The batch is one chain per row of a (B, m) ``x_c`` (one chain for an (m,) x_c) unless ``shape`` is given.
    """
    batch = x_c.shape[0] if x_c.ndim == 2 else 1
    shape = kw.pop("shape", (batch, *measurement.shape))
    return Sampler(handle, shape, measurement=measurement, x_c=x_c, beta=beta, **kw).run(callback, stop)
