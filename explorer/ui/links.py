"""Links that reopen a view: each tool's settings live in the page URL's query string (issue #21 §3).

:data:`LINKS` is the one list of what a link holds, per tool (the keys of :data:`explorer.ui.explorer_app.TOOLS`,
and ``main`` for the all-tools app): for each setting its query key, the object that holds it (an attribute path
from the view: ``picker``, ``source``, ``run``, ``state``, or the view itself) and the parameter's name. The
standalone apps use the keys as they are (``apps/filters.py?sigma=0.2&seed=7&row=5&col=20``); the all-tools
app prefixes them with the open tool (``main?page=filters&filters.sigma=0.2``), so tools never share a key.

- :func:`restore` — set a view's parameters from a query (a dict), one by one in list order (the model
  before the image size it offers, the image before the pixel it bounds). A value a hand-edited link got wrong never reaches a
  parameter: a number out of range is clamped, a name that is not offered, an unreadable value or an upload
  (its file is not in the link) is ignored, and each returns a sentence saying so.
- :func:`query_of` — the view's current settings as query strings (what a copied link holds).
- :func:`link_view` — in a served page: restore from the URL, then keep the URL following every change
  (:class:`Linked`); the page's :class:`~explorer.ui.controls.CopyLink` shows the sentences. A no-op outside
  a server (a notebook, tests).

Not in a link: a drawn inpainting mask (a hash could name it but not redraw it; the other measurements are
rebuilt from their seed), an uploaded image, and the results themselves (recomputed from the settings).
"""
from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import panel as pn
import param

from .tasks import session_doc

if TYPE_CHECKING:
    from .toolview import ToolView


@dataclass(frozen=True)
class Link:
    """One setting in a link: query ``key``, the ``owner`` path from the view ("" = the view), the ``name``
    of the parameter, and the values a link cannot reopen (``unlinkable``)."""

    key: str
    owner: str
    name: str
    unlinkable: tuple[Any, ...] = ()


#: The energy tool's probe "uploaded file" (energy_state.PROBE_UPLOAD, not imported: that module loads the energy
#: library, which the all-tools app only loads when the tool is opened; tests/ui/test_links.py checks the two agree).
ENERGY_UPLOAD = "uploaded file"


def _picker(owner: str = "picker", key: str = "model") -> tuple[Link, ...]:
    return (Link(key, owner, "model"),)


def _image(owner: str = "source") -> tuple[Link, ...]:
    """The image source's settings: kind first (it lists the kept samples), then what each kind uses."""
    return (Link("source", owner, "source", unlinkable=("upload",)), Link("builtin", owner, "builtin"),
            Link("synthetic", owner, "synthetic"), Link("synthetic_seed", owner, "seed"),
            Link("sample", owner, "sample"), Link("size", owner, "size"))


def _own(owner: str, *names: str) -> tuple[Link, ...]:
    return tuple(Link(n, owner, n) for n in names)


LINKS: dict[str, tuple[Link, ...]] = {
    "main": _own("", "page"),
    "sampler": (*_picker(), *_own("run", "beta", "h0", "sigma0", "sigma_L", "seed", "size", "chains")),
    "inverse": (*_picker(), *_image(), *_own("run", "kind", "fraction", "factor", "measurement_seed", "beta", "h0",
                                              "sigma_L", "chains", "seed")),
    "filters": (*_own("", "models"), *_image(), *_own("", "sigma", "seed", "row", "col", "crop", "posterior")),
    "gahb": (*_picker(), *_image(), *_own("", "sigma", "seed", "k", "vectors", "probes", "curve")),
    "energy": (*_picker(), Link("dataset", "state", "dataset"), Link("probe", "state", "probe", unlinkable=(ENERGY_UPLOAD,)),
               *_own("state", "count", "patch", "stride", "per_image", "draws", "unit", "bins", "show_all_references"),
               *_own("patches.state", "active", "denoiser", "photo", "map_size", "map_stride")),
    "toy2d": _own("", "sigma", "lobes", "amplitude", "n_arrows", "log_scale", "beta", "h0", "sigma0", "sigma_L",
                  "chains", "seed"),
    "generalization": _own("state", "N", "seed", "beta", "h0", "sigma_L"),
    "report": _own("", "model"),
    "decomposition": (*_picker("picker_a", "model_a"), *_picker("picker_b", "model_b"), *_image(),
                      *_own("", "n", "sigma", "fixed_strength")),
    "representation": (*_picker(), *_own("", "block", "sigma", "draws", "data", "folder", "count", "k", "standardize",
                                         "color_by", "query", "target", "strength", "seed")),
}

_REFUSED = object()


def owner_of(view: Any, link: Link) -> param.Parameterized:
    """The object that holds ``link``'s parameter in ``view``."""
    obj = view
    for part in filter(None, link.owner.split(".")):
        obj = getattr(obj, part)
    return obj


def _range(low: Any, high: Any) -> str:
    return f"{low:g}–{high:g}" if low is not None and high is not None else (
        f"≥ {low:g}" if low is not None else f"≤ {high:g}")


def _number(raw: Any, integer: bool) -> Any:
    """``raw`` as an int or a finite float (or ``_REFUSED``)."""
    if isinstance(raw, bool):
        return _REFUSED
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return _REFUSED
    if not math.isfinite(value) or (integer and value != int(value)):
        return _REFUSED
    return int(value) if integer else value


def coerce(p: param.Parameter, raw: Any, key: str, unlinkable: tuple[Any, ...] = ()) -> tuple[Any, str | None]:
    """(the value ``p`` may take for the query value ``raw``, or ``_REFUSED``; a sentence if it was changed or
    refused). Numbers are clamped to ``p``'s bounds; selections must name an offered object."""
    shown = raw if isinstance(raw, str) else json.dumps(raw)
    if raw in unlinkable:
        return _REFUSED, f"{key}={shown} cannot be reopened from a link; the default is shown."
    if isinstance(p, param.Boolean):
        value = raw if isinstance(raw, bool) else {"1": True, "0": False, "true": True, "false": False}.get(str(raw).lower(), _REFUSED)
    elif isinstance(p, param.Number):  # Integer too
        value = _number(raw, isinstance(p, param.Integer))
        low, high = p.bounds if p.bounds is not None else (None, None)
        if value is not _REFUSED and ((low is not None and value < low) or (high is not None and value > high)):
            clamped = min(max(value, low if low is not None else value), high if high is not None else value)
            return clamped, f"{key}={shown} is outside {_range(low, high)}: {clamped:g} is used."
    elif isinstance(p, param.ListSelector):
        items = raw if isinstance(raw, list) else [raw]
        value = [o for item in items for o in p.objects if o == item or str(o) == str(item)]
        if value and len(value) < len(items):
            return value, f"{key}={shown} names something not offered: only {', '.join(map(str, value))} is used."
        value = value or _REFUSED
    elif isinstance(p, param.Selector):
        value = next((o for o in p.objects if o == raw or str(o) == str(raw)), _REFUSED)
        if value is _REFUSED:
            return _REFUSED, f"{key}={shown} is not one of the choices offered; the default is shown."
    elif isinstance(p, param.String):
        value = str(raw)
    else:
        value = _REFUSED
    return value, (f"{key}={shown} could not be read; the default is shown." if value is _REFUSED else None)


def restore(view: ToolView, tool: str, query: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Set ``view``'s linked parameters from ``query`` (parsed values: ``pn.state.location.query_params``).

    Keys ``prefix + link.key``; absent keys leave a parameter as it is. Returns what was clamped or ignored.
    Each value is checked against its parameter as it stands when its turn comes (the pixel against the
    restored image's size), and set on its own (a view's watchers then see one change at a time); what the
    changes cost the view (a new sampler, a new problem) is done once at the end (``view.batched_changes``)."""
    with view.batched_changes():
        return _restore(view, tool, query, prefix)


def _restore(view: Any, tool: str, query: Mapping[str, Any], prefix: str) -> list[str]:
    messages: list[str] = []
    for link in LINKS[tool]:
        key = prefix + link.key
        if key not in query:
            continue
        owner = owner_of(view, link)
        value, message = coerce(owner.param[link.name], query[key], key, link.unlinkable)
        if message:
            messages.append(message)
        if value is _REFUSED or value == getattr(owner, link.name):
            continue
        try:  # one at a time, in list order: each may change what the next may be (an image's size, a pixel)
            setattr(owner, link.name, value)
        except Exception as e:  # a value the view refuses in its current state: keep what it has
            messages.append(f"{key}={serialize_value(owner, link.name, value)} could not be used ({e}).")
    return messages


def serialize_value(owner: param.Parameterized, name: str, value: Any) -> str | None:
    """A value of ``owner.<name>`` as it stands in a query (JSON for numbers and lists; None for no value)."""
    if value is None:
        return None
    value = owner.param[name].serialize(value)
    return value if isinstance(value, str) else json.dumps(value)


def query_of(view: Any, tool: str, prefix: str = "") -> dict[str, str]:
    """The linked settings of ``view`` as query strings (the keys of a link to it)."""
    out = {prefix + link.key: serialize_value(owner := owner_of(view, link), link.name, getattr(owner, link.name))
           for link in LINKS[tool]}
    return {k: v for k, v in out.items() if v is not None}


def set_query(location: Any, updates: Mapping[str, str], drop: tuple[str, ...] = ()) -> None:
    """Set keys of the page URL's query (strings, as they stand) and drop others; the rest stays as it is."""
    query = dict(urllib.parse.parse_qsl(location.search.lstrip("?"), keep_blank_values=True))
    query.update(updates)
    for key in drop:
        query.pop(key, None)
    search = "?" + urllib.parse.urlencode(query) if query else ""
    if search != location.search:
        location.search = search


class Linked:
    """A view whose settings the page URL follows: every change of one rewrites its keys (all of them, so a
    change that moves another setting, like a new image size re-centring the pixel, shows too).

    :meth:`unlink` stops that and takes the view's keys out of the URL (the all-tools app, leaving a tool).
    """

    def __init__(self, view: Any, tool: str, prefix: str, location: Any):
        self.view, self.tool, self.prefix, self.location = view, tool, prefix, location
        self.active = True
        names: dict[int, tuple[param.Parameterized, list[str]]] = {}
        for link in LINKS[tool]:
            owner = owner_of(view, link)
            names.setdefault(id(owner), (owner, []))[1].append(link.name)
        self._watchers = [(owner, owner.param.watch(self.push, ns)) for owner, ns in names.values()]

    def push(self, *_events: Any) -> None:
        """Write the view's settings into the URL (the browser's address follows)."""
        if self.active:
            set_query(self.location, query_of(self.view, self.tool, self.prefix))

    def unlink(self) -> None:
        self.active = False
        for owner, watcher in self._watchers:
            owner.param.unwatch(watcher)
        set_query(self.location, {}, drop=tuple(self.prefix + link.key for link in LINKS[self.tool]))


def link_view(view: Any, tool: str, prefix: str = "", box: Any = None) -> Linked | None:
    """In a served page: restore ``view`` from the URL, show what could not be used in ``box`` (default: the
    view's ``link_box``), then keep the URL following its settings. None outside a server.

    The browser sends its own address when the page connects, so the corrected, complete query (bad values
    gone, every key present) is written once the page has loaded; from then on each change rewrites it.
    Panel's ``location.sync`` is not used: it would apply the link's raw values again (unvalidated, several
    at once) when the browser's address arrives."""
    location = pn.state.location if session_doc() is not None else None
    if location is None:
        return None
    box = box if box is not None else getattr(view, "link_box", None)
    messages = restore(view, tool, location.query_params, prefix)
    if box is not None:
        box.show_note(messages)
    linked = Linked(view, tool, prefix, location)
    pn.state.onload(linked.push)
    return linked
