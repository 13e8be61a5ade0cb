"""Reusable widgets that drive a tool: :class:`RunControls` (Step / Play / Pause / Reset, progress, status),
:func:`bounded_input` (a number field that clamps visibly) and :class:`CopyLink` (the "copy link" button)."""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import panel as pn
import param

from .text import notify


class RunControls(pn.viewable.Viewer):
    """Step / Play / Pause / Reset buttons with a progress bar and a status line.

    The owner registers handlers with :meth:`on` (``"step"``, ``"play"``, ``"pause"``, ``"reset"``) and
    sets ``running`` (disables Step/Play, enables Pause), ``progress`` (0–100, or −1 for an
    indeterminate bar) and ``status``. Clicks are counted in the ``*_clicks`` parameters, so tests
    and notebooks can press a button with ``controls.step_clicks += 1``.
    """

    step_clicks = param.Integer(default=0)
    play_clicks = param.Integer(default=0)
    pause_clicks = param.Integer(default=0)
    reset_clicks = param.Integer(default=0)
    running = param.Boolean(default=False)
    progress = param.Integer(default=0, bounds=(-1, 100))
    status = param.String(default="Ready.")
    play_label = param.String(default="▶ Play")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self._handlers: dict[str, list[Callable[[], Any]]] = {k: [] for k in ("step", "play", "pause", "reset")}
        kw = dict(sizing_mode="stretch_width", min_width=60, margin=(5, 3))
        self.step_button = pn.widgets.Button(label="Step", color="primary", variant="outline", **kw)
        self.play_button = pn.widgets.Button(label=self.play_label, color="primary", **kw)
        self.pause_button = pn.widgets.Button(label="❚❚ Pause", color="warning", disabled=True, **kw)
        self.reset_button = pn.widgets.Button(label="Reset", color="light", **kw)
        for kind, button in (("step", self.step_button), ("play", self.play_button),
                             ("pause", self.pause_button), ("reset", self.reset_button)):
            button.on_click(lambda _e, k=kind: setattr(self, f"{k}_clicks", getattr(self, f"{k}_clicks") + 1))
        self._bar = pn.indicators.Progress(value=0, max=100, bar_color="primary", sizing_mode="stretch_width",
                                           height=12, margin=(4, 5))
        self._status = pn.pane.Markdown(self.status, sizing_mode="stretch_width", margin=(0, 8),
                                        css_classes=["explorer-status"])
        self._sync()

    def on(self, kind: str, handler: Callable[[], Any]) -> None:
        """Call ``handler()`` when the ``kind`` button is pressed."""
        self._handlers[kind].append(handler)

    def _fire(self, kind: str) -> None:
        for handler in self._handlers[kind]:
            try:
                handler()
            except Exception as e:  # never let a click kill the session
                self.status = f"⚠️ {type(e).__name__}: {e}"
                notify(f"{kind.capitalize()} failed: {e}")
                traceback.print_exc()

    @param.depends("step_clicks", watch=True)
    def _on_step(self) -> None:
        self._fire("step")

    @param.depends("play_clicks", watch=True)
    def _on_play(self) -> None:
        self._fire("play")

    @param.depends("pause_clicks", watch=True)
    def _on_pause(self) -> None:
        self._fire("pause")

    @param.depends("reset_clicks", watch=True)
    def _on_reset(self) -> None:
        self._fire("reset")

    @param.depends("running", "progress", "status", "play_label", watch=True)
    def _sync(self) -> None:
        self.step_button.disabled = self.running
        self.play_button.disabled = self.running
        self.play_button.label = self.play_label
        self.pause_button.disabled = not self.running
        self._bar.value = -1 if self.progress < 0 else int(self.progress)
        self._bar.active = self.running
        self._status.object = self.status

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.step_button, self.play_button, self.pause_button, self.reset_button, sizing_mode="stretch_width"),
            self._bar, self._status, sizing_mode="stretch_width", margin=0)


def _range_text(low: float | None, high: float | None) -> str:
    fmt = lambda v: f"{v:g}" if isinstance(v, float) else f"{v}"  # noqa: E731
    if low is not None and high is not None:
        return f"{fmt(low)}–{fmt(high)}"
    return f"≥ {fmt(low)}" if low is not None else f"≤ {fmt(high)}"


def bounded_input(owner: param.Parameterized, name: str, label: str | None = None, **widget_params: Any) -> pn.widgets.Widget:
    """A number field for the bounded parameter ``owner.<name>`` that never disagrees with the state.

    Its label states the valid range ("Seed (0–99999)"). A typed value inside the range sets the
    parameter; one outside is clamped *visibly*: the field turns to the nearest valid value, the parameter
    gets that value, and a toast says what happened. (A plain ``from_param`` field keeps showing a refused
    value while the parameter keeps the old one.) Changes of the parameter show in the field.
    """
    p = owner.param[name]
    low, high = p.bounds if p.bounds is not None else (None, None)
    integer = isinstance(p, param.Integer)
    title = label or p.label or name
    if low is not None or high is not None:
        title = f"{title} ({_range_text(low, high)})"
    kind = pn.widgets.IntInput if integer else pn.widgets.FloatInput
    widget = kind(label=title, value=getattr(owner, name), **widget_params)

    def clamp(value: Any) -> Any:
        if value is None:
            return getattr(owner, name)
        v = int(round(value)) if integer else float(value)
        if low is not None and v < low:
            v = low
        if high is not None and v > high:
            v = high
        return v

    def typed(event: param.parameterized.Event) -> None:
        value = clamp(event.new)
        if value != event.new:
            notify(f"{title.split(' (')[0]} must be in {_range_text(low, high)}: {event.new} was set to {value}.", kind="warning")
            widget.value = value  # the field shows what the state holds
        setattr(owner, name, value)

    widget.param.watch(typed, "value")
    owner.param.watch(lambda e: setattr(widget, "value", e.new), name)
    return widget


#: What the copy-link button runs in the browser: the page's address (every setting of the tool is in its query,
#: see :mod:`explorer.ui.links`) to the clipboard; where the browser refuses (no permission, an insecure origin,
#: some headless browsers), the address is shown in ``field`` to copy by hand.
COPY_LINK_JS = """
const url = window.location.href
const by_hand = () => { field.value = url; field.visible = true }
if (navigator.clipboard && navigator.clipboard.writeText) {
  navigator.clipboard.writeText(url).then(() => {
    button.label = "✓ Link copied"
    setTimeout(() => { button.label = LABEL }, 2000)
  }, by_hand)
} else {
  by_hand()
}
"""


class CopyLink(pn.viewable.Viewer):
    """A "Copy link" button for the address of the view shown, and what a link could not restore.

    ``button`` copies ``window.location.href`` (in the browser: no round trip to the server); if the clipboard
    is refused, ``field`` appears with the address to copy by hand. ``note_pane`` says which values of the
    link that opened the page were clamped or ignored (:meth:`show_note`).
    """

    LABEL = "Copy link"

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.button = pn.widgets.Button(label=self.LABEL, color="primary", variant="outline", sizing_mode="stretch_width",
                                        description="Copy the address of this view: it reopens the same model, "
                                                    "image and settings (seed included)")
        self.field = pn.widgets.TextInput(label="Link to this view (copy it by hand)", visible=False,
                                          sizing_mode="stretch_width")
        self.note_pane = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.button.js_on_click(args=dict(field=self.field, button=self.button),
                                code=COPY_LINK_JS.replace("LABEL", repr(self.LABEL)))

    def show_note(self, messages: list[str]) -> None:
        """Say what the opening link held that could not be used (hidden when ``messages`` is empty)."""
        self.note_pane.object = "**This link was partly used.** " + " ".join(messages) if messages else ""
        self.note_pane.visible = bool(messages)
        if messages:
            notify(" ".join(messages), kind="warning")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.button, self.field, self.note_pane, sizing_mode="stretch_width", margin=0)
