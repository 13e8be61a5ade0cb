"""The run state of the inverse-problem tool, without widgets: :class:`InverseRun`.

A :class:`~explorer.ui.sampler_state.ChainRun` (schedule, chains, stepping, play/pause, histories) plus the
problem: the clean image, the drawn inpainting mask (:class:`~explorer.ui.mask.MaskDrawing`), the
measurement M built from the settings, x_c = Mᵀx, the pseudo-inverse M x_c, and PSNR / SSIM of every
sample and their mean against the original. No Panel here: tests drive it directly.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import param
import torch

from explorer import measurements as meas
from explorer.metrics import psnr, ssim
from explorer.posterior import map_agreement, reconstruction_std

from .mask import MaskDrawing, observed_mask, preset_mask
from .sampler_state import ChainRun

INPAINTING = "inpainting (draw the mask)"
COMPRESSIVE = "compressive sensing (random basis)"
MEASUREMENTS = (INPAINTING, "random pixels", "super-resolution", "spectral low-pass", COMPRESSIVE)
PROBLEM_PARAMS = ["kind", "fraction", "factor", "measurement_seed"]


class InverseRun(ChainRun):
    """Algorithm 2 on ``image`` with the measurement ``kind``; ``chains`` samples consistent with it.

    :meth:`set_image` (a new clean image; the mask is resampled to its size) and
    :meth:`update_measurement` rebuild ``measurement``, ``x_c``, ``baseline`` (the pseudo-inverse) and
    ``metrics`` (``{"pseudo-inverse": (psnr, ssim)}``; :meth:`score` adds the samples and their mean).
    ``problem_error`` says why a measurement could not be built.
    """

    kind = param.Selector(objects=list(MEASUREMENTS), default=INPAINTING, doc="Measurement")
    fraction = param.Number(default=0.1, bounds=(0.01, 1.0), step=0.01, doc="p: fraction of values kept")
    factor = param.Selector(objects=[2, 4, 8], default=4, doc="Super-resolution factor")
    measurement_seed = param.Integer(default=0, bounds=(0, 999_999), doc="Seed of the random measurement")
    beta = param.Number(default=0.1, bounds=(0.01, 1.0), step=0.01, doc="β: fraction of noise removed per step")
    chains = param.Integer(default=3, bounds=(1, 6), doc="Number of samples (chains)")
    problem_error = param.String(default="", doc="Why the measurement could not be built")

    def __init__(self, image: np.ndarray, **params: Any):
        super().__init__(**params)
        self.image = np.asarray(image, dtype=np.float32)
        n = self.size
        self.drawing = MaskDrawing((n, n), base=preset_mask((n, n), "centre square"))
        self.measurement: meas.Measurement | None = None
        self.x_c: torch.Tensor | None = None
        self.baseline: np.ndarray | None = None
        self.metrics: dict[str, tuple[float, float]] = {}
        self.update_measurement()

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def holes(self) -> np.ndarray:
        """Boolean (H, W): True where the inpainting mask hides a pixel."""
        return self.drawing.holes

    def set_image(self, image: np.ndarray) -> None:
        """A new clean image: the drawn mask is kept, resampled to its size (nearest neighbour)."""
        self.image = np.asarray(image, dtype=np.float32)
        n = self.size
        if self.drawing.shape != (n, n):
            old = self.drawing.holes
            idx = np.arange(n) * old.shape[0] // n
            self.drawing = MaskDrawing((n, n), base=old[np.ix_(idx, idx)])
        self.update_measurement()

    def make_measurement(self) -> meas.Measurement:
        """The operator M of the current settings (for inpainting: the drawn mask, True = observed)."""
        shape = (1, self.size, self.size)
        if self.kind == INPAINTING:
            return meas.Inpainting(torch.from_numpy(observed_mask(self.drawing.holes)))
        if self.kind == "random pixels":
            return meas.RandomPixels(shape, float(self.fraction), seed=int(self.measurement_seed))
        if self.kind == "super-resolution":
            return meas.SuperResolution(shape, int(self.factor))
        if self.kind == "spectral low-pass":
            return meas.SpectralLowPass(shape, float(self.fraction))
        return meas.RandomBasis(shape, float(self.fraction), seed=int(self.measurement_seed))

    def update_measurement(self) -> None:
        """Rebuild M, x_c = Mᵀx, the pseudo-inverse and its metrics (cheap; no denoiser call); forget the run."""
        self.pause()
        self.sampler = None
        self.compute_seconds = self.wall_seconds = 0.0
        self.metrics = {}
        try:
            self.measurement = self.make_measurement()
        except ValueError as e:
            self.measurement, self.x_c, self.baseline = None, None, None
            self.problem_error = f"Cannot build the measurement: {e}"
            return
        self.problem_error = ""
        self.x_c = self.measurement.forward(torch.from_numpy(self.image)[None, None])
        self.baseline = self.measurement.pseudo_inverse(self.x_c)[0, 0].numpy()
        self.metrics["pseudo-inverse"] = (psnr(self.baseline, self.image), ssim(self.baseline, self.image))

    def describe(self) -> str:
        """What is measured, with a note when it keeps every value (nothing to infer) or none (plain synthesis)."""
        if self.measurement is None:
            return ""
        m, n = self.x_c.shape[-1], int(np.prod(self.measurement.shape))
        note = ""
        if m == n:
            note = " — nothing is hidden: Algorithm 2 returns the image itself (draw a hole to inpaint)."
        elif m == 0:
            note = " — everything is hidden: Algorithm 2 is then plain synthesis from the prior (Algorithm 1)."
        return f"**Measurement:** {self.measurement.describe()}{note}"

    def measurement_picture(self) -> tuple[str, np.ndarray, str]:
        """What was measured as (style, image, title): style 'gray', 'holes' (NaN where hidden), 'log-dct'
        (log₁₀|DCT coefficient| where kept, NaN elsewhere) or 'numbers' (x_c on a square grid, NaN padding)."""
        m, n, x_c = self.measurement, self.size, self.x_c
        if m is None:
            return "gray", np.full((n, n), np.nan, np.float32), "Measurement"
        if isinstance(m, meas.Inpainting):
            shown = np.where(m.mask[0].numpy(), self.image, np.nan).astype(np.float32)
            return "holes", shown, f"Measured pixels ({100 * m.m / m.n:.0f}%)"
        if isinstance(m, meas.SuperResolution):
            s = m.factor
            return "gray", (x_c.reshape(n // s, n // s) / s).numpy(), f"Low-res. {n // s}×{n // s}"
        if isinstance(m, meas.SpectralLowPass):
            coeffs = meas.dct2(torch.from_numpy(self.image)[None, None].double())[0, 0]
            kept = meas.dct2(m.adjoint(torch.ones(1, m.m, dtype=torch.float64)))[0, 0].abs() > 0.5
            logc = np.where(kept.numpy(), torch.log10(coeffs.abs() + 1e-6).numpy(), np.nan)
            return "log-dct", logc.astype(np.float32), "Kept DCT: log₁₀|c|"
        v = x_c[0].numpy()
        side = int(math.ceil(math.sqrt(v.size)))
        grid = np.full(side * side, np.nan, np.float32)
        grid[: v.size] = v
        return "numbers", grid.reshape(side, side), f"{v.size} measured numbers"

    def build_for(self, handle: Any) -> Any:
        """A fresh Algorithm-2 sampler for the image, measurement and parameters (None with ``error`` set)."""
        if self.measurement is None:
            self.update_measurement()
            if self.measurement is None:
                self.error = self.problem_error
                return None
        sampler = self.build(handle, (int(self.chains), 1, self.size, self.size), measurement=self.measurement,
                             x_c=self.x_c, snapshot_every=None)
        if sampler is None and handle is not None:
            self.error = f"Cannot start Algorithm 2: {self.error}"
        return sampler

    def expected_time(self) -> str:
        """The expected run time of the next run ("≈ N steps × t s ≈ T s expected")."""
        return self.expected_time_text((int(self.chains), 1, self.size, self.size))

    def score(self, state: Any) -> np.ndarray:
        """PSNR / SSIM of each sample x̂(y_t) and of their mean into ``metrics``; returns the samples (B, H, W)."""
        xh = state.x_hat.detach().to("cpu", torch.float32).numpy()[:, 0]
        base = {k: v for k, v in self.metrics.items() if k == "pseudo-inverse"}
        for j in range(xh.shape[0]):
            base[f"sample {j + 1}"] = (psnr(xh[j], self.image), ssim(xh[j], self.image))
        if xh.shape[0] > 1:
            mean = xh.mean(axis=0)
            base["mean of samples"] = (psnr(mean, self.image), ssim(mean, self.image))
        self.metrics = base
        return xh

    def uncertainty(self, handle: Any) -> dict[str, Any]:
        """After a run: the spread of the samples (per-pixel std over the chains, ddof 1), the Jacobian's
        √(σ_T² diag(P A P)) at each chain's last iterate (:func:`explorer.posterior.reconstruction_std`, averaged
        over the chains), and how the two agree on the unmeasured pixels (correlation, ratio of medians)."""
        if self.sampler is None or self.measurement is None:
            raise ValueError("run Algorithm 2 first")
        state = self.sampler.state
        xh = state.x_hat.detach().to("cpu", torch.float64).numpy()[:, 0]
        maps = [reconstruction_std(handle, state.y[j], float(state.sigma[j]), self.measurement,
                                   told=None if handle.blind else float(state.level[j])).std[0].numpy()
                for j in range(xh.shape[0])]
        jacobian = np.mean(maps, axis=0).astype(np.float32)
        spread = xh.std(axis=0, ddof=1).astype(np.float32) if xh.shape[0] > 1 else None
        unknown = ~self.measurement.mask[0].numpy() if isinstance(self.measurement, meas.Inpainting) else None
        r, ratio = map_agreement(jacobian, spread, unknown) if spread is not None else (float("nan"), float("nan"))
        return dict(jacobian=jacobian, spread=spread, correlation=r, ratio=ratio, chains=xh.shape[0],
                    sigma_T=float(state.sigma.max()), unknown=unknown)

    def finished_text(self, elapsed: str) -> str:
        best = max((v for k, v in self.metrics.items() if k != "pseudo-inverse"), default=None, key=lambda v: v[0])
        base = self.metrics.get("pseudo-inverse")
        gain = f" Best PSNR {best[0]:.2f} dB vs {base[0]:.2f} dB for the pseudo-inverse." if best and base else ""
        return f"Finished after {self.sampler.t} steps ({elapsed}): {', '.join(sorted(set(self.sampler.status)))}.{gain}"

    def arrays(self) -> dict[str, Any]:
        """The original, pseudo-inverse, x_c, the observed mask, the samples, their mean and the σ_t history."""
        arrays: dict[str, Any] = dict(original=self.image, pseudo_inverse=self.baseline,
                                      x_c=None if self.x_c is None else self.x_c.numpy())
        if isinstance(self.measurement, meas.Inpainting):
            arrays["observed_mask"] = self.measurement.mask[0].numpy()
        if self.sampler is not None:
            xh = self.sampler.state.x_hat.detach().cpu().numpy()[:, 0]
            hist = self.history()
            arrays.update(samples=xh, mean=xh.mean(axis=0), t=hist["t"].astype(int), sigma=hist["sigma"])
        return arrays

    def png_panels(self) -> list[tuple[str, np.ndarray]]:
        """(title, image) of the original, what was measured, the pseudo-inverse, the samples and their mean."""
        a = self.arrays()
        panels: list[tuple[str, np.ndarray]] = [("original", a["original"])]
        if "observed_mask" in a:
            panels.append(("measured pixels", np.where(a["observed_mask"], a["original"], 0.0)))
        if a.get("pseudo_inverse") is not None:
            panels.append(("pseudo-inverse", a["pseudo_inverse"]))
        panels += [(f"sample {j + 1}", s) for j, s in enumerate(a.get("samples", []))]
        return panels + ([("mean", a["mean"])] if "mean" in a else [])

    def run_params(self, model: str | None, image: str) -> dict[str, Any]:
        """The parameters of the problem and the run (the NPZ's ``params``; ``samples`` is the old name of ``chains``)."""
        return dict(model=model, image=image, size=self.size, measurement=self.kind,
                    describe=None if self.measurement is None else self.measurement.describe(),
                    fraction=self.fraction, factor=self.factor, measurement_seed=self.measurement_seed,
                    beta=self.beta, h0=self.h0, sigma0=self.sigma0, sigma_L=self.sigma_L, chains=self.chains,
                    samples=self.chains, seed=self.seed,
                    metrics={k: dict(psnr=v[0], ssim=v[1]) for k, v in self.metrics.items()})
