"""FiltersView: click a pixel of a noisy image and see the adaptive filter that computes it.

A bias-free denoiser is locally linear, x̂(y) = A_y y (Mohan*, Kadkhodaie* et al., ICLR 2020), so
pixel i of the estimate is an inner product x̂_i = ⟨a_i, y⟩ with row i of the Jacobian A = ∂x̂/∂y:
the *adaptive filter* of that pixel. The filter comes from :func:`explorer.jacobian.row`; this
module only chooses the image, the noise and the pixel, and shows up to three denoisers side by
side for the same pixel (e.g. a bias-free CNN, a CNN with biases and Gaussian smoothing).
"""
from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType, SimpleNamespace
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import torch

import explorer
from explorer import jacobian
from explorer.metrics import psnr

from .filters_docs import EXPLANATION
from .export import downloads, npz_bytes, png_bytes
from .models import get_handle, model_names
from .models import sigma_arg as _sigma_arg
from .controls import bounded_input
from .pixels import centred_crop, marker, plot_to_pixel_index
from .plots import LiveImage, gray_image
from .sources import ImageSource
from .tasks import LatestTask
from .text import alert, explanation, fmt_number, notify, show_alert
from .toolview import ToolView
from .uncertainty import UNCERTAINTY_TEXT, UncertaintyRow, uncertainty

MAX_MODELS = 3
CROP_COLOR = "#333333"

def default_models() -> list[str]:
    """The default (bias-free) model, a CNN with biases trained on the same data if the catalog has one, and
    Gaussian smoothing."""
    names = model_names()
    chosen = [names[0]] if names else []
    try:  # a CNN with biases trained on the same data as the first model (not, e.g., an MNIST energy model)
        cards = {c["name"]: c for c in explorer.catalog()}
        data = ((cards.get(chosen[0]) or {}).get("training") or {}).get("data") if chosen else None
        biased = [n for n, c in cards.items() if c.get("bias_free") is False
                  and str(c.get("architecture", "")).lower() in ("dncnn", "unet")
                  and (c.get("training") or {}).get("data") == data]
    except Exception:
        biased = []
    chosen += biased[:1]
    gauss = "classical: Gaussian smoothing"
    if gauss in names and gauss not in chosen:
        chosen.append(gauss)
    return chosen[:MAX_MODELS]


def linearity_note(r: dict[str, Any]) -> str:
    """Whether ⟨aᵢ, y⟩ = x̂ᵢ (J(y)y = x̂(y): locally linear, as a bias-free network is) or by how much it is not."""
    gap = r["inner"] - r["xhat_i"]
    if abs(gap) <= 1e-4 * max(1.0, abs(r["xhat_i"])):
        return "(equal: x̂ is locally linear here, J(y)y = x̂(y))"
    return f"(**differ by {gap:+.4f}**: J(y)y ≠ x̂(y), not locally linear" + (" at a fixed σ)" if r["classical"] else ")")


def zoom_title(n: int) -> str:
    return f"zoom: {n}×{n} around pixel i"


# ------------------------------------------------------------------------------------------ the view
class FiltersView(ToolView):
    """Adaptive filters (Jacobian rows) of up to three denoisers at a clicked pixel of a noisy image.

    Parameters: ``sigma`` (noise std), ``seed`` (noise draw), ``row``/``col`` (the pixel; set by a
    click on any image), ``crop`` (half-width of the zoomed filter), ``models`` (up to three picker
    names). Results of the last computation are in ``results[name]`` (``denoised``, ``filter``,
    ``crop``, ``row_sum``, ``sigma_hat``, ``xhat_i``, ``inner``, ``psnr``) and ``noisy``.

    Shown: ``shown_noisy`` and ``marker_pixel`` (the noisy image, its circled pixel), ``filters[name]`` (each
    denoiser's column), ``columns``, ``alert_pane`` (the errors). A click: ``tap.event(x=..., y=...)`` (the
    noisy image's Tap stream) or :meth:`select`. Downloads: :meth:`png`, :meth:`npz`, :meth:`basename`.
    """

    title = "Adaptive filters"

    sigma = param.Number(default=0.1, bounds=(0.0, 0.5), step=0.005,
                         doc="σ: std of the Gaussian noise added to the clean image ([0,1] units)")
    seed = param.Integer(default=0, bounds=(0, 99999), doc="Seed of the noise draw z")
    row = param.Integer(default=0, bounds=(0, None), doc="Row i of the selected pixel (0 = top)")
    col = param.Integer(default=0, bounds=(0, None), doc="Column j of the selected pixel (0 = left)")
    crop = param.Integer(default=7, bounds=(2, 24), doc="Half-width of the zoomed filter (pixels)")
    models = param.ListSelector(default=[], objects=[], doc="Denoisers compared (up to three)")
    posterior = param.Boolean(default=True, doc="Also show each denoiser's posterior std √(σ²Aᵢᵢ) beside its actual error")

    def __init__(self, models: list[str] | None = None, image_source: ImageSource | None = None, **params: Any):
        names = model_names()
        super().__init__(**params)
        self.param.models.objects = list(dict.fromkeys(names + list(models or [])))
        with param.parameterized.discard_events(self):
            self.models = list(models)[:MAX_MODELS] if models else default_models()
        self.source = image_source or ImageSource(sizes=[32, 64, 128])
        self.clean: np.ndarray = self.source.image
        self.noisy: np.ndarray = self.clean
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.last_click_seconds = 0.0
        self._denoise_cache: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        self._posterior_cache: dict[tuple[str, int], dict[str, Any]] = {}
        self._noisy_id = 0
        self.task = LatestTask(self._compute, self._render, self._on_error, name="filters")
        self.alert_pane = alert()
        self._status = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), styles={"color": "#555"})
        self._pixel_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10))
        h, w = self.clean.shape
        self._noisy_pipe = hv.streams.Pipe(data=self.noisy)
        self._marker_pipe = hv.streams.Pipe(data=((h // 2, w // 3), (h, w)))
        noisy_dm = hv.DynamicMap(self._noisy_plot, streams=[self._noisy_pipe])
        marker_dm = hv.DynamicMap(lambda data: marker(*data), streams=[self._marker_pipe])
        self.tap = hv.streams.Tap(source=noisy_dm, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self._noisy_pane = pn.pane.HoloViews(noisy_dm * marker_dm, linked_axes=False, margin=(0, 5))
        self.columns = pn.Row(sizing_mode="stretch_width", margin=0)
        self._slots: dict[str, dict[str, Any]] = {}
        self.source.param.watch(lambda _e: self._new_image(), "image")
        self._set_pixel((h // 2, w // 3))  # off the diagonal: row ≠ col
        self._build_slots()
        self._new_noise()

    # ------------------------------------------------------------------ state changes
    def _set_pixel(self, pixel: tuple[int, int]) -> None:
        h, w = self.clean.shape
        i, j = int(np.clip(pixel[0], 0, h - 1)), int(np.clip(pixel[1], 0, w - 1))
        self.param.row.bounds, self.param.col.bounds = (0, h - 1), (0, w - 1)
        with param.parameterized.discard_events(self):
            self.row, self.col = i, j
        self._pixel_inputs()

    def _pixel_inputs(self) -> None:
        """Row and column fields stating the image's range (rebuilt when the image size changes)."""
        if not hasattr(self, "pixel_inputs"):
            self.pixel_inputs = pn.Row(sizing_mode="stretch_width")
        if getattr(self, "_input_bounds", None) != self.param.row.bounds + self.param.col.bounds:
            self._input_bounds = self.param.row.bounds + self.param.col.bounds
            w = dict(sizing_mode="stretch_width")
            self.pixel_inputs[:] = [bounded_input(self, "row", "Row i", **w), bounded_input(self, "col", "Column j", **w)]

    @property
    def pixel(self) -> tuple[int, int]:
        return int(self.row), int(self.col)

    shown_noisy = property(lambda self: self._noisy_pipe.data, doc="The noisy image y as shown on the page.")
    marker_pixel = property(lambda self: tuple(self._marker_pipe.data[0]), doc="The pixel circled on the noisy image.")

    @property
    def filters(self) -> Mapping[str, SimpleNamespace]:
        """Each denoiser's column as shown, by name (read-only snapshot): ``filter`` (aᵢ), ``crop`` (its zoom),
        ``marker_pixel`` (circled on aᵢ), ``text`` (row sum etc., or why it failed), ``tap`` (its x̂ image's Tap),
        ``posterior`` (its uncertainty row as shown: ``std``, ``error``, ``text``; None when turned off)."""
        return MappingProxyType({n: SimpleNamespace(filter=s["full"].array, crop=s["crop"].array, text=s["text"].object,
                                                    marker_pixel=s["full"].marker_pixel, tap=s["tap"],
                                                    posterior=s["posterior"].shown if "posterior" in s else None)
                                 for n, s in self._slots.items()})

    def _new_image(self) -> None:
        if self.source.image is None:
            return
        old = self.clean.shape
        self.clean = self.source.image
        if self.clean.shape != old:
            self._set_pixel((self.clean.shape[0] // 2, self.clean.shape[1] // 3))
        self._new_noise()

    @param.depends("sigma", "seed", watch=True)
    def _new_noise(self) -> None:
        """y = x + σ z with z ~ N(0, I) drawn from ``seed`` (the same z for every σ)."""
        z = np.random.default_rng(int(self.seed)).standard_normal(self.clean.shape).astype(np.float32)
        self.noisy = (self.clean + np.float32(self.sigma) * z).astype(np.float32)
        self._noisy_id += 1
        self._denoise_cache.clear()
        self._posterior_cache.clear()
        self._noisy_pipe.send(self.noisy)
        self._submit()

    @param.depends("row", "col", "crop", watch=True)
    def _pixel_changed(self) -> None:
        self._submit()

    @param.depends("models", "posterior", watch=True)
    def _models_changed(self) -> None:
        if len(self.models) > MAX_MODELS:
            self.models = list(self.models[:MAX_MODELS])
            return
        self._build_slots()
        self._submit()

    def _on_tap(self, x: float | None = None, y: float | None = None, **_: Any) -> None:
        if x is not None and y is not None and plot_to_pixel_index(x, y, self.clean.shape) != self.pixel:
            self.param.update(dict(zip(("row", "col"), plot_to_pixel_index(x, y, self.clean.shape))))

    def select(self, pixel: tuple[int, int]) -> None:
        """Select a pixel (row, col), as a click would."""
        self.param.update(row=int(pixel[0]), col=int(pixel[1]))

    # ------------------------------------------------------------------ computation (worker thread)
    def _submit(self) -> None:
        self._status.object = "Computing the filters…"
        self.task.submit(dict(noisy=self.noisy, noisy_id=self._noisy_id, pixel=self.pixel, crop=int(self.crop),
                              models=list(self.models), sigma=float(self.sigma), clean=self.clean,
                              posterior=bool(self.posterior), t0=time.perf_counter()))

    def _compute(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        y, pixel = req["noisy"], req["pixel"]
        out: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for name in req["models"]:
            if stop.is_set():
                return
            try:
                handle = get_handle(name)
                s_arg = _sigma_arg(handle, req["sigma"])
                key = (name, req["noisy_id"])
                if key not in self._denoise_cache:
                    den = handle.denoise(y, s_arg)
                    s_hat = float(handle.estimate_sigma(handle.to_tensor(y), s_arg)[0])
                    self._denoise_cache[key] = (np.asarray(den, dtype=np.float32), s_hat)
                den, s_hat = self._denoise_cache[key]
                filt = jacobian.row(handle, y, pixel, s_arg)[0].detach().to("cpu", torch.float32).numpy()
            except Exception as e:  # a model that cannot run here: show why, keep the others
                errors[name] = f"{type(e).__name__}: {e}"
                continue
            out[name] = dict(
                denoised=den, filter=filt, crop=centred_crop(filt, pixel, req["crop"]),
                row_sum=float(filt.sum(dtype=np.float64)), sigma_hat=s_hat,
                xhat_i=float(den[pixel]), inner=float(np.sum(filt.astype(np.float64) * y)),
                psnr=psnr(den, req["clean"]), blind=bool(getattr(handle, "blind", True)),
                bias_free=bool(getattr(handle, "bias_free", False)), classical=name.startswith("classical:"))
        publish(dict(req=req, results=out, errors=errors, seconds=time.perf_counter() - req["t0"]))
        if req["posterior"]:
            with self.task.then_in_background():  # the filters are shown: the maps do not hold other pages up
                self._posterior_maps(req, out, stop, publish)

    def _posterior_maps(self, req: dict[str, Any], out: dict[str, dict[str, Any]], stop: threading.Event,
                        publish: Callable[[Any], None]) -> None:
        """After the filters, each denoiser's posterior std map (once per noisy image), published one by one."""
        for name, r in out.items():
            if stop.is_set():
                return
            key = (name, req["noisy_id"])
            if key not in self._posterior_cache:
                try:
                    if req["sigma"] <= 0:
                        raise ValueError("σ = 0: the image is clean, the posterior has no spread")
                    handle = get_handle(name)
                    self._posterior_cache[key] = uncertainty(handle, req["noisy"], req["sigma"], _sigma_arg(handle, req["sigma"]),
                                                             r["denoised"], req["clean"])
                except Exception as e:  # e.g. a denoiser autograd cannot open
                    self._posterior_cache[key] = dict(failed=f"{type(e).__name__}: {e}")
            publish(dict(posterior=name, result=self._posterior_cache[key]))

    def _on_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"The filters could not be computed: {type(e).__name__}: {e}")
        notify(f"Filters failed: {e}")
        self._status.object = ""

    # ------------------------------------------------------------------ display (event loop)
    def _noisy_plot(self, data: np.ndarray) -> hv.Image:
        return gray_image(data, title="noisy y — click a pixel", size=260, tools=[], default_tools=[])

    def _build_slots(self) -> None:
        """One column per compared denoiser: x̂(y), the filter (full view and zoom) and its numbers."""
        h, w = self.clean.shape
        slots: dict[str, dict[str, Any]] = {}
        cols = []
        for name in self.models:
            empty = np.zeros((h, w), np.float32)
            n = 2 * int(self.crop) + 1
            s = dict(
                den=hv.streams.Pipe(data=empty),
                full=LiveImage((h, w), "filter aᵢ = row i of A", size=185, kind="diverging",
                               value_label="filter weight", marker_color="#111111", box_color=CROP_COLOR),
                crop=LiveImage((n, n), zoom_title(n), size=135, kind="diverging",
                               colorbar=True, value_label="filter weight"),
                text=pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 6), width=255),
            )
            den_dm = hv.DynamicMap(lambda data: gray_image(data, title="denoised x̂(y)", size=185, tools=[]),
                                   streams=[s["den"]])
            tap = hv.streams.Tap(source=den_dm, x=None, y=None)
            tap.add_subscriber(self._on_tap)
            s["tap"] = tap
            title = pn.pane.Markdown(f"#### {name}", margin=(0, 10))
            parts = [title, pn.pane.HoloViews(den_dm, linked_axes=False, margin=0), s["full"], s["crop"], s["text"]]
            if self.posterior:
                s["posterior"] = UncertaintyRow((h, w))
                parts.append(s["posterior"].layout)
            cols.append(pn.Column(*parts, width=262, margin=(0, 3)))
            slots[name] = s
        self._slots = slots
        self.columns[:] = cols

    def _render(self, payload: dict[str, Any]) -> None:
        if "posterior" in payload:
            name, u = payload["posterior"], payload["result"]
            if name in self._slots and "posterior" in self._slots[name] and name in self.results:
                self.results[name]["posterior"] = u
                row = self._slots[name]["posterior"]
                row.show_message(f"⚠️ no posterior map: {u['failed']}") if "failed" in u else row.show(u)
            return
        req, results, errors = payload["req"], payload["results"], payload["errors"]
        self.results, self.errors = results, errors
        shape = req["noisy"].shape
        with pn.io.hold():
            self._marker_pipe.send((req["pixel"], shape))
            for name, s in self._slots.items():
                if name in errors:
                    s["text"].object = f"⚠️ {name} failed here: {errors[name]}"
                    continue
                r = results.get(name)
                if r is None:
                    continue
                if s["den"].data is not r["denoised"]:  # unchanged by a click: skip the redraw
                    s["den"].send(r["denoised"])
                s["full"].update(r["filter"])
                s["full"].show_box(req["pixel"], req["crop"])
                s["full"].show_marker(req["pixel"])
                s["crop"].figure.title.text = zoom_title(r["crop"].shape[0])
                s["crop"].update(r["crop"])
                s["text"].object = self._numbers(r)
            i, j = req["pixel"]
            self._pixel_text.object = (f"**pixel i = (row {i}, col {j})** of {shape[0]}×{shape[1]} · "
                                       f"y_i = {req['noisy'][i, j]:.3f} · clean x_i = {req['clean'][i, j]:.3f}")
            self.last_click_seconds = payload["seconds"]
            self._status.object = f"Filters computed in {payload['seconds']:.2f} s."
            show_alert(self.alert_pane, "; ".join(f"{k}: {v}" for k, v in errors.items()))

    @staticmethod
    def _numbers(r: dict[str, Any]) -> str:
        lines = [f"**row sum** Σⱼ Aᵢⱼ = {r['row_sum']:.4f}",
                 f"x̂ᵢ = {r['xhat_i']:.4f} (denoised pixel) · ⟨aᵢ, y⟩ = {r['inner']:.4f} " + linearity_note(r),
                 f"σ̂ = {fmt_number(r['sigma_hat'])} (noise std from the residual, [0,1] units"
                 + ("; held fixed in the filter: a classical method analysed at a fixed σ)" if r["classical"] else ")"),
                 f"PSNR(x̂, x) = {fmt_number(r['psnr'])} dB"]
        return "<br>".join(lines)

    # ------------------------------------------------------------------ downloads
    def png(self) -> io.BytesIO:
        panels: list[tuple] = [("noisy y", self.noisy)]
        for name, r in self.results.items():
            panels += [(f"{name}: x_hat", r["denoised"]), (f"{name}: filter", r["filter"], "diverging"),
                       (f"{name}: zoom", np.nan_to_num(r["crop"]), "diverging")]
        return png_bytes(panels, columns=4 if len(panels) > 1 else 1)

    def npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = dict(clean=self.clean, noisy=self.noisy, pixel=np.asarray(self.pixel))
        for k, (name, r) in enumerate(self.results.items()):
            for key in ("denoised", "filter", "crop"):
                arrays[f"model{k}_{key}"] = r[key]
            post = r.get("posterior") or {}
            if "std" in post:
                arrays[f"model{k}_posterior_std"] = post["std"]
        numbers = {n: {k: r[k] for k in ("row_sum", "sigma_hat", "xhat_i", "inner", "psnr")} for n, r in self.results.items()}
        for n, r in self.results.items():
            if "calibration" in (r.get("posterior") or {}):
                numbers[n]["posterior_within"] = {f"{k:g} std": v for k, v in (r["posterior"]["calibration"] or {}).items()}
        params = dict(sigma=self.sigma, seed=self.seed, pixel=self.pixel, crop=self.crop, image=self.source.label,
                      models=list(self.results), numbers=numbers)
        return npz_bytes(arrays, params)

    def basename(self) -> str:
        return f"filters_{self.source.label or 'image'}_sigma{self.sigma:g}_r{self.row}c{self.col}".replace(" ", "_")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        picker = pn.widgets.MultiChoice.from_param(self.param.models, name=f"Denoisers to compare (up to {MAX_MODELS})",
                                                   max_items=MAX_MODELS, **w)
        return pn.Column(
            picker, self.source, pn.pane.Markdown("**Noise**", margin=(10, 10, 0, 10)),
            pn.widgets.FloatSlider.from_param(self.param.sigma, name="σ (noise std, [0,1] units)", format="0.000", **w),
            bounded_input(self, "seed", "Noise seed", **w),
            pn.pane.Markdown("**Pixel** (or click an image)", margin=(10, 10, 0, 10)), self.pixel_inputs,
            pn.widgets.IntSlider.from_param(self.param.crop, name="Zoom half-width (pixels)", **w),
            pn.widgets.Checkbox.from_param(self.param.posterior, name="Posterior std map √(σ²Aᵢᵢ) and actual error"), **w)

    def main(self) -> pn.Column:
        self.task.bind()
        return pn.Column(
            self.alert_pane, pn.Row(pn.Column(self._noisy_pane, self._pixel_text, self._status, width=275, margin=0),
                                    self.columns, sizing_mode="stretch_width"),
            downloads(self.png, self.npz, self.basename),
            explanation(EXPLANATION + UNCERTAINTY_TEXT, title="Adaptive filters: the rows of the Jacobian"),
            sizing_mode="stretch_width")
