"""Words on the page: Markdown with LaTeX, explanation cards, alerts and toasts, numbers and durations.

- :func:`tex` / :func:`explanation` — Markdown whose ``$…$`` math MathJax renders; a card of it.
- :func:`alert` / :func:`show_alert` / :func:`notify` — visible error messages that leave the
  session usable (an inline alert, or a toast).
- :func:`fmt_number`, :func:`elapsed_text` — compact numbers and durations for labels.
"""
from __future__ import annotations

import re

import numpy as np
import panel as pn

_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)", re.S)


def tex(markdown: str) -> str:
    """Markdown with inline ``$…$`` math rewritten as ``\\(…\\)``, the inline delimiter the page's MathJax
    recognises (``$$…$$`` display math is left alone). Apps need ``pn.extension("mathjax")``."""
    return _INLINE_MATH.sub(lambda m: "\\\\(" + m.group(1) + "\\\\)", markdown)


def explanation(markdown: str, title: str = "What am I looking at?", collapsed: bool = False) -> pn.Card:
    """A card with a short explanation; LaTeX between $…$ / $$…$$ is rendered by MathJax (see :func:`tex`)."""
    body = pn.pane.Markdown(tex(markdown), sizing_mode="stretch_width")
    return pn.Card(body, title=title, collapsed=collapsed, sizing_mode="stretch_width",
                   header_background="#eef3f7", margin=(5, 5))


def alert(kind: str = "danger") -> pn.pane.Alert:
    """A hidden alert; show a message with ``show_alert(a, text)``."""
    return pn.pane.Alert("", alert_type=kind, visible=False, sizing_mode="stretch_width")


def show_alert(pane: pn.pane.Alert, text: str) -> None:
    """Show ``text`` in an alert (hide it when ``text`` is empty)."""
    pane.object = text
    pane.visible = bool(text)


def notify(message: str, kind: str = "error", duration: int = 6000) -> None:
    """A toast notification when the page supports them (never raises)."""
    try:
        if pn.state.curdoc is not None and pn.state.notifications is not None:
            getattr(pn.state.notifications, kind)(message, duration=duration)
    except Exception:
        pass


def fmt_number(value: float, digits: int = 3) -> str:
    """A compact number for labels: 0.0831, 27.4, 1.2e-05."""
    if value is None or not np.isfinite(value):
        return "—" if value is None or np.isnan(value) else ("∞" if value > 0 else "−∞")
    return f"{value:.{digits}g}"


def elapsed_text(seconds: float) -> str:
    """A duration for a status line: '12.3 s', or '4.5 min' from two minutes on."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
