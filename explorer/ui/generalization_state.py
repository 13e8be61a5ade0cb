"""The state of the Generalization tool, without widgets: one seed's samples, and a sweep over seeds and N.

Kadkhodaie, Guth, Simoncelli & Mallat, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", ICLR 2024 (issue #16). Two copies of one bias-free UNet
are trained on disjoint sets A and B of N MNIST digits (``gen-mnist-N{N}-A`` / ``-B``); both sample
from the *same* noise (:func:`explorer.generalization.same_noise_samples`), together with the
empirical denoiser of A (perfect memorization). :class:`GeneralizationState`:

- ``sizes`` / ``source``: the N with both models, published (the catalog) or, when none is, from the
  training run folders (``source == "runs"``); ``message`` says why nothing can run.
- :meth:`GeneralizationState.run` → :class:`SeedResult` for (N, seed, β, h₀): the three samples, each
  one's nearest image of its own training set (mean-subtracted cosine) and cos(x_A, x_B).
- :meth:`GeneralizationState.extend_sweep` adds seeds to the sweep over every N
  (``sweep``: :class:`SweepEntry` per N; :meth:`GeneralizationState.sweep_table` the medians and the
  training / held-out denoising PSNR at σ = 0.2).
- :meth:`GeneralizationState.arrays` / :meth:`GeneralizationState.image_panels` — what the downloads hold.
- :func:`verdict_text`, :func:`sample_note`, :data:`EXPLANATION` — what a result means, in words.

No Panel import: tests and notebooks drive it directly; the view runs its methods on a worker thread.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import param

from explorer import generalization as gen
from explorer import generalization_pairs as gp
from explorer.generalization import MEMORIZED

PSNR_SIGMA = 0.2  # σ of the denoising-gap measurement, [0, 1] image units
PSNR_IMAGES = 200  # at most this many training and held-out digits per PSNR
SWEEP_STEP = 16  # seeds added per "add seeds" press
SHAPE = (1, 1, 32, 32)
MODELS = ("A", "B", "empirical")
EXPLANATION = r"""
**The experiment** (Kadkhodaie, Guth, Simoncelli & Mallat, *Generalization in diffusion models arises from
geometry-adaptive harmonic representations*, ICLR 2024). The same bias-free UNet is trained twice, on two
*disjoint* sets A and B of N MNIST digits (32×32). Both models then sample with Algorithm 1 (coarse-to-fine
stochastic ascent) from the **same initial noise** $y_0$ and with the **same injected noises** $z_t$; the seed
chooses that noise. A third sampler uses the *empirical* denoiser of set A, the exact MMSE denoiser of the
N training digits, whose samples are always training digits (perfect memorization).

**The measure** is the cosine of *mean-subtracted* images, as in the paper:
$$\cos(a, b) = \frac{\langle a - \bar a,\ b - \bar b\rangle}{\lVert a - \bar a\rVert\\,\lVert b - \bar b\rVert},
\qquad \bar a = \text{the mean pixel of } a ,$$
1 for the same image (up to brightness and contrast), about 0 for unrelated ones.

- **Memorization** (small N): each model returns a digit of its *own* training set: the cosine with its
  nearest training image is ≥ 0.95 (the paper's threshold, the dashed line), and A and B, which saw different
  digits, disagree (low cos(x_A, x_B)). The denoising PSNR is then much higher on the training digits than
  on held-out ones.
- **Generalization** (large N): the nearest training digit is no longer a copy, yet A and B return nearly
  **the same new image** from the same noise (cos(x_A, x_B) → 1): the two networks learned the same density
  from different samples of it, and denoise training and held-out digits equally well.

The PSNR is that of denoising the first 200 training digits of each model and 200 held-out MNIST digits at
noise level σ = 0.2 in [0, 1] image units (peak 1), clipped to [0, 1].
"""

NO_PAIR = "No generalization pairs found: train them with `scripts/train_generalization.sh`."

Progress = Callable[[float, str], Any]  # (fraction done in [0, 1], what is being done)


@dataclass
class SeedResult:
    """One seed of one N: A, B and the empirical denoiser of A sampled from the same noise.

    ``samples`` {model: (32, 32)}; ``nearest`` {model: (32, 32)} its nearest image of its own training
    set (A's for the empirical model), ``nearest_index`` {model: index into that set} and
    ``nearest_digit`` {model: MNIST training-digit index}, ``nearest_cos`` {model: cosine};
    ``pair_cos`` cos(x_A, x_B); ``initial`` (32, 32) the shared y₀; ``steps`` / ``status`` /
    ``seconds`` per model; ``settings`` N, seed, β, h₀, σ_L, max_steps.
    """

    n: int
    seed: int
    samples: dict[str, np.ndarray]
    nearest: dict[str, np.ndarray]
    nearest_index: dict[str, int]
    nearest_digit: dict[str, int]
    nearest_cos: dict[str, float]
    pair_cos: float
    initial: np.ndarray
    steps: dict[str, int]
    status: dict[str, str]
    seconds: dict[str, float]
    settings: dict[str, Any]

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


@dataclass
class SweepEntry:
    """The seeds of one N computed so far: ``pair`` (S,) cos(x_A, x_B), ``nearest`` {A, B, empirical: (S,)}
    nearest-training cosines, ``status`` {model: (S,) 'converged' | 'max_steps' | 'diverged'},
    and the denoising PSNR of A and B (``psnr``: :class:`~explorer.generalization.PsnrGap`)."""

    n: int
    seeds: list[int] = field(default_factory=list)
    pair: list[float] = field(default_factory=list)
    nearest: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in MODELS})
    status: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in MODELS})
    psnr: dict[str, gen.PsnrGap] = field(default_factory=dict)


def _training_steps(card: dict[str, Any]) -> str:
    """'step 3000 of 8000' from a card (the total read from its command, when it has one)."""
    training = card.get("training") or {}
    done = training.get("steps")
    total = re.search(r"--steps\s+(\d+)", str(training.get("command", "")))
    if done is None:
        return ""
    return f"step {done} of {total.group(1)}" if total and int(total.group(1)) != int(done) else f"{done} steps"


class GeneralizationState(param.Parameterized):
    """Memorization versus generalization of the pairs ``gen-mnist-N{N}-A`` / ``-B`` (ICLR 2024).

    Parameters: ``N`` (training-set size, over ``sizes``), ``seed`` (the shared noise), ``beta`` and
    ``h0`` (Algorithm 1), ``sigma_L`` and ``max_steps`` (when a chain stops). Results: ``result``
    (:class:`SeedResult` of the last :meth:`run`), ``sweep`` {N: :class:`SweepEntry`} (reset when
    β, h₀, σ_L or max_steps change), ``sizes``, ``source`` ("published" | "runs" | "none"),
    ``message`` (why nothing can run, or "").
    """

    N = param.Selector(default=None, objects=[], allow_None=True, doc="Training-set size N of the pair")
    seed = param.Integer(default=0, bounds=(0, 99999), doc="Seed of the shared noise y₀, z₁, z₂, …")
    beta = param.Number(default=0.5, bounds=(0.05, 1.0), step=0.05, doc="β: fraction of the noise removed per step")
    h0 = param.Number(default=0.01, bounds=(0.001, 0.5), step=0.005, doc="h₀: initial step size")
    sigma_L = param.Number(default=0.01, bounds=(0.002, 0.2), doc="σ_L: a chain stops once σ_t ≤ σ_L")
    max_steps = param.Integer(default=3000, bounds=(10, 20000), doc="Iterations after which a chain is stopped")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.sizes: list[int] = []
        self.source = "none"
        self.message = ""
        self.result: SeedResult | None = None
        self.sweep: dict[int, SweepEntry] = {}
        self.sweep_settings: dict[str, Any] = {}
        self._pairs: dict[int, gp.GeneralizationPair] = {}
        self._held_out: np.ndarray | None = None
        self._psnr: dict[int, dict[str, gen.PsnrGap]] = {}
        self._lock = threading.RLock()
        self.refresh()

    # ------------------------------------------------------------------ what exists
    def refresh(self) -> list[int]:
        """Look for pairs again: published ones (the catalog), else those in the training run folders."""
        sizes, source = gp.published_sizes(), "published"
        if not sizes:
            sizes, source = gp.published_sizes(runs=True), "runs"
        if not sizes:
            source = "none"
        with self._lock:
            self.sizes, self.source = list(sizes), source
            self._pairs = {n: p for n, p in self._pairs.items() if n in sizes}
            self.sweep = {n: e for n, e in self.sweep.items() if n in sizes}
        self.message = "" if sizes else NO_PAIR + self._halves_text()
        self.param.N.objects = list(sizes)
        if self.N not in sizes:
            self.N = sizes[0] if sizes else None
        return self.sizes

    @staticmethod
    def _halves_text() -> str:
        """' (Found only gen-mnist-N1-A: …)' when one model of a pair exists without its partner."""
        from explorer.checkpoints import catalog, runs_dir

        names = {str(c.get("name", "")) for c in catalog()}
        root = runs_dir()
        if root.is_dir():
            names |= {p.name for p in root.glob("gen-mnist-N*-*") if (p / f"{p.name}.json").is_file()}
        halves = sorted(n for n in names if re.fullmatch(r"gen-mnist-N\d+-[AB]", n)
                        and n[:-1] + ("B" if n.endswith("A") else "A") not in names)
        return (f" (Found only {', '.join(halves)}, without its partner: the pair is still training.)"
                if halves else "")

    @property
    def available(self) -> bool:
        return bool(self.sizes)

    def source_text(self) -> str:
        """Where the models come from, in words (Markdown)."""
        if not self.sizes:
            return NO_PAIR
        ns = ", ".join(str(n) for n in self.sizes)
        if self.source == "published":
            return f"Published pairs (the model catalog), N ∈ {{{ns}}}."
        from explorer.checkpoints import runs_dir

        text = (f"No published pair yet: the models come from the **training run folders** (`{runs_dir()}`), "
                f"N ∈ {{{ns}}}; their checkpoints may still be training.")
        steps = []
        for n in self.sizes:
            pair = self._pairs.get(n)
            if pair is not None:
                parts = [f"{k} {_training_steps(getattr(pair.models[k], 'card', None) or {})}" for k in ("A", "B")]
                steps.append(f"N = {n}: " + ", ".join(p for p in parts if len(p) > 2))
        return text + (f" ({'; '.join(steps)}.)" if steps else "")

    def pair(self, n: int | None = None) -> gp.GeneralizationPair:
        """The (cached) pair of size ``n`` (default ``N``), loaded and its subsets verified."""
        n = self.N if n is None else int(n)
        if n is None or n not in self.sizes:
            raise LookupError(self.message or f"no generalization pair of size N = {n}; there are {self.sizes}")
        with self._lock:
            if n not in self._pairs:
                self._pairs[n] = gp.load_pair(n, device="cpu", runs=self.source == "runs")
            return self._pairs[n]

    def settings(self) -> dict[str, Any]:
        return dict(beta=float(self.beta), h0=float(self.h0), sigma_L=float(self.sigma_L),
                    max_steps=int(self.max_steps))

    # ------------------------------------------------------------------ one seed
    def _sample(self, pair: gp.GeneralizationPair, seed: int, settings: dict[str, Any],
                progress: Callable[[int, Any], Any] | None = None) -> gen.SameNoiseSamples:
        s = settings
        return gen.same_noise_samples(pair.denoisers(), SHAPE, seed=int(seed), beta=s["beta"], h0=s["h0"],
                                      sigma_L=s["sigma_L"], max_steps=s["max_steps"], callback=progress)

    def run(self, progress: Progress | None = None, stop: threading.Event | None = None) -> SeedResult | None:
        """Sample A, B and the empirical denoiser of A from the noise of ``seed`` (one 32×32 chain each);
        find each sample's nearest image of its own training set. Stores and returns ``result``
        (None when there is no pair: see ``message``). ``progress(fraction, text)`` is called as it goes."""
        if not self.available:
            self.result = None
            return None
        n, seed, settings = int(self.N), int(self.seed), self.settings()
        if progress:
            progress(0.0, f"loading the pair N = {n}")
        pair = self.pair(n)
        cap = max(1, int(self.max_steps))

        def hook(i: int, state: Any) -> None:
            if stop is not None and stop.is_set():
                raise InterruptedError("stopped")
            if progress and state.t % 10 == 0:
                # log σ_t falls from log σ₀ = 0 to log σ_L: the fraction of this model's way down
                sigma = max(float(state.sigma.max()), 1e-12)
                within = float(np.clip(np.log(sigma) / np.log(self.sigma_L), 0.0, 1.0))
                progress((i + within) / len(MODELS), f"sampling {MODELS[i]}: step {state.t} of at most {cap}")

        run = self._sample(pair, seed, settings, hook)
        result = self._seed_result(pair, run, settings)
        self.result = result
        if progress:
            progress(1.0, "done")
        return result

    def _seed_result(self, pair: gp.GeneralizationPair, run: gen.SameNoiseSamples, settings: dict[str, Any]
                     ) -> SeedResult:
        own = {"A": "A", "B": "B", "empirical": "A"}
        samples, nearest, idx, digit, cos = {}, {}, {}, {}, {}
        for m, k in enumerate(MODELS):
            x = run.images[m]
            near = gen.nearest_training(x, pair.training[own[k]])
            j = int(near.indices[0])
            samples[k] = x[0, 0].numpy().astype(np.float32)
            nearest[k] = np.asarray(pair.training[own[k]][j], dtype=np.float32)
            idx[k], digit[k], cos[k] = j, int(pair.indices[own[k]][j]), float(near.cosines[0])
        return SeedResult(
            n=pair.n, seed=run.seed, samples=samples, nearest=nearest, nearest_index=idx, nearest_digit=digit,
            nearest_cos=cos, pair_cos=float(gen.cosine_similarity(run.images[0], run.images[1])[0]),
            initial=run.initial[0, 0].numpy().astype(np.float32),
            steps={k: int(run.steps[m, 0]) for m, k in enumerate(MODELS)},
            status={k: run.status[m][0] for m, k in enumerate(MODELS)},
            seconds={k: float(run.seconds[m]) for m, k in enumerate(MODELS)},
            settings=dict(N=pair.n, seed=run.seed, **settings))

    # ------------------------------------------------------------------ the sweep
    def _check_sweep_settings(self) -> None:
        if self.sweep_settings != self.settings():
            self.sweep, self.sweep_settings = {}, self.settings()

    @param.depends("beta", "h0", "sigma_L", "max_steps", watch=True)
    def clear_sweep(self) -> None:
        """Forget the sweep (its seeds were sampled with other settings)."""
        with self._lock:
            self.sweep, self.sweep_settings = {}, self.settings()

    @property
    def sweep_seed_count(self) -> int:
        """Seeds computed for every N (the smallest count over N)."""
        return min((len(e.seeds) for e in self.sweep.values()), default=0) if len(self.sweep) == len(self.sizes) else 0

    def held_out(self) -> np.ndarray:
        if self._held_out is None:
            from explorer.data.registry import mnist_held_out_digits

            self._held_out = np.asarray(mnist_held_out_digits(), dtype=np.float32)
        return self._held_out

    def extend_sweep(self, count: int = SWEEP_STEP, progress: Progress | None = None,
                     stop: threading.Event | None = None) -> dict[int, SweepEntry]:
        """Add the next ``count`` seeds (0, 1, 2, … in order) to the sweep of every N, and the training vs
        held-out denoising PSNR (σ = 0.2) of each N's models the first time. Stops between seeds when
        ``stop`` is set (what was computed stays), or when the settings change (a new sweep begins)."""
        if not self.available:
            return self.sweep
        with self._lock:
            self._check_sweep_settings()
            sweep, settings = self.sweep, dict(self.sweep_settings)
        stale = lambda: self.sweep is not sweep or (stop is not None and stop.is_set())  # noqa: E731
        start = self.sweep_seed_count
        seeds = list(range(start, start + int(count)))
        todo = len(self.sizes) * (len(seeds) + 1)
        done = 0
        for n in list(self.sizes):
            if stale():
                break
            pair = self.pair(n)
            with self._lock:
                entry = sweep.setdefault(n, SweepEntry(n=n))
            if not entry.psnr:
                if n not in self._psnr:  # (independent of the sampler settings: kept across sweeps)
                    if progress:
                        progress(done / todo, f"N = {n}: denoising PSNR, training vs held-out")
                    held = self.held_out()[:PSNR_IMAGES]
                    self._psnr[n] = {k: gen.psnr_gap(pair.models[k], pair.training[k][:PSNR_IMAGES], held,
                                                     PSNR_SIGMA) for k in ("A", "B")}
                entry.psnr = self._psnr[n]
            done += 1
            for s in seeds:
                if stale():
                    break
                if s in entry.seeds:
                    done += 1
                    continue
                if progress:
                    progress(done / todo, f"N = {n}: seed {s} ({s - start + 1} of {len(seeds)})")
                r = self._seed_result(pair, self._sample(pair, s, settings), settings)
                with self._lock:
                    entry.seeds.append(s)
                    entry.pair.append(r.pair_cos)
                    for k in MODELS:
                        entry.nearest[k].append(r.nearest_cos[k])
                        entry.status[k].append(r.status[k])
                done += 1
        if progress:
            progress(1.0, "done")
        return self.sweep

    def sweep_table(self) -> dict[str, np.ndarray]:
        """Per N of the sweep (sorted): ``N``, ``seeds`` (count), medians ``pair_cos``, ``nearest_A``,
        ``nearest_B``, ``nearest_empirical``, memorized fractions ``memorized_A`` / ``_B`` (≥ 0.95), the
        fractions of chains that diverged ``diverged_A`` / ``_B``, and
        PSNR (dB) ``psnr_train_A``, ``psnr_held_A``, ``psnr_train_B``, ``psnr_held_B``."""
        with self._lock:
            entries = [self.sweep[n] for n in sorted(self.sweep) if self.sweep[n].seeds]
        nan = float("nan")
        med = lambda v: float(np.median(v)) if len(v) else nan  # noqa: E731
        psnr = lambda e, k, a: float(getattr(e.psnr[k], a)) if k in e.psnr else nan  # noqa: E731
        out: dict[str, list[float]] = {k: [] for k in (
            "N", "seeds", "pair_cos", "nearest_A", "nearest_B", "nearest_empirical", "memorized_A", "memorized_B",
            "diverged_A", "diverged_B",
            "psnr_train_A", "psnr_held_A", "psnr_train_B", "psnr_held_B")}
        for e in entries:
            out["N"].append(e.n)
            out["seeds"].append(len(e.seeds))
            out["pair_cos"].append(med(e.pair))
            for k in MODELS:
                out[f"nearest_{k}"].append(med(e.nearest[k]))
            for k in ("A", "B"):
                out[f"memorized_{k}"].append(gen.memorization_fraction(e.nearest[k]))
                out[f"diverged_{k}"].append(float(np.mean([x == "diverged" for x in e.status[k]])))
                out[f"psnr_train_{k}"].append(psnr(e, k, "training"))
                out[f"psnr_held_{k}"].append(psnr(e, k, "held_out"))
        return {k: np.asarray(v, dtype=np.int64 if k in ("N", "seeds") else np.float64) for k, v in out.items()}

    # ------------------------------------------------------------------ what the downloads hold
    def image_panels(self) -> list[tuple[str, np.ndarray]]:
        """(title, image) of the current result, in the order shown: A, A's nearest, B, B's nearest, empirical."""
        r = self.result
        if r is None:
            return []
        c = r.nearest_cos
        return [(f"x_A (N = {r.n}, seed {r.seed})", r.samples["A"]),
                (f"nearest of A's set, cos = {c['A']:.3f}", r.nearest["A"]),
                (f"x_B; cos(x_A, x_B) = {r.pair_cos:.3f}", r.samples["B"]),
                (f"nearest of B's set, cos = {c['B']:.3f}", r.nearest["B"]),
                (f"empirical of A, nearest cos = {c['empirical']:.3f}", r.samples["empirical"])]

    def arrays(self) -> dict[str, Any]:
        """The current result and the sweep as arrays (for the NPZ download)."""
        out: dict[str, Any] = {}
        r = self.result
        if r is not None:
            for k in MODELS:
                out[f"sample_{k}"] = r.samples[k]
                out[f"nearest_{k}"] = r.nearest[k]
                out[f"nearest_cos_{k}"] = np.float64(r.nearest_cos[k])
                out[f"nearest_digit_{k}"] = np.int64(r.nearest_digit[k])
            out["pair_cos"] = np.float64(r.pair_cos)
            out["initial"] = r.initial
        for k, v in self.sweep_table().items():
            out[f"sweep_{k}"] = v
        return out

    def params(self) -> dict[str, Any]:
        """The parameters and provenance of the current result (the NPZ's ``params``)."""
        r = self.result
        info: dict[str, Any] = dict(paper="Kadkhodaie, Guth, Simoncelli & Mallat, ICLR 2024", source=self.source,
                                    sizes=self.sizes, psnr_sigma=PSNR_SIGMA, psnr_units="[0, 1] image range",
                                    cosine="mean-subtracted images", sweep_settings=self.sweep_settings)
        if r is not None:
            info.update(r.settings, steps=r.steps, status=r.status, seconds=r.seconds,
                        nearest_index=r.nearest_index)
        else:
            info.update(N=self.N, seed=int(self.seed), **self.settings())
        return info

    def basename(self) -> str:
        r = self.result
        n, seed = (r.n, r.seed) if r is not None else (self.N, self.seed)
        return f"generalization_N{n}_seed{seed}_beta{self.beta:g}_h0{self.h0:g}"


def verdict_text(r: SeedResult) -> str:
    """What one seed's result says, in words (HTML emphasis): memorization, generalization, or a chain
    that did not converge (then a warning that its cosines mean little)."""
    near = min(r.nearest_cos["A"], r.nearest_cos["B"])
    bad = [m for m in ("A", "B") if r.status[m] != "converged"]
    if bad:
        what = " and ".join(f"{m}'s chain {r.status[m].replace('_', ' ')}" for m in bad)
        verdict = (f"⚠️ {what} (σ_t did not fall to σ_L), so its sample and the cosines with it mean "
                   "little; try a smaller h₀ or a larger β")
    elif r.pair_cos >= MEMORIZED:
        copies = [m for m in ("A", "B") if r.nearest_cos[m] >= MEMORIZED]
        verdict = ("A and B return <b>the same image</b> from the same noise"
                   + (f", a copy of a training digit of {' and '.join(copies)} (nearest cos ≥ 0.95)" if copies else
                      ": a new digit, not a copy of either training set — <b>generalization</b>"))
    elif near >= MEMORIZED:
        verdict = ("A and B return <b>different images</b>, each a copy of a digit of its own training set "
                   "(nearest cos ≥ 0.95) — <b>memorization</b>")
    else:
        one = [m for m in ("A", "B") if r.nearest_cos[m] >= MEMORIZED]
        verdict = (f"A and B disagree; only {one[0]}'s sample copies a digit of its training set (nearest cos ≥ 0.95)"
                   if one else "A and B disagree, and neither sample copies a training digit (nearest cos < 0.95)")
    return verdict


def sample_note(r: SeedResult, model: str) -> str:
    """'49 steps, converged' (a warning for a chain that diverged or hit max_steps) and the sample's pixel
    range (said to be clipped when it leaves [0, 1], the fixed display range)."""
    status = r.status[model]
    text = f"{r.steps[model]} steps, {status}"
    if status != "converged":
        text = f"⚠️ <b>{text}</b>"
    x = r.samples[model]
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    text += f"<br>pixel values {lo:.2f} … {hi:.2f}" + (", shown clipped to [0, 1]" if lo < -0.1 or hi > 1.1 else "")
    return text
