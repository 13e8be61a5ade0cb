"""The layout every tool shares: :class:`ToolView`, a sidebar of controls beside the main area.

A tool subclasses :class:`ToolView`, sets ``title`` (the page header) and implements ``sidebar()``
and ``main()``; it is then shown inline (``__panel__``: in a notebook, or inside the all-tools app)
or as a full page (:meth:`ToolView.template`, what ``apps/*.py`` serve).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import panel as pn

from .theme import APP_TITLE, SIDEBAR_WIDTH, as_list, make_template


class ToolView(pn.viewable.Viewer):
    """A tool: ``sidebar()`` (controls, :data:`~explorer.ui.theme.SIDEBAR_WIDTH` wide) beside ``main()``.

    Each returns a viewable or a list of viewables. ``__panel__`` lays them out in a row;
    :meth:`template` puts them in the page template with ``title`` in the header.
    """

    title: str = APP_TITLE  # the page header of the tool

    def sidebar(self) -> pn.viewable.Viewable | Sequence[Any]:
        """The tool's controls (implemented by each tool)."""
        raise NotImplementedError(f"{type(self).__name__} must define sidebar()")

    def main(self) -> pn.viewable.Viewable | Sequence[Any]:
        """The tool's figures (implemented by each tool)."""
        raise NotImplementedError(f"{type(self).__name__} must define main()")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(pn.Column(*as_list(self.sidebar()), width=SIDEBAR_WIDTH), *as_list(self.main()),
                      sizing_mode="stretch_width")

    def template(self) -> pn.template.FastListTemplate:
        """The tool as a full page (what ``apps/*.py`` serve)."""
        return make_template(self.title, self.main(), self.sidebar())
