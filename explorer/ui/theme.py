"""The look of every Denoiser Explorer page: names, colours, sizes, and the one page template.

- :data:`APP_TITLE`, :data:`ACCENT`, :data:`HEADER`: the site name and header colours.
- :data:`IMAGE_SIZE_PX`, :data:`SIZES`, :data:`DIVERGING_CMAP`: default image frame width, the image
  sizes offered, the colour map of signed images.
- :func:`make_template` — the FastList page every app serves.
- :func:`limit_torch_threads` — the per-process thread setting every app makes at start.

Importing this module selects HoloViews' bokeh backend (every page draws with it) without ``hv.extension``,
which in a notebook would publish BokehJS from its CDN into the importing cell (a notebook loads it inline with
:func:`explorer.ui.notebook.notebook`), and silences bokeh's W-1005 warning (FIXED_SIZING_MODE), a false alarm
for figures sized by frame_width/frame_height.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend's renderer and plot options)
import panel as pn
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE

from .memory import release_memory_after_session

hv.Store.set_current_backend("bokeh")
# W-1005 is a false alarm here: every image figure is sized by its frame (HoloViews' frame_width and
# frame_height, explorer.ui.plots), so its outer width/height are left to bokeh, which still warns that a
# 'fixed' figure has no width. Silenced once for every page (a served log would repeat it per figure).
silence(FIXED_SIZING_MODE, True)

APP_TITLE = "Denoiser Explorer"
ACCENT = "#1f5f8b"
HEADER = "#0f3550"
IMAGE_SIZE_PX = 240  # default on-screen frame width of one image
SIZES = [32, 64, 128, 256]
DIVERGING_CMAP = "RdBu_r"
SIDEBAR_WIDTH = 330
RAW_CSS = """
.explorer-number { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.92em; }
.bk-panel-models-markup-HTML h4, .markdown h4 { margin-top: 0.2em; }
"""


def limit_torch_threads(n: int = 1) -> None:
    """Use ``n`` intra-op threads in this process (apps call it once at start).

    On a small shared machine torch's default (one thread per core) spin-waits against other
    processes and a 64×64 denoiser call can be 30× slower than on one thread.
    """
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def as_list(items: Sequence[Any] | Any) -> list[Any]:
    """A viewable or a list/tuple of viewables as a list."""
    return list(items) if isinstance(items, (list, tuple)) else [items]


def make_template(title: str, main: Sequence[Any] | Any, sidebar: Sequence[Any] | Any = (),
                  **kwargs: Any) -> pn.template.FastListTemplate:
    """The template of every tool: FastList layout, the explorer's header colours, ``title`` in the header.

    ``main`` and ``sidebar`` are a viewable or a list of viewables. On a served page it also arranges, once
    per session, that the memory the session leaves goes back to the system when it ends
    (:func:`explorer.ui.memory.release_memory_after_session`).
    """
    release_memory_after_session()
    opts: dict[str, Any] = dict(
        title=title,
        site=APP_TITLE,
        site_url="./",
        accent_base_color=ACCENT,
        header_background=HEADER,
        header_accent_base_color="#ffffff",
        theme_toggle=False,
        main_layout=None,
        sidebar_width=SIDEBAR_WIDTH,
        raw_css=[RAW_CSS],
    )
    opts.update(kwargs)
    return pn.template.FastListTemplate(main=as_list(main), sidebar=as_list(sidebar), **opts)
