"""DecompositionView: denoising as a multiscale decomposition, for two denoisers side by side.

For any denoiser f, x = fⁿ(x) + Σ_{k<n} r_k with r_k = f^k(x) − f^{k+1}(x) (Milanfar & Delbracio, 2024;
:mod:`explorer.decomposition`). Each row shows one denoiser's layers r_0 … r_{n−1} in one symmetric
diverging range, its base fⁿ(x) in gray [0, 1] and the exactness ‖fⁿ(x) + Σ r_k − x‖/‖x‖; one plot shows
the layers' energies ‖r_k‖²/N of both against k. The work (:func:`~explorer.ui.decomposition_state.compute`)
runs on the worker thread; any change of the image, the denoisers, n or σ starts it again.
"""
from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

import explorer

from .controls import bounded_input
from .decomposition_state import (LABELS, Row, compute, exactness_text, layer_title, npz_arrays, npz_params,
                                  png_panels, power, strength_text)
from .export import downloads, npz_bytes, png_bytes
from .models import ModelPicker, model_names
from .plots import CHAIN_COLORS, diverging_image, gray_image
from .sources import ImageSource
from .tasks import LatestTask
from .text import alert, elapsed_text, explanation, fmt_number, notify, show_alert, tex
from .theme import ACCENT
from .toolview import ToolView

DEFAULT_CLASSICAL = "classical: non-local means"
ROW_COLORS = (ACCENT, CHAIN_COLORS[1])
EXPLANATION = r"""
Apply a denoiser $f$ again and again: $x, f(x), f^2(x), \dots, f^n(x)$. What each application removes is a
**layer** $r_k = f^k(x) - f^{k+1}(x)$, and the layers and the last image, the **base** $f^n(x)$, add back up to
the image exactly, for *any* denoiser, linear or not (the sum telescopes):

$$x = f^n(x) + \sum_{k=0}^{n-1} r_k, \qquad r_k = f^k(x) - f^{k+1}(x).$$

So every denoiser is a multiscale decomposition, a non-decimated pyramid whose bands the denoiser chooses
(Milanfar & Delbracio, *Denoising: a powerful building-block for imaging, inverse problems and machine
learning*, 2024). For a linear filter $f = G$ the layers are $r_k = G^k (I - G)\,x$: for Gaussian smoothing of
fixed width, differences of Gaussians, finer to coarser; an adaptive denoiser picks its layers from the image.
The plot shows each layer's **energy** $\lVert r_k\rVert^2/N$ ($N$ pixels): how fast it falls says how close $f$
is to a projection ($f(f(x)) = f(x)$ gives $r_1 = r_2 = \dots = 0$).

**σ.** A *blind* denoiser (every network here, and the classical ones by default) is told nothing: at each
application it estimates the noise level of its own input, so on a clean image it removes little, and less
each time. A non-blind one (BM3D) is told σ at every application. **Fixed strength** tells every denoiser that
takes σ (the classical ones) the same σ each time, so it stays one fixed filter and keeps smoothing: a scale
space. A blind network has no σ input and is unchanged.

**Exactness.** The number under each row is $\lVert f^n(x) + \sum_k r_k - x\rVert/\lVert x\rVert$, with the layers
and the sum in float64: 0 up to float64 rounding, whatever the denoiser does.
"""


class DecompositionView(ToolView):
    """x = fⁿ(x) + Σ r_k for two denoisers (pickers ``picker_a``, ``picker_b``) on the ``source`` image.

    Parameters: ``n`` (applications), ``sigma`` (what a non-blind, or with ``fixed_strength`` every, denoiser is
    told). Results: ``rows`` (one :class:`~explorer.ui.decomposition_state.Row` per denoiser, in order). What
    the page shows: :attr:`shown`. Downloads: :meth:`png`, :meth:`npz`, :meth:`basename`.
    """

    title = "Multiscale decomposition"

    n = param.Integer(default=4, bounds=(1, 8), doc="n: how many times the denoiser is applied (the layers)")
    sigma = param.Number(default=0.1, bounds=(0.0, 0.5), step=0.01,
                         doc="σ told to a non-blind denoiser (and to every one with a fixed strength), [0,1] units")
    fixed_strength = param.Boolean(default=False, doc="Tell every denoiser that takes σ the same σ at each application")

    def __init__(self, models: tuple[str, str] | None = None, image_source: ImageSource | None = None, **params: Any):
        super().__init__(**params)
        names = model_names()
        first = explorer.DEFAULT_MODEL if explorer.DEFAULT_MODEL in names else (names[0] if names else None)
        a, b = models or (first, DEFAULT_CLASSICAL)
        self.picker_a, self.picker_b = ModelPicker(model=a), ModelPicker(model=b)
        self.source = image_source or ImageSource(sizes=[32, 64, 128])
        self.rows: list[Row | None] = [None, None]
        self.request: dict[str, Any] = {}
        sw = dict(sizing_mode="stretch_width")
        self.alert_pane = alert()
        self._status = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._progress = pn.indicators.Progress(value=0, max=1, height=12, margin=(4, 5), **sw)
        self._stop_button = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self._stop_button.on_click(lambda _e: self.stop())
        self._row_panes = [pn.Column(margin=(0, 0, 10, 0), **sw) for _ in LABELS]
        self._image_pane = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False)
        self._energy_pane = pn.pane.HoloViews(None, margin=(0, 5), linked_axes=False, **sw)
        self._shown_rows: list[SimpleNamespace | None] = [None, None]
        self.task = LatestTask(compute, self._render, self._on_error, name="decomposition")
        for picker in (self.picker_a, self.picker_b):
            picker.param.watch(lambda _e: self.submit(), "model")
        self.source.param.watch(lambda _e: self.submit(), "image")
        self.submit()

    # ------------------------------------------------------------------ work
    @param.depends("n", "sigma", "fixed_strength", watch=True)
    def submit(self) -> None:
        """Decompose the image with both denoisers (superseding a computation in progress)."""
        if self.source.image is None:
            return
        self.request = dict(image=self.source.image, models=[self.picker_a.model, self.picker_b.model], n=int(self.n),
                            sigma=float(self.sigma), fixed=bool(self.fixed_strength), label=self.source.label)
        self.rows = [None, None]
        self._progress.max, self._progress.value = 2 * int(self.n), 0
        self._status.object = f"Applying each denoiser {self.n} times…"
        self._stop_button.disabled = False
        self.task.submit(self.request)

    def stop(self) -> None:
        """Stop after the application in progress; the rows computed so far stay."""
        self.task.cancel()
        self._stop_button.disabled = True
        self._status.object = "Stopped."

    def _on_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"The decomposition could not be computed: {type(e).__name__}: {e}")
        notify(f"Decomposition failed: {e}")
        self._stop_button.disabled = True
        self._status.object = ""

    # ------------------------------------------------------------------ display (event loop)
    def _render(self, payload: dict[str, Any]) -> None:
        if "progress" in payload:
            self._progress.value = payload["progress"][0]
            return
        if "row" in payload:
            i, row = payload["row"], payload["result"]
            self.rows[i] = row
            with pn.io.hold():
                self._show_row(i, row)
                self._show_energies()
                self._image_pane.object = gray_image(self.request["image"], "x, the image decomposed", size=220)
            return
        self._stop_button.disabled = True
        ok = [r for r in self.rows if r is not None and r.decomposition is not None]
        times = ", ".join(f"{r.name} {elapsed_text(r.seconds)}" for r in self.rows if r is not None)
        self._status.object = f"Decomposed in {elapsed_text(payload['done'])} ({times})."
        errors = [f"{label} ({r.name}): {r.error}" for label, r in zip(LABELS, self.rows) if r is not None and r.error]
        show_alert(self.alert_pane, "<br>".join(f"Could not decompose with {e}" for e in errors))
        for picker in (self.picker_a, self.picker_b):
            _ = picker.handle  # the line about each loaded model under its picker
        if not ok:
            self._status.object += " Neither denoiser ran: see the messages above."

    def _image_size(self) -> int:
        return int(np.clip(1000 // (self.request["n"] + 1) - 30, 78, 180))

    def _show_row(self, i: int, row: Row) -> None:
        heading = pn.pane.Markdown(f"#### {LABELS[i]} · {row.name}", margin=(0, 10))
        if row.decomposition is None:
            self._row_panes[i][:] = [heading, pn.pane.Alert(f"⚠️ {row.name} could not decompose this image: "
                                                            f"{row.error}", alert_type="warning")]
            self._shown_rows[i] = SimpleNamespace(name=row.name, layers=[], layer_titles=[], clim=None, base=None,
                                                  exactness="", text="", error=row.error)
            return
        d, size = row.decomposition, self._image_size()
        vmax = float(np.abs(d.layers).max()) or 1.0
        opts = dict(size=size, fontsize={"title": "9pt"})
        layers = [diverging_image(r, layer_title(k), vmax=vmax, colorbar=k == d.n - 1, clabel="",
                                  **opts).redim.label(value="r_k")
                  for k, r in enumerate(d.layers)]
        base = gray_image(d.base, f"base {power(d.n)}", **opts).redim.label(value=power(d.n))
        figure = hv.Layout([*layers, base]).cols(d.n + 1).opts(toolbar=None, shared_axes=False)
        caption = (f"{strength_text(row)} · layers $r_k = f^k(x) - f^{{k+1}}(x)$ in one range ±{fmt_number(vmax, 2)} "
                   f"(red > 0 > blue), base $f^{{{d.n}}}(x)$ in gray [0, 1]")
        exact = exactness_text(d)
        self._row_panes[i][:] = [heading, pn.pane.Markdown(tex(caption), margin=(0, 10), styles={"color": "#555"}),
                                 pn.pane.HoloViews(figure, linked_axes=False, margin=(0, 5)),
                                 pn.pane.Markdown(exact, css_classes=["explorer-number"], margin=(0, 10))]
        self._shown_rows[i] = SimpleNamespace(
            name=row.name, layers=[el.data for el in layers], layer_titles=[layer_title(k) for k in range(d.n)],
            clim=tuple(layers[0].opts.get().kwargs["clim"]), base=base.data,
            base_clim=tuple(base.opts.get().kwargs["clim"]), exactness=exact, text=caption, error="")

    def _show_energies(self) -> None:
        curves = []
        for label, row, color in zip(LABELS, self.rows, ROW_COLORS):
            if row is None or row.decomposition is None:
                continue
            e = row.decomposition.energies
            ks, name = np.arange(len(e)), f"{label}: {row.name}"
            curves += [hv.Curve((ks, e), "k", "energy", label=name).opts(color=color, line_width=2),
                       hv.Scatter((ks, e), "k", "energy", label=name).opts(color=color, size=7)]
        if not curves:
            self._energy_pane.object = None
            return
        n = self.request["n"]
        self._energy_pane.object = hv.Overlay(curves).opts(
            logy=True, xlabel="layer k", ylabel="energy ‖r_k‖²/N (log scale)", title="Energy of each layer",
            xticks=list(range(n)), xlim=(-0.3, n - 0.7), show_grid=True, legend_position="right",
            responsive=True, min_height=260, toolbar=None, tools=["hover"])

    @property
    def shown(self) -> SimpleNamespace:
        """What the page shows: ``status``, ``alert`` ('' when hidden), ``progress`` (done, total), ``running``
        (the Stop button is live), ``rows`` (per denoiser: ``name``, ``layers`` and ``layer_titles``, their
        ``clim``, ``base`` and ``base_clim``, ``exactness``, ``text``, ``error``; None before it is computed) and
        ``energies`` (the plot: ``curves`` as {label: (k, energy)}, ``logy``, ``xlabel``, ``ylabel``)."""
        plot = self._energy_pane.object
        curves = {} if plot is None else {c.label: (c.dimension_values(0), c.dimension_values(1))
                                          for c in plot if isinstance(c, hv.Curve)}
        kw = {} if plot is None else plot.opts.get().kwargs
        return SimpleNamespace(
            status=self._status.object, alert=self.alert_pane.object if self.alert_pane.visible else "",
            progress=(self._progress.value, self._progress.max), running=not self._stop_button.disabled,
            rows=list(self._shown_rows), energies=SimpleNamespace(curves=curves, logy=kw.get("logy", False),
                                                                 xlabel=kw.get("xlabel"), ylabel=kw.get("ylabel")))

    # ------------------------------------------------------------------ downloads
    def _done_rows(self) -> list[Row]:
        return [r for r in self.rows if r is not None]

    def png(self) -> io.BytesIO:
        return png_bytes(png_panels(self._done_rows()), columns=int(self.request.get("n", self.n)) + 1)

    def npz(self) -> io.BytesIO:
        req = self.request
        params = dict(n=req.get("n"), sigma=req.get("sigma"), fixed_strength=req.get("fixed"), image=req.get("label"))
        return npz_bytes(npz_arrays(req.get("image"), self._done_rows()), npz_params(self._done_rows(), **params))

    def basename(self) -> str:
        return f"decomposition_{self.source.label or 'image'}_n{self.n}".replace(" ", "_").replace("#", "")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        sw = dict(sizing_mode="stretch_width")
        head = lambda text: pn.pane.Markdown(f"**{text}**", margin=(10, 10, 0, 10))  # noqa: E731
        return pn.Column(
            head("Denoiser A"), self.picker_a, head("Denoiser B"), self.picker_b, self.source,
            head("Decomposition"), bounded_input(self, "n", "n, applications of f", **sw),
            pn.widgets.FloatSlider.from_param(self.param.sigma, name="σ told (non-blind, or fixed strength)",
                                              format="0.00", **sw),
            pn.widgets.Checkbox.from_param(self.param.fixed_strength, name="Fixed strength: tell every denoiser σ"),
            pn.Row(self._stop_button, self._progress, **sw), **sw)

    def main(self) -> pn.Column:
        self.task.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(self.alert_pane, self._status, *self._row_panes,
                         pn.Row(self._image_pane, self._energy_pane, **sw),
                         downloads(self.png, self.npz, self.basename),
                         explanation(EXPLANATION, title="Denoising as a multiscale decomposition"), **sw)
