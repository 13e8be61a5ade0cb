"""The run state of the sampler tools, without widgets: :class:`ChainRun` (shared) and :class:`SamplerRun`.

A :class:`ChainRun` holds the schedule parameters (β, h₀, σ₀, σ_L, seed, chains, max_steps), the live
:class:`explorer.Sampler`, and everything a page shows about the run: the σ_t / h_t histories (read from
what the sampler records), the predicted number of steps (:func:`explorer.sampling.predicted_steps`), the
plot ranges, progress, timing, and the expected run time measured from one denoiser call. Stepping,
play (a loop on a thread: any ``start(work, on_done)`` runner, a plain thread by default) and pause are
methods. :class:`SamplerRun` adds Algorithm 1's image size, snapshots and energies; the inverse-problem
state (:mod:`explorer.ui.inverse_state`) adds the measurement. No Panel here: tests drive it directly.

Also the model-size helpers: :func:`training_size`, :func:`sizes_for`, :func:`size_warning`.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import param
import torch

import explorer
from explorer.sampling import predicted_sigmas, predicted_steps, step_size

from .limits import SessionLimit, check_chain_pixels

SIZES = (32, 64, 128, 256)  # the image sizes offered (a model's training size is added)
DEFAULT_SIZE = 64  # for models whose card gives no training size (classical, exact, registered handles)
MAX_SNAPSHOTS = 400
SNAPSHOT_BYTES = 120e6
SEED_MAX = 999_999
_STEP_SECONDS: dict[tuple, float] = {}  # measured seconds of one denoiser call, per (model, shape)


# ------------------------------------------------------------------------------------------ model sizes
def training_size(handle: Any) -> int | None:
    """The image size a model was trained on (its card's ``training.patch``), or None if the card has none."""
    card = getattr(handle, "card", None) or {}
    patch = (card.get("training") or {}).get("patch") if isinstance(card, dict) else None
    return int(patch) if isinstance(patch, (int, float)) and not isinstance(patch, bool) and patch > 0 else None


def sizes_for(handle: Any, sizes: tuple[int, ...] = SIZES) -> list[int]:
    """The sizes to offer for ``handle``: ``sizes`` and its training size."""
    n = training_size(handle)
    return sorted(set(sizes) | ({n} if n else set()))


def size_warning(handle: Any, size: int) -> str:
    """A warning when ``size`` is not the size the model was trained on ('' if it is, or unknown)."""
    n = training_size(handle)
    if n is None or int(size) == n:
        return ""
    name = getattr(handle, "name", "this model")
    return (f"{name} was trained on {n}×{n} images and has never seen {size}×{size} ones: its chains may diverge "
            f"or give poor images. Choose {n} for the size it knows.")


def follow_size(size: int, old_default: int, handle: Any) -> tuple[int, int]:
    """(size, default) after a change of model to ``handle``: the size follows the model's training size
    while it is the old model's default (no other size was chosen), else it stays."""
    default = training_size(handle) or DEFAULT_SIZE
    return (default if int(size) == int(old_default) else int(size)), default


def measured_step_seconds(handle: Any, shape: tuple[int, ...]) -> float:
    """Seconds of one denoiser call on a (B, C, H, W) batch (what one sampler step costs), measured once
    per model and shape; 0.0 if the call fails."""
    key = (getattr(handle, "name", id(handle)), id(handle), tuple(shape))
    if key not in _STEP_SECONDS:
        y = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(handle.device, handle.dtype)
        sigma = None if handle.blind else torch.full((shape[0],), 0.5, device=handle.device, dtype=handle.dtype)
        try:
            t0 = time.perf_counter()
            with torch.no_grad():
                handle.denoise(y, sigma)
            _STEP_SECONDS[key] = time.perf_counter() - t0
        except Exception:
            return 0.0
    return _STEP_SECONDS[key]


def _seconds(s: float) -> str:
    return f"{s:.2g} s" if s < 10 else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")


def thread_start(work: Callable[[threading.Event, Callable[[Any], None]], Any],
                 on_done: Callable[[BaseException | None], Any] | None = None) -> None:
    """The default runner of :meth:`ChainRun.play`: ``work(stop, publish)`` on a daemon thread."""
    def target() -> None:
        error = None
        try:
            work(threading.Event(), lambda _state: None)
        except BaseException as e:  # reported to on_done
            error = e
        if on_done is not None:
            on_done(error)

    threading.Thread(target=target, daemon=True, name="chain-run").start()


# ------------------------------------------------------------------------------------------ the run
def card_training_data(card: dict[str, Any] | None) -> str | None:
    """The data set a model card says it was trained on (None: no card or no record)."""
    training = (card or {}).get("training")
    data = training.get("data") if isinstance(training, dict) else None
    return str(data) if data else None


class ChainRun(param.Parameterized):
    """Chains of the coarse-to-fine sampler and their records (shared by Algorithm 1 and 2).

    ``build(handle, shape)`` makes a fresh :attr:`sampler` (its error, if any, goes to ``error``);
    :meth:`step` advances it; :meth:`play` loops on a thread until every chain stops or :meth:`pause`.
    :meth:`history` is what the sampler recorded (σ_t NaN once a chain stopped); :meth:`x_range` and
    :meth:`sigma_range` size the σ_t plot (the x-range grows with the run, the y-axis never flips).
    """

    beta = param.Number(default=0.5, bounds=(0.01, 1.0), step=0.01, doc="β: fraction of the noise removed per step")
    h0 = param.Number(default=0.01, bounds=(0.001, 0.5), step=0.001, doc="h₀: initial step size")
    sigma0 = param.Number(default=1.0, bounds=(0.05, 2.0), step=0.05, doc="σ₀: initial noise level")
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), step=0.001, doc="σ_L: stop when σ_t ≤ σ_L")
    seed = param.Integer(default=0, bounds=(0, SEED_MAX), doc="Seed of the initial and injected noise")
    chains = param.Integer(default=2, bounds=(1, 8), doc="Number of chains run together")
    max_steps = param.Integer(default=2000, bounds=(1, 100_000), doc="Stop a chain after this many steps")
    error = param.String(default="", doc="Why the sampler could not be built ('' if it was)")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.sampler: explorer.Sampler | None = None
        self.handle: Any = None
        self.compute_seconds = 0.0  # denoiser compute of the steps so far
        self.wall_seconds = 0.0  # wall time of finished steps and play runs
        self._play_started: float | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    # -- schedule
    @property
    def predicted_steps(self) -> int:
        """Steps the designed schedule takes from σ₀ to σ_L (:func:`explorer.sampling.predicted_steps`)."""
        return predicted_steps(float(self.sigma0), float(self.h0), float(self.beta), float(self.sigma_L),
                               int(self.max_steps))

    def _plot_steps(self) -> int:
        return min(int(self.max_steps), self.predicted_steps + 5)

    def predicted_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(t, σ̄) of the designed schedule: σ̄_{t−1} is plotted at iteration t (σ_t is measured on y_{t−1})."""
        steps = self._plot_steps()
        return np.arange(1, steps + 2), predicted_sigmas(float(self.sigma0), float(self.h0), float(self.beta),
                                                         steps).numpy()

    def h_schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """(t, h_t) of the step schedule over the predicted run."""
        ts = np.arange(1, self._plot_steps() + 1)
        return ts, np.array([step_size(int(t), float(self.h0)) for t in ts])

    def x_range(self, extra: int = 0) -> tuple[float, float]:
        """The σ_t plot's iteration range: the predicted run, extended to the steps made (and ``extra``)."""
        return 0.0, float(max(self._plot_steps() + 1, self.t + 1, extra + 1))

    def sigma_range(self) -> tuple[float, float]:
        """The σ_t plot's (log) range, low < high whatever σ₀ and σ_L are (the axis never flips)."""
        lo, hi = sorted((float(self.sigma0), float(self.sigma_L)))
        return max(lo * 0.5, 1e-4), hi * 1.6

    # -- the sampler
    def build(self, handle: Any, shape: tuple[int, int, int, int], **sampler_kw: Any) -> explorer.Sampler | None:
        """Stop any run and make a fresh sampler (None, with ``error`` set, if the settings are refused)."""
        self.pause()
        self.sampler, self.handle = None, handle
        self.compute_seconds = self.wall_seconds = 0.0
        if handle is None:
            return None
        try:
            check_chain_pixels(shape[0], shape[2], shape[3])
            self.sampler = explorer.Sampler(
                handle, shape=shape, beta=float(self.beta), h0=float(self.h0), sigma0=float(self.sigma0),
                sigma_L=float(self.sigma_L), seed=int(self.seed), max_steps=int(self.max_steps), **sampler_kw)
        except (ValueError, SessionLimit) as e:
            self.error = str(e)
            return None
        self.error = ""
        return self.sampler

    @property
    def t(self) -> int:
        return 0 if self.sampler is None else self.sampler.t

    @property
    def done(self) -> bool:
        return self.sampler is not None and self.sampler.done

    @property
    def playing(self) -> bool:
        """True while the play loop runs."""
        return not self._idle.is_set()

    def advance(self) -> Any:
        """One sampler step (thread-safe), timed; returns the new state."""
        with self._lock:
            t0 = time.perf_counter()
            state = self.sampler.step()
            self.compute_seconds += time.perf_counter() - t0
            return state

    def step(self) -> Any:
        """One step of every running chain (None without a sampler, while playing, or once done)."""
        if self.sampler is None or self.playing or self.sampler.done:
            return None
        t0 = time.perf_counter()
        state = self.advance()
        self.wall_seconds += time.perf_counter() - t0
        return state

    def play(self, start: Callable[..., Any] | None = None,
             on_done: Callable[[BaseException | None], Any] | None = None) -> bool:
        """Step until every chain stops or :meth:`pause`, on ``start(work, on_done)`` (a plain thread by
        default; a page passes its worker). ``work(stop, publish)`` publishes each state. False if there
        is nothing to run."""
        if self.sampler is None or self.playing or self.sampler.done:
            return False
        sampler = self.sampler
        self._stop.clear()
        self._idle.clear()
        self._play_started = time.perf_counter()

        def work(stop: threading.Event, publish: Callable[[Any], None]) -> None:
            try:
                while not (stop.is_set() or self._stop.is_set()) and not sampler.done and sampler is self.sampler:
                    publish(self.advance())
            finally:
                self.wall_seconds += time.perf_counter() - self._play_started
                self._play_started = None
                self._idle.set()

        try:
            (start or thread_start)(work, on_done)
        except SessionLimit as e:  # the server's per-session limit: reported like a failed run, naming it
            self._idle.set()
            if on_done is not None:
                on_done(e)
            return False
        except BaseException:
            self._idle.set()
            raise
        return True

    def pause(self, timeout: float = 10.0) -> None:
        """Stop the play loop after the current step and wait for it."""
        self._stop.set()
        self._idle.wait(timeout)

    def join(self, timeout: float | None = 60.0) -> None:
        """Wait for the play loop to end by itself."""
        self._idle.wait(timeout)

    # -- what the page shows
    def elapsed(self) -> float:
        """Wall seconds of the run, including the play loop under way."""
        started = self._play_started
        return self.wall_seconds + (time.perf_counter() - started if started is not None else 0.0)

    def history(self) -> dict[str, np.ndarray]:
        """What the sampler recorded: 't' (T,), 'sigma' (T, chains; NaN once a chain stopped), 'h' (T,)."""
        if self.sampler is None:
            return dict(t=np.zeros(0), sigma=np.zeros((0, int(self.chains))), h=np.zeros(0))
        r = self.sampler.result()  # the play loop may append meanwhile: use the common length
        n = min(int(r.hs.numel()), int(r.sigmas.shape[0]))
        return dict(t=np.arange(1, n + 1, dtype=float), sigma=r.sigmas[:n].detach().to("cpu", torch.float64).numpy(),
                    h=r.hs[:n].numpy())

    def chain_steps(self) -> list[int]:
        """Updates applied to each chain so far."""
        return [] if self.sampler is None else [int(s) for s in self.sampler.result().steps.tolist()]

    def max_sigma(self, state: Any) -> float:
        """The largest σ_t of the chains that have not diverged (all chains if every one has)."""
        sig = state.sigma.detach().to("cpu", torch.float64).numpy()
        keep = np.asarray([s != "diverged" for s in state.status])
        return float(np.nanmax(sig[keep] if keep.any() else sig))

    def progress(self, state: Any) -> int:
        """0–100: how far the largest σ_t has come from σ₀ towards σ_L, on a log scale."""
        span = math.log(self.sigma0) - math.log(self.sigma_L)
        if not state.t or span <= 0:
            return 0
        frac = (math.log(self.sigma0) - math.log(max(self.max_sigma(state), 1e-12))) / span
        return int(np.clip(100 * frac, 0, 100))

    def rate(self) -> float:
        """Steps per second of denoiser compute (0 before the first step)."""
        return self.t / self.compute_seconds if self.compute_seconds > 0 and self.t else 0.0

    def expected_time_text(self, shape: tuple[int, ...] | None = None) -> str:
        """"≈ N steps × t s ≈ T s": the predicted steps times one denoiser call's measured time."""
        shape = shape or (self.sampler.shape if self.sampler is not None else None)
        if self.handle is None or shape is None:
            return ""
        per = measured_step_seconds(self.handle, shape)
        if per <= 0:
            return ""
        n = self.predicted_steps
        return f"≈ {n} steps × {per:.2g} s ≈ {_seconds(n * per)} expected"

    def counts_text(self) -> str:
        counts = {s: self.sampler.status.count(s) for s in set(self.sampler.status)}
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


class SamplerRun(ChainRun):
    """Algorithm 1: ``chains`` images of ``size``² drawn from the prior; snapshots for the scrubber, and
    −log p of the finished samples when an energy model of their size exists (:meth:`energy_model`)."""

    size = param.Selector(objects=list(SIZES), default=DEFAULT_SIZE, doc="Image size (pixels per side)")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.energy: list[float | None] | None = None

    def shape_for(self, handle: Any) -> tuple[int, int, int, int]:
        c = int(getattr(handle, "channels", 1)) if handle is not None else 1
        return int(self.chains), c, int(self.size), int(self.size)

    def snapshot_every(self, shape: tuple[int, int, int, int]) -> int:
        """Record every k-th step so that the snapshots stay under a memory budget."""
        per = 2 * math.prod(shape) * 4
        budget = max(2, min(MAX_SNAPSHOTS, int(SNAPSHOT_BYTES // per)))
        return max(1, math.ceil(min(self.max_steps, self.predicted_steps) / budget))

    def reset(self, handle: Any) -> explorer.Sampler | None:
        """A fresh sampler for ``handle`` and the current parameters."""
        self.energy = None
        shape = self.shape_for(handle)
        return self.build(handle, shape, snapshot_every=self.snapshot_every(shape))

    def current_samples(self) -> tuple[np.ndarray, int, list[int]]:
        """x̂ of every chain (B, H, W), t and each chain's steps, read between two steps."""
        with self._lock:
            return self.sampler.state.x_hat[:, 0].detach().cpu().numpy(), int(self.sampler.t), self.chain_steps()

    def png_panels(self) -> list[tuple[str, np.ndarray]]:
        """(title, image) of y_t and x̂(y_t) of every chain, for the PNG download."""
        if self.sampler is None:
            return []
        st = self.sampler.state
        return [p for j in range(st.y.shape[0]) for p in ((f"chain {j + 1} y_t, t={st.t}", st.y[j, 0].cpu().numpy()),
                                                          (f"chain {j + 1} x_hat(y_t)", st.x_hat[j, 0].cpu().numpy()))]

    def record(self) -> dict[str, Any] | None:
        """The σ_t history of the run with its β, h₀, step count and a label (None before the first step)."""
        hist = self.history()
        if self.sampler is None or not hist["t"].size:
            return None
        steps, s = int(np.isfinite(hist["sigma"]).any(axis=1).sum()), self.sampler
        return dict(t=hist["t"], sigma=hist["sigma"], beta=s.beta, h0=s.h0, steps=steps,
                    label=f"β={s.beta:g}, h₀={s.h0:g}: {steps} steps")

    def snapshots(self) -> list[tuple[int, Any, Any]]:
        return [] if self.sampler is None else self.sampler.result().snapshots

    def run_params(self, model: str | None) -> dict[str, Any]:
        """The parameters that define the run (written into the NPZ; ``batch`` is the old name of ``chains``)."""
        return dict(model=model, beta=self.beta, h0=self.h0, sigma0=self.sigma0, sigma_L=self.sigma_L,
                    seed=self.seed, size=self.size, chains=self.chains, batch=self.chains, max_steps=self.max_steps)

    # -- energies
    def energy_model(self) -> Any:
        """Hook: an energy model for the current image size (a handle with ``.nll(x)`` → −log p), or None.

        The first catalog card of an energy model (an ``energy`` section, or ``kind`` / ``type`` "energy")
        whose ``size`` (or training patch) is the image size, trained on the sampler's denoiser's training
        data (``energy-mnist`` for the MNIST denoisers, ``energy-natural-gray`` for BSD400's; none when no
        energy model shares it: another data set's density says nothing of these samples; a denoiser
        without a training record takes the first of the size), and whose handle has ``nll``. Override or
        monkeypatch this to plug a specific energy model in.
        """
        own = card_training_data(getattr(self.handle, "card", None))
        try:
            for card in explorer.catalog():
                kind = card.get("kind") or card.get("type")
                size = card.get("size") or (card.get("training") or {}).get("patch")
                same_data = own is None or card_training_data(card) == own
                if (kind == "energy" or "energy" in card) and size == self.size and same_data:
                    h = explorer.load(card["name"])
                    if hasattr(h, "nll"):
                        return h
        except Exception:
            return None
        return None

    def score_energies(self) -> list[float | None] | None:
        """−log p(x̂) of each finished sample (nats, continuous density on [0,1]^d), None for a chain that did
        not converge (a diverged chain's x̂ is far outside the data: its "energy" means nothing); the list
        is None without an energy model. Stored in ``energy``. Raises what the energy model raises."""
        model = self.energy_model()
        self.energy = None
        if model is None or self.sampler is None:
            return None
        with torch.no_grad():
            values = [float(v) for v in torch.as_tensor(model.nll(self.sampler.state.x_hat)).flatten().tolist()]
        status = self.sampler.status
        self.energy = [v if j < len(status) and status[j] == "converged" and math.isfinite(v) else None
                       for j, v in enumerate(values)]
        return self.energy

    def energy_cell(self, j: int) -> str:
        """The −log p(x̂) shown for chain j: its energy, "diverged" for a diverged chain, else a dash and why."""
        status = self.sampler.status[j] if self.sampler is not None else "running"
        if status == "diverged":
            return "diverged"
        v = self.energy[j] if self.energy and j < len(self.energy) else None
        if v is not None:
            return f"{v:.1f}"
        return f"— (not converged: {status})" if status != "converged" else "—"
