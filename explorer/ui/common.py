"""Shared building blocks of every Denoiser Explorer tool (UI only: no maths lives here).

- :func:`make_template` — the one page template (header, accent, sidebar) used by every app.
- :func:`gray_image`, :func:`diverging_image` — HoloViews images with the house style: gray in a
  fixed [0, 1] range, or a diverging map centred on 0; square pixels, no axis clutter.
- :class:`ModelPicker` — a model chosen from the catalog (plus the classical denoisers), loaded
  lazily and shared by every session of the process (:func:`get_handle`, :func:`register_handle`).
- :class:`ImageSource` — built-in photograph / synthetic image / uploaded file → ``.image``.
- :class:`RunControls` — Step / Play / Pause / Reset buttons, a progress bar and a status line.
- :func:`explanation` — a card with a short explanation (Markdown + LaTeX).
- :func:`downloads` with :func:`png_bytes` / :func:`npz_bytes` — PNG of what is shown, NPZ of arrays
  and the parameters that made them.
- :class:`BackgroundWorker` — long work on a thread; the page shows its latest snapshot from a
  periodic callback on the session's event loop; Stop cancels; a closed session stops it.
- :func:`alert` / :func:`notify` — visible error messages that leave the session usable.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
from PIL import Image, ImageDraw

import explorer
from explorer.data import BUILTIN_IMAGES, ImageFileError, builtin_image, load_image, square_resize
from explorer.data.registry import dataset

hv.extension("bokeh", logo=False)

# ------------------------------------------------------------------------------------------ style
APP_TITLE = "Denoiser Explorer"
ACCENT = "#1f5f8b"
HEADER = "#0f3550"
IMAGE_SIZE_PX = 240  # default on-screen frame width of one image
SIZES = [32, 64, 128, 256]
DIVERGING_CMAP = "RdBu_r"
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


def make_template(title: str, main: Sequence[Any] | Any, sidebar: Sequence[Any] | Any = (),
                  **kwargs: Any) -> pn.template.FastListTemplate:
    """The template of every tool: FastList layout, the explorer's header colours, ``title`` in the header.

    ``main`` and ``sidebar`` are a viewable or a list of viewables.
    """
    main = list(main) if isinstance(main, (list, tuple)) else [main]
    sidebar = list(sidebar) if isinstance(sidebar, (list, tuple)) else [sidebar]
    opts: dict[str, Any] = dict(
        title=title,
        site=APP_TITLE,
        site_url="./",
        accent_base_color=ACCENT,
        header_background=HEADER,
        header_accent_base_color="#ffffff",
        theme_toggle=False,
        main_layout=None,
        sidebar_width=330,
        raw_css=[RAW_CSS],
    )
    opts.update(kwargs)
    return pn.template.FastListTemplate(main=main, sidebar=sidebar, **opts)


# ------------------------------------------------------------------------------------------ images
def _frame(shape: tuple[int, ...], size: int) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    return size, max(8, int(round(size * h / w)))


def image_element(array: np.ndarray) -> hv.Image:
    """A bare hv.Image of an (H, W) array with pixel bounds (0, 0, W, H); row 0 at the top.

    Pixel (row i, column j) covers x ∈ [j, j + 1], y ∈ [H − i − 1, H − i] (see
    :func:`explorer.ui.mask.plot_to_pixel`).
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {a.shape}")
    h, w = a.shape
    return hv.Image(a, bounds=(0, 0, w, h), kdims=["x", "y"], vdims=["value"])


def gray_image(array: np.ndarray, title: str = "", size: int = IMAGE_SIZE_PX, **opts: Any) -> hv.Image:
    """A gray image in the fixed range [0, 1] (values outside are clipped by the colour map)."""
    a = np.asarray(array, dtype=np.float32)
    fw, fh = _frame(a.shape, size)
    style = dict(cmap="gray", clim=(0.0, 1.0), xaxis=None, yaxis=None, frame_width=fw, frame_height=fh,
                 data_aspect=None, title=title, toolbar=None, tools=["hover"], default_tools=[],
                 colorbar=False, show_frame=False, framewise=False, axiswise=True)
    style.update(opts)
    return image_element(a).opts(**style)


def diverging_image(array: np.ndarray, title: str = "", size: int = IMAGE_SIZE_PX, vmax: float | None = None,
                    colorbar: bool = True, **opts: Any) -> hv.Image:
    """A signed image (filter, singular vector, difference) in RdBu_r, symmetric clim ±max|v|."""
    a = np.asarray(array, dtype=np.float32)
    m = float(np.nanmax(np.abs(a))) if vmax is None else float(vmax)
    m = m if np.isfinite(m) and m > 0 else 1.0
    fw, fh = _frame(a.shape, size)
    style = dict(cmap=DIVERGING_CMAP, clim=(-m, m), xaxis=None, yaxis=None, frame_width=fw, frame_height=fh,
                 title=title, toolbar=None, tools=["hover"], default_tools=[], colorbar=colorbar,
                 show_frame=False, framewise=True, axiswise=True)
    style.update(opts)
    return image_element(a).opts(**style)


def fmt_number(value: float, digits: int = 3) -> str:
    """A compact number for labels: 0.0831, 27.4, 1.2e-05."""
    if value is None or not np.isfinite(value):
        return "—" if value is None or np.isnan(value) else ("∞" if value > 0 else "−∞")
    return f"{value:.{digits}g}"


# ------------------------------------------------------------------------------------------ models
CLASSICAL: dict[str, tuple[str, dict[str, Any]]] = {
    "classical: Gaussian smoothing": ("GaussianSmoothing", {}),
    "classical: Wiener filter": ("WienerFilter", {}),
    "classical: Haar shrinkage": ("HaarShrinkage", {}),
}
_EXTRA: dict[str, Any] = {}
_CLASSICAL_HANDLES: dict[str, Any] = {}
_HANDLE_LOCK = threading.Lock()


def register_handle(name: str, handle: Any) -> None:
    """Offer an already-built handle under ``name`` in every model picker of this process (tests, notebooks)."""
    with _HANDLE_LOCK:
        _EXTRA[name] = handle


def model_names(include_classical: bool = True) -> list[str]:
    """Catalog names (the default model first), then registered handles, then the classical denoisers."""
    try:
        names = [c["name"] for c in explorer.catalog()]
    except Exception:  # a broken model folder must not take the page down
        names = []
    if explorer.DEFAULT_MODEL in names:
        names.remove(explorer.DEFAULT_MODEL)
        names.insert(0, explorer.DEFAULT_MODEL)
    names += [n for n in _EXTRA if n not in names]
    if include_classical:
        names += list(CLASSICAL)
    return names


def get_handle(name: str) -> Any:
    """The process-wide shared handle for a picker name (loaded on first use; explorer.load caches)."""
    with _HANDLE_LOCK:
        if name in _EXTRA:
            return _EXTRA[name]
        if name in CLASSICAL:
            if name not in _CLASSICAL_HANDLES:
                from explorer.denoisers import classical

                cls_name, kw = CLASSICAL[name]
                model = getattr(classical, cls_name)(**kw)
                _CLASSICAL_HANDLES[name] = explorer.ModelHandle(model, device="cpu", name=name,
                                                                card={"name": name, "architecture": "classical"})
            return _CLASSICAL_HANDLES[name]
    return explorer.load(name)


def describe_card(handle: Any) -> str:
    """One line about a model: architecture, blind/bias-free, training noise range."""
    card = getattr(handle, "card", {}) or {}
    if "energy" in card:
        e = card["energy"]
        return (f"{card.get('architecture', 'energy model')}: U(y, t) ≈ −log p_t(y) by dual score matching, "
                f"noise-conditioned, t ∈ [{e.get('t_min', '?'):g}, {e.get('t_max', '?'):g}], log Z = {e.get('log_z', float('nan')):.3f} nats")
    bits = [str(card.get("architecture", type(getattr(handle, "model", handle)).__name__))]
    bits.append("bias-free" if getattr(handle, "bias_free", False) else "with biases")
    bits.append("blind (estimates σ itself)" if getattr(handle, "blind", True) else "needs σ")
    noise = (card.get("training") or {}).get("noise") or {}
    if "sigma_max" in noise:
        bits.append(f"trained on σ ∈ [{noise.get('sigma_min', 0)}, {noise['sigma_max']}]")
    return ", ".join(bits)


class ModelPicker(pn.viewable.Viewer):
    """Choose a denoiser by name; ``handle`` loads it lazily (shared per process), errors go to ``error``."""

    model = param.Selector(objects=[], doc="Denoiser (catalog name or classical)")
    error = param.String(default="", doc="Why the chosen model could not be loaded")
    include_classical = param.Boolean(default=True, constant=True)

    def __init__(self, **params: Any):
        include = params.get("include_classical", True)
        names = model_names(include)
        super().__init__(**{k: v for k, v in params.items() if k != "model"})
        self.param.model.objects = names
        self.model = params.get("model") or (names[0] if names else None)
        if self.model not in names and self.model is not None:
            self.param.model.objects = [self.model, *names]
        self._select = pn.widgets.Select.from_param(self.param.model, name="Denoiser", sizing_mode="stretch_width")
        self._info = pn.pane.Markdown("", styles={"color": "#555", "font-size": "0.85em"}, margin=(0, 10))
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    @property
    def handle(self) -> Any:
        """The loaded handle of ``model`` (None, with ``error`` set, if it cannot be loaded)."""
        try:
            h = get_handle(self.model)
        except Exception as e:  # CheckpointError, OSError...
            self.error = f"Could not load model {self.model!r}: {e}"
            return None
        self.error = ""
        self._info.object = describe_card(h)
        return h

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.object = self.error
        self._alert.visible = bool(self.error)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._select, self._info, self._alert, sizing_mode="stretch_width", margin=0)


# ------------------------------------------------------------------------------------------ images in
SYNTHETIC_SETS = {"dead leaves": "dead-leaves", "discs": "discs", "C^α contour": "calpha"}  # label → registry name
SYNTHETIC = tuple(SYNTHETIC_SETS)


def synthetic_image(kind: str, size: int, seed: int) -> np.ndarray:
    """One synthetic image (float32 (size, size) in [0, 1]) of ``kind`` in :data:`SYNTHETIC`: the generator of
    the registered data set (:mod:`explorer.data.registry`, e.g. C^α with the training sets' α) at ``seed``."""
    if kind not in SYNTHETIC_SETS:
        raise ValueError(f"unknown synthetic image {kind!r}; choose one of {SYNTHETIC}")
    return dataset(SYNTHETIC_SETS[kind]).make(1, size, seed)[0]


def decode_upload(data: bytes, filename: str = "upload.png") -> np.ndarray:
    """The bytes of an uploaded file as a gray float32 image in [0, 1] (via :func:`explorer.data.load_image`).

    Raises ``ValueError`` with a message naming ``filename`` for anything unusable — an unreadable, empty,
    truncated or oversized file, or any other error a hostile file can trigger in the decoder.
    """
    suffix = Path(filename or "upload").suffix or ".png"
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="explorer-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data or b"")
        return load_image(tmp, gray=True)
    except ImageFileError as e:
        raise ValueError(str(e).replace(tmp, filename or "the file")) from None
    except Exception as e:  # anything else a hostile file can trigger
        raise ValueError(f"Could not read {filename!r}: {type(e).__name__}: {e}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


class ImageSource(pn.viewable.Viewer):
    """Where the clean image comes from: a built-in photograph, a synthetic generator, an upload, or a
    sample the sampler kept (:mod:`explorer.ui.samples`; ``refresh_samples()`` re-lists them).

    ``image`` always holds a float32 (size, size) array in [0, 1] (an upload is centre-cropped to a
    square and resized). A bad upload sets ``error`` (shown in the page) and keeps the last image.
    """

    source = param.Selector(objects=["built-in", "synthetic", "upload", "sample"], default="built-in",
                            doc="Image source (sample: one the sampler kept, see explorer.ui.samples)")
    builtin = param.Selector(objects=list(BUILTIN_IMAGES), default="camera" if "camera" in BUILTIN_IMAGES
                             else (BUILTIN_IMAGES[0] if BUILTIN_IMAGES else None), doc="Built-in photograph")
    size = param.Selector(objects=SIZES, default=64, doc="Image size (pixels per side)")
    synthetic = param.Selector(objects=list(SYNTHETIC), default="dead leaves", doc="Synthetic generator")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the synthetic generator")
    sample = param.Selector(objects=[], default=None, allow_None=True, doc="A sample kept by the sampler")
    image = param.Array(default=None, doc="The current clean image, float32 (H, W) in [0, 1]")
    label = param.String(default="", doc="What the image is, for titles and file names")
    error = param.String(default="", doc="Why the last upload could not be used")

    def __init__(self, **params: Any):
        sizes = params.pop("sizes", None)
        super().__init__(**params)
        if sizes:
            self.param.size.objects = list(sizes)
            if self.size not in sizes:
                self.size = sizes[0]
        self._uploaded: np.ndarray | None = None
        self._upload_name = ""
        self._file = pn.widgets.FileInput(accept=".png,.jpg,.jpeg,.tif,.tiff,.bmp,.gif,.pgm,.ppm,.webp",
                                          multiple=False, sizing_mode="stretch_width")
        self._file.param.watch(self._on_file, "value")
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self._samples: dict[str, Path] = {}
        self._refresh_button = pn.widgets.Button(label="↻", width=40, margin=(24, 10, 5, 0),
                                                 description="List the samples kept by the sampler again")
        self._refresh_button.on_click(lambda _e: self.refresh_samples())
        self._update()

    def refresh_samples(self) -> None:
        """Re-list the kept samples (newest first) and keep the chosen one if it is still there."""
        from .samples import list_samples

        self._samples = list_samples()
        labels = list(self._samples)
        chosen = self.sample if self.sample in labels else (labels[0] if labels else None)
        self.param.sample.objects = labels
        if chosen != self.sample:
            self.sample = chosen  # triggers _update
        elif self.source == "sample":
            self._update()

    # -- loading
    def load_bytes(self, data: bytes, filename: str = "upload.png") -> bool:
        """Use the bytes of an uploaded file; on failure set ``error`` (never raises). True if used."""
        try:
            img = decode_upload(data, filename)
        except ValueError as e:
            self.error = str(e)
            return False
        self._uploaded, self._upload_name = img, filename
        self.error = ""
        if self.source != "upload":
            self.source = "upload"  # triggers _update
        else:
            self._update()
        return True

    def _on_file(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.load_bytes(event.new, self._file.filename or "upload")

    @param.depends("source", watch=True)
    def _source_changed(self) -> None:
        if self.source == "sample":
            self.refresh_samples()

    @param.depends("source", "builtin", "size", "synthetic", "seed", "sample", watch=True)
    def _update(self) -> None:
        size = int(self.size)
        try:
            if self.source == "built-in":
                img, label = builtin_image(self.builtin, size), f"{self.builtin}"
            elif self.source == "synthetic":
                img, label = synthetic_image(self.synthetic, size, int(self.seed)), f"{self.synthetic} #{self.seed}"
            elif self.source == "sample":
                if self.sample is None or self.sample not in self._samples:
                    self.error = "No kept samples yet: run the sampler and press “Keep the samples”."
                    return
                from .samples import load_sample

                sample, meta = load_sample(self._samples[self.sample])
                img = square_resize(sample, size)
                label = f"sample {meta.get('model', '')} beta{meta.get('beta', '')} seed{meta.get('seed', '')} chain{meta.get('chain', '')}"
            else:
                if self._uploaded is None:
                    return  # wait for a file
                img, label = square_resize(self._uploaded, size), Path(self._upload_name).stem or "upload"
        except Exception as e:
            self.error = f"Could not make the image: {e}"
            return
        if self.source != "upload":
            self.error = ""  # (a bad upload's message stays until another upload works)
        self.label = label
        self.image = np.ascontiguousarray(img, dtype=np.float32)

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.object = self.error
        self._alert.visible = bool(self.error)
        if self.error:
            notify(self.error)

    def __panel__(self) -> pn.viewable.Viewable:
        src = pn.widgets.RadioButtonGroup.from_param(self.param.source, name="", color="primary",
                                                     variant="outline", sizing_mode="stretch_width")
        builtin = pn.widgets.Select.from_param(self.param.builtin, name="Photograph", sizing_mode="stretch_width")
        synth = pn.widgets.Select.from_param(self.param.synthetic, name="Generator", sizing_mode="stretch_width")
        seed = pn.widgets.IntInput.from_param(self.param.seed, name="Seed", sizing_mode="stretch_width")
        size = pn.widgets.Select.from_param(self.param.size, name="Size (pixels per side)", sizing_mode="stretch_width")
        sample = pn.widgets.Select.from_param(self.param.sample, name="Kept sample (newest first)",
                                              sizing_mode="stretch_width")
        hint = pn.pane.Markdown("PNG / JPEG / TIFF…, converted to gray, centre-cropped to a square.",
                                styles={"color": "#666", "font-size": "0.85em"}, margin=(0, 10))

        @pn.depends(self.param.source)
        def choice(source: str) -> pn.viewable.Viewable:
            if source == "built-in":
                return builtin
            if source == "synthetic":
                return pn.Row(synth, seed, sizing_mode="stretch_width")
            if source == "sample":
                return pn.Row(sample, self._refresh_button, sizing_mode="stretch_width")
            return pn.Column(self._file, hint, sizing_mode="stretch_width")

        return pn.Column(pn.pane.Markdown("**Image**", margin=(0, 10)), src, choice, size, self._alert,
                         sizing_mode="stretch_width", margin=0)


# ------------------------------------------------------------------------------------------ controls
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


# ------------------------------------------------------------------------------------------ text
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
    pane.object = text
    pane.visible = bool(text)


def notify(message: str, kind: str = "error", duration: int = 6000) -> None:
    """A toast notification when the page supports them (never raises)."""
    try:
        if pn.state.curdoc is not None and pn.state.notifications is not None:
            getattr(pn.state.notifications, kind)(message, duration=duration)
    except Exception:
        pass


# ------------------------------------------------------------------------------------------ downloads
_RDBU = np.array([(5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
                  (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31)], dtype=np.float64)


def to_rgb(array: np.ndarray, kind: str = "gray") -> np.ndarray:
    """uint8 (H, W, 3) of an image: 'gray' clipped to [0, 1], 'diverging' RdBu_r at ±max|v|, 'mask' bool."""
    a = np.asarray(array, dtype=np.float64)
    if kind == "diverging":
        m = np.nanmax(np.abs(a)) if a.size else 1.0
        u = (np.nan_to_num(a) / (m if m > 0 else 1.0) + 1) / 2 * (len(_RDBU) - 1)
        lo = np.clip(np.floor(u).astype(int), 0, len(_RDBU) - 2)
        frac = (u - lo)[..., None]
        rgb = _RDBU[lo] * (1 - frac) + _RDBU[lo + 1] * frac
    else:
        g = np.clip(np.nan_to_num(a), 0, 1) * 255
        rgb = np.repeat(g[..., None], 3, axis=-1)
    return np.round(rgb).astype(np.uint8)


def png_bytes(panels: Sequence[tuple[str, np.ndarray] | tuple[str, np.ndarray, str]], min_size: int = 256,
              columns: int | None = None) -> io.BytesIO:
    """A PNG of images side by side (wrapping after ``columns``), each titled, upscaled with square pixels.

    ``panels``: (title, array) or (title, array, kind) with kind 'gray' (default) or 'diverging'.
    """
    tiles = []
    for p in panels:
        title, arr = p[0], np.asarray(p[1])
        kind = p[2] if len(p) > 2 else "gray"
        rgb = to_rgb(arr, kind)
        scale = max(1, int(np.ceil(min_size / max(rgb.shape[:2]))))
        im = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.Resampling.NEAREST)
        tiles.append((title, im))
    if not tiles:
        tiles = [("(nothing to show)", Image.new("RGB", (min_size, min_size), "white"))]
    columns = columns or len(tiles)
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    pad, text_h = 8, 18
    tw = max(im.width for _, im in tiles)
    th = max(im.height for _, im in tiles)
    canvas = Image.new("RGB", (pad + columns * (tw + pad), pad + len(rows) * (th + text_h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, (title, im) in enumerate(row):
            x, y = pad + c * (tw + pad), pad + r * (th + text_h + pad)
            draw.text((x, y), str(title)[:60], fill=(20, 20, 20))
            canvas.paste(im, (x, y + text_h))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    buf.seek(0)
    return buf


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def npz_bytes(arrays: dict[str, Any], params: dict[str, Any] | None = None) -> io.BytesIO:
    """A compressed NPZ of ``arrays`` (tensors converted) plus ``params`` as a JSON string under 'params'."""
    out: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        if v is None:
            continue
        if hasattr(v, "detach"):
            v = v.detach().to("cpu").numpy()
        out[k] = np.asarray(v)
    out["params"] = np.array(json.dumps(_jsonable(params or {}), ensure_ascii=False))
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    buf.seek(0)
    return buf


def downloads(png_fn: Callable[[], io.BytesIO], npz_fn: Callable[[], io.BytesIO],
              basename: str | Callable[[], str] = "explorer") -> pn.Row:
    """Two FileDownload buttons: 'PNG' (what is shown) and 'NPZ' (arrays + parameters).

    ``basename`` may be a callable, evaluated at click time, so the file name follows the state.
    """
    def name() -> str:
        return basename() if callable(basename) else basename

    png = pn.widgets.FileDownload(callback=png_fn, filename=f"{name()}.png", label="⬇ PNG of the figure",
                                  color="default", sizing_mode="stretch_width", embed=False)
    npz = pn.widgets.FileDownload(callback=npz_fn, filename=f"{name()}.npz", label="⬇ NPZ (arrays + parameters)",
                                  color="default", sizing_mode="stretch_width", embed=False)
    if callable(basename):
        def _png() -> io.BytesIO:
            png.filename = f"{name()}.png"
            return png_fn()

        def _npz() -> io.BytesIO:
            npz.filename = f"{name()}.npz"
            return npz_fn()

        png.callback, npz.callback = _png, _npz
    return pn.Row(png, npz, sizing_mode="stretch_width", margin=0)


# ------------------------------------------------------------------------------------------ worker
class BackgroundWorker:
    """Run long work on a thread and show its progress on the page, without blocking the event loop.

    ``start(work)`` runs ``work(stop, publish)`` on a daemon thread: ``stop`` is a
    :class:`threading.Event` the work must poll; ``publish(snapshot)`` stores the latest snapshot
    (cheap; call it as often as you like). A periodic callback of the session's event loop calls
    ``render(snapshot)`` with the newest snapshot at most every ``period`` ms (older ones are
    dropped), so bokeh models are only touched under the document lock. When the work returns (or
    raises), the last snapshot is rendered and ``on_done(error_or_None)`` is called on the loop.

    Outside a server or notebook loop (tests), nothing is scheduled: call :meth:`flush` yourself, or
    :meth:`join` which waits for the thread and then flushes. A destroyed session stops the work.
    """

    def __init__(self, render: Callable[[Any], Any], period: int = 100, name: str = "explorer-worker"):
        self._render = render
        self.period = period
        self.name = name
        self._lock = threading.Lock()
        self._latest: Any = None
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._on_done: Callable[[BaseException | None], Any] | None = None
        self._error: BaseException | None = None
        self._finished = False
        self._done_reported = True
        self._periodic: Any = None
        self._session_hooked = False
        self.render_count = 0
        self.started_at = 0.0

    @property
    def running(self) -> bool:
        """True while the thread is alive (or finished but its end not yet shown)."""
        return (self._thread is not None and self._thread.is_alive()) or not self._done_reported

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def start(self, work: Callable[[threading.Event, Callable[[Any], None]], Any],
              on_done: Callable[[BaseException | None], Any] | None = None) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the worker is already running; stop it first")
        self._stop = threading.Event()
        self._on_done, self._error, self._finished, self._done_reported = on_done, None, False, False
        self.started_at = time.perf_counter()
        self._hook_session()
        self._thread = threading.Thread(target=self._main, args=(work, self._stop), daemon=True, name=self.name)
        self._thread.start()
        self._start_periodic()

    def _main(self, work: Callable, stop: threading.Event) -> None:
        try:
            work(stop, self.publish)
        except BaseException as e:  # reported on the loop by flush()
            self._error = e
            traceback.print_exc()
        finally:
            self._finished = True

    def publish(self, snapshot: Any) -> None:
        """Store the newest snapshot (thread-safe; rendered by the next flush)."""
        with self._lock:
            self._latest, self._dirty = snapshot, True

    def flush(self) -> bool:
        """Render the newest snapshot if there is one; report the end of the work. True if rendered."""
        with self._lock:
            snap, dirty, self._dirty = self._latest, self._dirty, False
        rendered = False
        if dirty:
            try:
                self._render(snap)
                self.render_count += 1
                rendered = True
            except Exception:
                traceback.print_exc()
        if self._finished and not self._done_reported:
            self._done_reported = True
            self._stop_periodic()
            if self._on_done is not None:
                try:
                    self._on_done(self._error)
                except Exception:
                    traceback.print_exc()
        return rendered

    def stop(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Ask the work to stop; with ``wait``, join the thread and show its last state."""
        self._stop.set()
        if wait:
            self.join(timeout)

    def join(self, timeout: float | None = 30.0) -> None:
        """Wait for the thread to end, then flush (render the last snapshot, call on_done)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self.flush()

    # -- scheduling on the session's loop
    def _start_periodic(self) -> None:
        self._stop_periodic()
        try:
            if pn.state.curdoc is not None or _running_loop():
                self._periodic = pn.state.add_periodic_callback(self.flush, period=self.period, start=True)
        except Exception:
            self._periodic = None

    def _stop_periodic(self) -> None:
        if self._periodic is not None:
            try:
                self._periodic.stop()
            except Exception:
                pass
            self._periodic = None

    def _hook_session(self) -> None:
        if self._session_hooked:
            return
        doc = pn.state.curdoc
        if doc is not None and getattr(doc, "session_context", None) is not None:
            try:
                pn.state.on_session_destroyed(lambda _ctx: self.shutdown())
                self._session_hooked = True
            except Exception:
                pass

    def shutdown(self) -> None:
        """Stop the work without waiting (a closed session)."""
        self._stop.set()
        self._stop_periodic()


def _running_loop() -> bool:
    import asyncio

    try:
        return asyncio.get_running_loop().is_running()
    except RuntimeError:
        return False


def elapsed_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def sync_url(viewer: param.Parameterized, names: Sequence[str]) -> None:
    """Mirror parameters in the page URL's query string (both ways) when served; a no-op elsewhere."""
    try:
        if pn.state.location is not None and pn.state.curdoc is not None:
            pn.state.location.sync(viewer, {n: n for n in names})
    except Exception:
        traceback.print_exc()


# ------------------------------------------------------------------------------------------ live images
def diverging_palette(n: int = 256) -> list[str]:
    """RdBu_r (blue negative, white 0, red positive) with ``n`` colours, interpolated from ColorBrewer's RdBu11."""
    at = np.linspace(0, len(_RDBU) - 1, n)
    channels = [np.interp(at, np.arange(len(_RDBU)), _RDBU[:, k]) for k in range(3)]
    return ["#%02x%02x%02x" % tuple(int(round(v[i])) for v in channels) for i in range(n)]


class LiveImage(pn.viewable.Viewer):
    """A gray (or diverging) image pane for live updates: ``update(array)`` only swaps the pixel data.

    Same look as :func:`gray_image` / :func:`diverging_image` (fixed clim [0, 1], or symmetric ±max|v|
    for ``kind="diverging"``; square pixels, no axes), but drawn with a bare bokeh figure whose data
    source is replaced in place, so an update costs microseconds of Python instead of a HoloViews
    re-render (what a sampler showing many steps per second, or a click-to-filter, needs). A new
    shape re-frames the figure. ``show_marker`` circles a pixel and ``show_box`` outlines a square
    window around it, both in the image's pixel coordinates (row 0 at the top).
    """

    def __init__(self, shape: tuple[int, int], title: str = "", size: int = IMAGE_SIZE_PX, kind: str = "gray",
                 clim: tuple[float, float] | None = None, nan_color: str = "#f3f3f3", colorbar: bool = False,
                 value_label: str = "value", marker_color: str = "#19d219", box_color: str = "#333333", **params: Any):
        super().__init__(**params)
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
        from bokeh.palettes import gray
        from bokeh.plotting import figure

        h, w = int(shape[0]), int(shape[1])
        fw, fh = _frame((h, w), size)
        self.shape = (h, w)
        self.size = size
        palette = diverging_palette() if kind == "diverging" else gray(256)
        lo, hi = clim if clim is not None else ((-1.0, 1.0) if kind == "diverging" else (0.0, 1.0))
        self.mapper = LinearColorMapper(palette=palette, low=lo, high=hi, nan_color=nan_color)
        self.source = ColumnDataSource(dict(image=[np.full((h, w), np.nan, np.float32)]))
        fig = figure(title=title, frame_width=fw, frame_height=fh, x_range=(0, w), y_range=(0, h),
                     toolbar_location=None, tools="", match_aspect=True, min_border=2,
                     output_backend="webgl")  # webgl draws pixels unsmoothed, like HoloViews
        self._glyph = fig.image(image="image", source=self.source, x=0, y=0, dw=w, dh=h, color_mapper=self.mapper)
        fig.add_tools(HoverTool(tooltips=[(value_label, "@image{0.0000}")], renderers=[self._glyph]))
        if colorbar:
            fig.add_layout(ColorBar(color_mapper=self.mapper, width=12, padding=3, label_standoff=4,
                                    major_label_text_font_size="8pt", title=value_label,
                                    title_text_font_size="8pt", title_text_font_style="normal"), "right")
            fig.min_border_right = 92  # the colour bar and its tick labels: stays wide enough when the range changes
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.title.text_font_size = "11pt"
        self.figure = fig
        self.kind = kind
        self._marker_source = ColumnDataSource(dict(x=[], y=[]))
        self._box_source = ColumnDataSource(dict(left=[], right=[], bottom=[], top=[]))
        self._marker = fig.scatter("x", "y", source=self._marker_source, marker="circle", size=13, fill_alpha=0,
                                   line_width=2.5, line_color=marker_color).glyph
        self._box = fig.quad(left="left", right="right", bottom="bottom", top="top", source=self._box_source,
                             fill_alpha=0, line_color=box_color, line_dash="dashed", line_width=1.2).glyph
        self._pane = pn.pane.Bokeh(fig, margin=(0, 4))

    def _reframe(self, shape: tuple[int, int]) -> None:
        h, w = shape
        fw, fh = _frame(shape, self.size)
        self.figure.update(frame_width=fw, frame_height=fh)
        self.figure.x_range.update(start=0, end=w)
        self.figure.y_range.update(start=0, end=h)
        self._glyph.glyph.update(dw=w, dh=h)
        self.shape = shape

    def update(self, array: np.ndarray) -> None:
        """Show a new (H, W) array (row 0 at the top)."""
        a = np.asarray(array, dtype=np.float32)
        if a.ndim != 2:
            raise ValueError(f"expected an (H, W) image, got shape {a.shape}")
        if a.shape != self.shape:
            self._reframe(a.shape)
        if self.kind == "diverging":
            m = float(np.nanmax(np.abs(a))) if a.size and not np.isnan(a).all() else 1.0
            m = m if np.isfinite(m) and m > 0 else 1.0
            self.mapper.update(low=-m, high=m)
        self.source.data = dict(image=[np.ascontiguousarray(a[::-1])])  # bokeh draws row 0 at the bottom

    def show_marker(self, pixel: tuple[int, int]) -> None:
        """Circle pixel (row, col)."""
        self._marker_source.data = dict(x=[pixel[1] + 0.5], y=[self.shape[0] - pixel[0] - 0.5])

    def show_box(self, pixel: tuple[int, int], half: int) -> None:
        """Outline the (2·half + 1)² window centred on pixel (row, col)."""
        i, j, h = pixel[0], pixel[1], self.shape[0]
        self._box_source.data = dict(left=[j - half], right=[j + half + 1], bottom=[h - i - 1 - half],
                                     top=[h - i + half])

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.source.data["image"][0])[::-1]

    @property
    def marker_pixel(self) -> tuple[int, int] | None:
        """The circled pixel (row, col), or None."""
        xs, ys = self._marker_source.data["x"], self._marker_source.data["y"]
        return (int(self.shape[0] - ys[0] - 0.5), int(xs[0] - 0.5)) if len(xs) else None

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane
