"""ReportView: the property report of any denoiser in the explorer (issue #20).

Pick a model (catalog, registered, or classical), press Run: the lines of :mod:`explorer.properties`
appear one by one as :func:`explorer.report.measure` computes them, then the plots; the same report
downloads as one self-contained HTML file (:func:`explorer.report_html.render_html`) or as the JSON
that ``--write-card`` stores.
"""
from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import panel as pn
import param

from explorer.denoisers import ARCHITECTURES
from explorer.report import KEYS, Report, measure
from explorer.report_html import figures, lines_table, render_html
from explorer.scheduler import Priority

from .models import CLASSICAL, get_handle, model_names
from .tasks import LatestTask
from .text import alert, elapsed_text, explanation, notify, show_alert
from .toolview import ToolView

EXPLANATION = r"""
Each line measures one property a least-squares, **bias-free** denoiser has, on held-out images of the model's
training data (photographs that ship with scikit-image for natural-image models):
**homogeneity** \\(\hat x(\alpha y) = \alpha \hat x(y)\\) and **local linearity** \\(J(y)\,y = \hat x(y)\\)
(Mohan, Kadkhodaie et al., ICLR 2020); the **symmetry** of the Jacobian \\(A = \partial\hat x/\partial y\\)
(\\(\sigma^2 A = \mathrm{Cov}[x\mid y]\\) is a covariance); its **row sums** (each adaptive filter keeps the local mean);
the **effective dimension** \\(\mathrm{tr}\,A\\), which falls as \\(\sigma\\) grows (ICLR 2024); **PSNR** inside and beyond
the training range (a network with biases collapses beyond it); **blind noise estimation**
\\(\hat\sigma = \lVert y - \hat x(y)\rVert/\sqrt N\\); whether **Algorithm 1** converges; and the **posterior calibration**
of \\(\sqrt{\sigma^2 A_{ii}}\\). *pass* / *fail* compare with the ideal; *note* is a number with no pass/fail meaning
for this denoiser. Each line's command regenerates it: `python -m explorer.report MODEL --only LINE`.
"""


def command_name(name: str, handle: Any) -> str:
    """The name ``python -m explorer.report`` takes for a picker entry (``classical:KEY`` for classical ones)."""
    if name in CLASSICAL:
        key = next((k for k, cls in ARCHITECTURES.items() if cls is type(handle.model)), None)
        return f"classical:{key}" if key else name
    return name


class ReportView(ToolView):
    """The report page. ``model`` is the picker name; ``run()`` measures (inline outside a server);
    ``report`` is the last (or partial) :class:`~explorer.report.Report`; ``html()`` / ``json()`` the downloads."""

    title = "Property report"

    model = param.Selector(default=None, objects=[], doc="The denoiser reported on")

    def __init__(self, model: str | None = None, **params: Any):
        names = model_names()
        super().__init__(**params)
        self.param.model.objects = names + ([model] if model and model not in names else [])
        self.model = model or (names[0] if names else None)
        self.report: Report | None = None
        self.card: dict[str, Any] = {}
        sw = dict(sizing_mode="stretch_width")
        self.alert_pane = alert()
        self._status = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._progress = pn.indicators.Progress(value=0, max=len(KEYS), height=12, margin=(4, 5), **sw)
        self._table = pn.pane.HTML("", margin=(0, 10), styles={"font-size": "0.9em"}, **sw)
        self._plots = pn.FlexBox(margin=(0, 5), **sw)
        self._run_button = pn.widgets.Button(label="▶ Run the report", color="primary", **sw)
        self._run_button.on_click(lambda _e: self.run())
        self._html_download = pn.widgets.FileDownload(callback=self.html, filename="report.html", color="default",
                                                      label="⬇ HTML report (self-contained)", width=260, embed=False)
        self._json_download = pn.widgets.FileDownload(callback=self.json, filename="report.json", color="default",
                                                      label="⬇ JSON (card entry)", width=200, embed=False)
        self.task = LatestTask(self._compute, self._render, self._on_error, name="report", priority=Priority.BULK)

    # ------------------------------------------------------------------ work
    def run(self) -> None:
        """Measure every line for the chosen model (replacing a run in progress)."""
        if self.model is None:
            show_alert(self.alert_pane, "No model to report on.")
            return
        self._status.object = f"Loading {self.model}…"
        self._progress.value = 0
        self._table.object, self._plots[:] = "", []
        self._run_button.disabled = True
        self.task.submit(dict(model=self.model))

    def _compute(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        handle = get_handle(req["model"])
        card = dict(getattr(handle, "card", None) or {})
        name = command_name(req["model"], handle)
        report = measure(handle, card, name, progress=lambda r: publish(dict(report=r, card=card, done=False))
                         if not stop.is_set() else None)
        if not stop.is_set():
            publish(dict(report=report, card=card, done=True, figures=figures(report)))

    def _on_error(self, e: BaseException) -> None:
        show_alert(self.alert_pane, f"The report could not be made: {type(e).__name__}: {e}")
        notify(f"Report failed: {e}")
        self._status.object = ""
        self._run_button.disabled = False

    def _render(self, payload: dict[str, Any]) -> None:
        report = payload["report"]
        self.report, self.card = report, payload["card"]
        measured = len({p.key for p in report.lines if p.key in KEYS})
        self._progress.value = measured
        self._table.object = lines_table(report)
        flags = [p.flag for p in report.lines]
        self._status.object = (f"**{report.model}**: {measured} of {len(KEYS)} measurements, {flags.count('pass')} pass, "
                               f"{flags.count('fail')} fail, {flags.count('note')} notes · {elapsed_text(report.seconds)}"
                               + ("" if payload["done"] else " · measuring…"))
        if payload["done"]:
            self._plots[:] = [pn.pane.PNG(io.BytesIO(png), width=460 if key != "calibration" else 900, margin=4)
                              for key, png in payload["figures"].items()]
            self._run_button.disabled = False
            self._html_download.filename, self._json_download.filename = self.basename() + ".html", self.basename() + ".json"
            show_alert(self.alert_pane, "")

    @property
    def shown(self) -> SimpleNamespace:
        """What the page shows: ``status``, ``table`` (HTML), ``measured`` (of ``len(KEYS)``), ``plots`` (count),
        ``run_enabled``, ``alert`` (text, '' when hidden) and the download ``filenames``."""
        return SimpleNamespace(status=self._status.object, table=self._table.object, measured=self._progress.value,
                               plots=len(self._plots), run_enabled=not self._run_button.disabled,
                               alert=self.alert_pane.object if self.alert_pane.visible else "",
                               filenames=(self._html_download.filename, self._json_download.filename))

    # ------------------------------------------------------------------ downloads
    def html(self) -> io.StringIO:
        return io.StringIO(render_html(self.report, self.card) if self.report else "")

    def json(self) -> io.StringIO:
        return io.StringIO(json.dumps(self.report.as_card_entry() if self.report else {}, indent=1, ensure_ascii=False))

    def basename(self) -> str:
        return f"report_{(self.report.model if self.report else self.model or 'model')}".replace(" ", "_").replace(":", "-")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(pn.widgets.Select.from_param(self.param.model, name="Denoiser", **sw), self._run_button,
                         self._progress, **sw)

    def main(self) -> pn.Column:
        self.task.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(self.alert_pane, self._status, self._table, self._plots,
                         pn.Row(self._html_download, self._json_download),
                         explanation(EXPLANATION, title="What the report measures"), **sw)
