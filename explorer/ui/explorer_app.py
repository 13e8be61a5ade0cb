"""The whole explorer as one multi-page app: an overview page and every tool behind a navigation bar.

Tools are imported lazily (only when their page is opened) and only if their module exists, so a
tool still being written never breaks the app. Each page's Viewer is built once per session.
"""
from __future__ import annotations

import importlib
import importlib.util
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from PIL import Image

from .links import Linked, link_view
from .plots import gray_image
from .text import notify, tex
from .theme import ACCENT
from .toolview import ToolView

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass(frozen=True)
class Tool:
    key: str
    title: str
    module: str
    cls: str
    summary: str

    @property
    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def build(self) -> Any:
        return getattr(importlib.import_module(self.module), self.cls)()


TOOLS: tuple[Tool, ...] = (
    Tool("sampler", "Coarse-to-fine sampler", "explorer.ui.sampler_view", "SamplerView",
         "Draw images from the prior implicit in a denoiser by stochastic ascent from pure noise, and watch "
         "the noise level fall along its designed schedule. Compare runs at several β: more injected noise, "
         "more steps, better samples."),
    Tool("inverse", "Inverse problems", "explorer.ui.inverse_view", "InverseView",
         "Hide part of an image (draw the mask, or pick random pixels, super-resolution, low-pass, compressive "
         "sensing) and let Algorithm 2 fill in the rest from the denoiser's prior. Samples, their mean and the "
         "pseudo-inverse are compared by PSNR and SSIM."),
    Tool("filters", "Adaptive filters", "explorer.ui.filters_view", "FiltersView",
         "A bias-free denoiser is locally linear: each output pixel is a weighted average of the noisy image. "
         "Click a pixel to see its adaptive filter (a row of the Jacobian) and how it shrinks and adapts with noise."),
    Tool("gahb", "Harmonic basis (GAHB)", "explorer.ui.gahb_view", "GAHBView",
         "The singular vectors of the Jacobian form a geometry-adaptive harmonic basis. See the leading "
         "vectors, the shrinkage of each, and the effective dimension as the noise level changes."),
    Tool("energy", "Energies", "explorer.ui.energy_view", "EnergyView",
         "An energy model trained by dual score matching gives −log p of an image. Compare the energies of "
         "images, of their noisy versions and of samples."),
    Tool("toy2d", "Toy 2-D prior", "explorer.ui.toy2d_view", "Toy2DView",
         "Everything in two dimensions, where the exact MMSE denoiser is known: a prior on a curve, its "
         "smoothed densities, the score field and sampler trajectories."),
    Tool("generalization", "Memorization vs generalization", "explorer.ui.generalization_view", "GeneralizationView",
         "Two denoisers trained on disjoint sets of N digits, sampled from the same noise: for small N each "
         "returns a digit of its own training set, for large N both return the same new digit "
         "(Kadkhodaie, Guth, Simoncelli & Mallat, ICLR 2024)."),
    Tool("report", "Property report", "explorer.ui.report_view", "ReportView",
         "Measure what any denoiser is: homogeneity, J(y)y = x̂(y), Jacobian symmetry, effective dimension against "
         "σ, PSNR beyond the training range, blind σ̂, sampler convergence and posterior calibration, each against "
         "its ideal, in one self-contained HTML report."),
    Tool("decomposition", "Multiscale decomposition", "explorer.ui.decomposition_view", "DecompositionView",
         "Apply a denoiser n times: what each application removes, r_k = f^k(x) − f^(k+1)(x), and the base fⁿ(x) "
         "add back up to the image exactly, for any denoiser (Milanfar & Delbracio). A network's layers and "
         "energies beside a classical denoiser's."),
    Tool("representation", "Semantic representation", "explorer.ui.representation_view", "RepresentationView",
         "Average each channel of a UNet block over space: a sparse representation of the image. Its k-means "
         "clusters group digits alike, its nearest neighbours beside the pixels', its robustness to noise per "
         "block, and samples guided towards a target's representation (Kadkhodaie, Mallat & Simoncelli 2025)."),
)


# The informative part of each tool's screenshot (docs/screenshots/KEY.png, 1500 px wide): its figures,
# without the browser's header, the sidebar and the run buttons, as (left, top, right, bottom) pixels.
THUMBNAIL_CROPS: dict[str, tuple[int, int, int, int]] = {
    "sampler": (345, 268, 1380, 700),
    "inverse": (345, 262, 1250, 660),
    "filters": (345, 70, 1500, 480),
    "gahb": (345, 195, 1250, 585),
    "energy": (345, 160, 1440, 560),
    "toy2d": (345, 60, 1500, 520),
    "generalization": (355, 70, 1500, 430),
    "report": (345, 60, 1500, 620),
    "decomposition": (345, 150, 1420, 900),
    "representation": (345, 60, 1500, 560),
}
CARD_WIDTH = 540  # two cards a row beside the sidebar on a 1500-px window, one on a narrow one
THUMBNAIL_WIDTH = CARD_WIDTH - 30


@lru_cache(maxsize=16)
def _cropped_png(path: str, box: tuple[int, int, int, int] | None, mtime: float) -> tuple[bytes, int, int]:
    """PNG bytes of the crop ``box`` of the image at ``path`` (clamped to it), and the crop's size."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if box is not None:
            left, top, right, bottom = box
            im = im.crop((max(0, left), max(0, top), min(im.width, right), min(im.height, bottom)))
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue(), im.width, im.height


def thumbnail_png(key: str) -> tuple[bytes, int, int] | None:
    """The overview's picture of a tool: the cropped screenshot (PNG bytes, width, height), or None."""
    path = SCREENSHOTS / f"{key}.png"
    if not path.is_file():
        return None
    try:
        return _cropped_png(str(path), THUMBNAIL_CROPS.get(key), path.stat().st_mtime)
    except OSError:
        return None


def _thumbnail(tool: Tool) -> pn.viewable.Viewable:
    shot = thumbnail_png(tool.key)
    if shot is not None:
        data, w, h = shot
        return pn.pane.PNG(data, width=THUMBNAIL_WIDTH, height=round(THUMBNAIL_WIDTH * h / w), margin=(5, 5),
                           alt_text=f"A screenshot of the {tool.title} tool",
                           styles={"border": "1px solid #ddd", "border-radius": "4px"})
    rng = np.random.default_rng(abs(hash(tool.key)) % 2**32)
    tile = np.clip(0.5 + 0.25 * rng.standard_normal((24, 24)), 0, 1).astype(np.float32)
    return pn.pane.HoloViews(gray_image(tile, "", size=120), margin=(0, 70))


def open_label(tool: Tool) -> str:
    """The overview button of a tool: "Open harmonic basis (GAHB) →" (only a capital that starts a plain
    word is lowered, so acronyms and "2-D" keep theirs)."""
    t = tool.title
    if len(t) > 1 and t[0].isupper() and t[1].islower():
        t = t[0].lower() + t[1:]
    return f"Open {t} →"


class ExplorerApp(ToolView):
    """Navigation over the overview page and every available tool; ``page`` is the key shown.

    Served, the open tool's settings follow in the URL with its key as prefix (``filters.sigma``: tools never
    share a key); leaving a tool takes its keys out of the URL, and opening one restores it from the URL.
    """

    title = "All tools"

    page = param.Selector(objects=["overview", *[t.key for t in TOOLS]], default="overview")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.views: dict[str, Any] = {}
        self._linked: Linked | None = None
        self._main = pn.Column(sizing_mode="stretch_width", margin=0)
        self._side = pn.Column(sizing_mode="stretch_width", margin=0)
        self._nav = self._make_nav()
        self._show()

    def _make_nav(self) -> pn.Column:
        buttons = []
        home = pn.widgets.Button(label="Overview", color="primary", variant="outline", sizing_mode="stretch_width")
        home.on_click(lambda _e: setattr(self, "page", "overview"))
        buttons.append(home)
        for tool in TOOLS:
            b = pn.widgets.Button(label=tool.title if tool.available else f"{tool.title} (coming soon)",
                                  color="primary", variant="outline", disabled=not tool.available,
                                  sizing_mode="stretch_width")
            b.on_click(lambda _e, k=tool.key: setattr(self, "page", k))
            buttons.append(b)
        self._buttons = buttons
        return pn.Column(pn.pane.Markdown("**Tools**", margin=(0, 10)), *buttons, pn.layout.Divider(),
                         sizing_mode="stretch_width")

    def tool(self, key: str) -> Tool:
        return next(t for t in TOOLS if t.key == key)

    def view(self, key: str) -> Any:
        """The session's Viewer of a tool (built on first use)."""
        if key not in self.views:
            self.views[key] = self.tool(key).build()
        return self.views[key]

    def overview(self) -> pn.viewable.Viewable:
        cards = []
        for tool in TOOLS:
            open_b = pn.widgets.Button(label=open_label(tool) if tool.available else "coming soon",
                                       color="primary", disabled=not tool.available, width=260, margin=(5, 10))
            open_b.on_click(lambda _e, k=tool.key: setattr(self, "page", k))
            cards.append(pn.Card(_thumbnail(tool), pn.pane.Markdown(tool.summary, width=THUMBNAIL_WIDTH), open_b,
                                 title=tool.title, collapsible=False, width=CARD_WIDTH, margin=10,
                                 header_background="#eef3f7"))
        intro = pn.pane.Markdown(tex(
            "## Look inside image denoisers\n"
            "A denoiser trained to remove Gaussian noise learns, implicitly, a prior over images: its residual "
            "is a scaled score, $\\hat x(y) - y = \\sigma^2\\nabla_y\\log p_\\sigma(y)$ (Miyasawa/Tweedie). These "
            "tools sample from that prior, solve inverse problems with it, and open up the network: its "
            "adaptive filters (Jacobian rows), its harmonic basis (Jacobian SVD) and its energy."),
            sizing_mode="stretch_width")
        return pn.Column(intro, pn.FlexBox(*cards, sizing_mode="stretch_width"), sizing_mode="stretch_width")

    @param.depends("page", watch=True)
    def _show(self) -> None:
        key = self.page
        if self._linked is not None:
            self._linked.unlink()
            self._linked = None
        for b, k in zip(self._buttons, ["overview", *[t.key for t in TOOLS]]):
            b.variant = "solid" if k == key else "outline"
        if key == "overview":
            self._main[:] = [self.overview()]
            self._side[:] = []
            return
        try:
            v = self.view(key)
            main = v.main() if hasattr(v, "main") else v
            side = v.sidebar() if hasattr(v, "sidebar") else None
        except Exception as e:  # a broken tool must not take the app down
            msg = f"The {self.tool(key).title} tool could not be opened: {type(e).__name__}: {e}"
            notify(msg)
            self._main[:] = [pn.pane.Alert(msg, alert_type="danger")]
            self._side[:] = []
            return
        self._main[:] = [pn.pane.Markdown(f"## {self.tool(key).title}", margin=(0, 10)), main]
        self._side[:] = [side] if side is not None else []
        self._linked = link_view(v, key, prefix=f"{key}.", box=self.link_box)

    def sidebar(self) -> list[pn.viewable.Viewable]:
        """The navigation, then the open tool's controls."""
        return [self._nav, self._side]

    def main(self) -> pn.Column:
        """The overview or the open tool's figures."""
        return self._main


__all__ = ["TOOLS", "ExplorerApp", "Tool", "ACCENT", "open_label", "thumbnail_png"]
