"""The layout every tool shares: :class:`ToolView`, a sidebar of controls beside the main area.

A tool subclasses :class:`ToolView`, sets ``title`` (the page header) and implements ``sidebar()``
and ``main()``; it is then shown inline (``__panel__``: in a notebook, or inside the all-tools app)
or as a full page (:meth:`ToolView.template`, what ``apps/*.py`` serve).

One view object is shown in one place at a time: its live images are bokeh figures, and a bokeh model
belongs to one document, so two outputs of one view (two notebook cells showing it) would fight over them
(updates for models the other page never saw: ``TypeError: s is not iterable`` in the browser, a pane that
stops updating). Displaying a view again therefore *moves* it: the earlier output is replaced by
:data:`MOVED_MESSAGE`, the new one works (re-running a notebook cell that shows the view does just this).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import panel as pn

from .controls import CopyLink
from .theme import APP_TITLE, SIDEBAR_WIDTH, as_list, make_template

#: The least width of a tool's main area beside its sidebar: in a narrower output (a notebook cell) the main
#: area wraps below the sidebar and takes the whole width, instead of running out of the cell.
MAIN_MIN_WIDTH = 800
#: What an earlier output of a view shows once the view has been displayed again elsewhere ({name}: its class).
MOVED_MESSAGE = ("**This view is now shown in a later output.** A view is shown in one place at a time "
                 "(its live images can only be drawn once): displaying it again moves it there. "
                 "To see two, make a second one, e.g. `{name}()`.")


class ToolView(pn.viewable.Viewer):
    """A tool: ``sidebar()`` (controls, :data:`~explorer.ui.theme.SIDEBAR_WIDTH` wide) beside ``main()``.

    Each returns a viewable or a list of viewables. ``__panel__`` lays them out in a row that wraps the main
    area below the sidebar when it would be narrower than :data:`MAIN_MIN_WIDTH` (and empties the row it
    made before, leaving :data:`MOVED_MESSAGE` there); :meth:`template` puts them in the page
    template with ``title`` in the header and the "copy link" button (:attr:`link_box`) above the controls.
    """

    title: str = APP_TITLE  # the page header of the tool
    _shown: pn.FlexBox | None = None  # the layout of the latest ``__panel__``
    _link_box: CopyLink | None = None
    _batch_depth: int = 0  # nesting of batched_changes blocks (an instance attribute once one is entered)
    _pending_rebuilds: dict[str, Callable[[], None]] = {}  # replaced per instance by batched_changes

    @property
    def link_box(self) -> CopyLink:
        """The page's "Copy link" button and its note on the link that opened it (made on first use)."""
        if self._link_box is None:
            self._link_box = CopyLink()
        return self._link_box

    def sidebar(self) -> pn.viewable.Viewable | Sequence[Any]:
        """The tool's controls (implemented by each tool)."""
        raise NotImplementedError(f"{type(self).__name__} must define sidebar()")

    def main(self) -> pn.viewable.Viewable | Sequence[Any]:
        """The tool's figures (implemented by each tool)."""
        raise NotImplementedError(f"{type(self).__name__} must define main()")

    def __panel__(self) -> pn.viewable.Viewable:
        if self._shown is not None:  # shown before: that output lets go of the view and says where it went
            moved = MOVED_MESSAGE.format(name=type(self).__name__)
            self._shown[:] = [pn.pane.Alert(moved, alert_type="info", sizing_mode="stretch_width")]
        main = pn.Column(*as_list(self.main()), sizing_mode="stretch_width", margin=0,
                         styles={"flex": f"1 1 {MAIN_MIN_WIDTH}px"})
        self._shown = pn.FlexBox(pn.Column(*as_list(self.sidebar()), width=SIDEBAR_WIDTH), main,
                                 flex_wrap="wrap", sizing_mode="stretch_width")
        return self._shown

    @contextmanager
    def batched_changes(self) -> Iterator[None]:
        """Inside, a settings change that rebuilds the view (:meth:`_rebuild`) is done once, when the outermost
        block ends: a link that restores five settings sets up one sampler, not five (re-entrant)."""
        if self._batch_depth == 0:
            self._pending_rebuilds = {}
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                for rebuild in self._pending_rebuilds.values():
                    rebuild()

    def _rebuild(self, rebuild: Callable[[], None]) -> None:
        """Call ``rebuild`` (what a settings change costs the view) now, or once at the end of
        :meth:`batched_changes` if inside one (in the order first asked for)."""
        if self._batch_depth:
            self._pending_rebuilds.setdefault(rebuild.__name__, rebuild)
        else:
            rebuild()

    def template(self) -> pn.template.FastListTemplate:
        """The tool as a full page (what ``apps/*.py`` serve): :attr:`link_box` above the controls."""
        return make_template(self.title, self.main(), [self.link_box, *as_list(self.sidebar())])
