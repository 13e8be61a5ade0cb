"""EnergyView: the energies −log p(x) of a data set under an energy model trained by dual score matching.

An energy network U_θ(y, t) (Guth, Kadkhodaie & Simoncelli, NeurIPS 2025; :mod:`explorer.energy`)
gives the negative log-likelihood of a clean image, NLL(x) = U_θ(x, t_min) + log Z. This tool computes
it for every image of a data set (the MNIST held-out or training digits of :mod:`explorer.data.registry`,
patches of the built-in photographs, a folder) with
:func:`explorer.energies.compute_energies` on a worker thread, chunk by chunk (progress bar, Stop, an
on-disk cache shared with ``python -m explorer.energies``), and shows the histogram in nats, nats/dim,
bits/dim or dB/dim with its maximum-likelihood Gumbel fit, the energies of reference images (constant
gray, uniform noise), the lowest- and highest-energy images, the images of a clicked bin, and where one
chosen image (uploaded or built-in) falls.

Which quantity is shown is the model card's (:func:`explorer.energy.nll_quantity`, named above the
summary and on the axis): for a model trained on dequantized 8-bit data (``energy-mnist``) the discrete
8-bit −log P(x), the uniform-dequantization bound over 8 seeded draws; otherwise the continuous density
−log p(x) on [0,1]^d. Every model call goes through the model's :class:`explorer.handle.ModelHandle`
(its lock serializes the sessions).
"""
from __future__ import annotations

import io
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import torch
from PIL import Image, ImageDraw

import explorer
from explorer import energies
from explorer.energy import CONTINUOUS, NLLQuantity, in_unit, nll_quantity
from explorer.data import BUILTIN_IMAGES, ImageFileError, builtin_image, square_resize
from explorer.data.builtin import SKIMAGE_DATA_DIR, builtin_path
from explorer.data.mnist import default_mnist_path

from .export import downloads, npz_bytes, png_bytes
from .models import ModelPicker, get_handle, model_names
from .plots import gray_image
from .sources import decode_upload
from .tasks import LatestTask
from .text import alert, explanation, fmt_number, notify, show_alert
from .theme import ACCENT
from .toolview import ToolView

MNIST_HELD_OUT = "MNIST held-out digits (the last 500, never trained on)"
MNIST_TRAINING = "MNIST training digits (the first 9500)"
MNIST_ALL = "MNIST, all 10 000 digits (9500 training, then 500 held out)"
MNIST_DATASETS = {MNIST_HELD_OUT: ("mnist:held-out", "MNIST held-out digits"),
                  MNIST_TRAINING: ("mnist:training", "MNIST training digits"),
                  MNIST_ALL: ("mnist", "MNIST digits (training and held out)")}
DATASETS = (*MNIST_DATASETS, "built-in photographs (patches)", "built-in photographs (resized)", "image folder")
UNITS = energies.UNITS
DEFAULT_MODEL = "energy-mnist"
CHUNK = 100  # images per compute_energies call (one progress step)
EXTREMES = 6  # lowest / highest images shown
MAX_BIN_IMAGES = 24  # images of the clicked bin shown
BIN_COLS = 12
TILE = 64  # on-screen size of a thumbnail
REFERENCE_LEVELS = (0.0, 0.5, 1.0)  # constant gray images marked on the histogram
PROBE_NONE, PROBE_UPLOAD = "— none —", "uploaded file"
PROBE_COLOR = "#d62728"
SUMMARY_CSS = """
table { font-size: 0.86em; border-collapse: collapse; width: 100%; }
th, td { padding: 1px 6px !important; }
h4 { margin: 0.1em 0 0.3em 0; }
"""
BIN_COLOR = "#ff7f0e"
REF_COLOR = "#6b6b6b"
LABEL_BG = dict(background_fill_color="white", background_fill_alpha=0.85)

EXPLANATION = r"""
An **energy model** $U_\theta(y, t)$ is a network trained to be $-\log p_t(y)$ up to a constant, where $p_t$ is
the image density blurred by Gaussian noise of variance $t = \sigma^2$. It is built from a bias-free score network
$s_\theta$,

$$U_\theta(y, t) = \tfrac12\langle y, s_\theta(y, t)\rangle \qquad (\text{here with } y \text{ centred on the data mean, plus a learned function of } t),$$

and trained by **dual score matching**: its space score $-\nabla_y U_\theta$ must denoise (Tweedie/Miyasawa) and its
time score $\partial_t U_\theta$ must obey the heat equation, which ties the noise levels together. The constant is
fixed once at a large noise level, where $p_T$ is nearly Gaussian, giving $\log Z$ and the negative log-likelihood

$$\mathrm{NLL}(x) = -\log p(x) = U_\theta(x, t_{\min}) + \log Z \quad \text{(nats per image)}.$$

- **Which likelihood** (named above the summary and on the axis): a model trained on dequantized 8-bit images,
  $x + u$ with $u \sim U[0, 2^{-8})^d$ (its card says so; `energy-mnist`), is shown as the **discrete 8-bit**
  $-\log P(x)$, where $P(x) = \int_{[0,2^{-8})^d} p(x+u)\,du$ is the probability of the image's bin. By Jensen's inequality
  $-\log P(x) \le \mathbb{E}_u[-\log p(x+u)] + 8\,d\ln 2$ (the uniform-dequantization bound), estimated by the mean over
  8 seeded draws of $u$ per image ($\pm$ its standard error in the summary); in bits/dim it is directly comparable
  with the "bits/dim" of other 8-bit models. Other models show the **continuous density** $-\log p(x)$ on $[0,1]^d$ at
  the image itself, which can be negative (a density can exceed 1) and is not a discrete likelihood.
- **Units**: per image in nats; per dimension ($d = C\cdot H\cdot W$ values) in nats/dim $= \mathrm{NLL}/d$,
  bits/dim $= \mathrm{NLL}/(d\ln 2)$ or dB/dim $= 10\cdot\mathrm{NLL}/(d\ln 10)$ ($-10\log_{10}$ of the probability, per
  dimension). MNIST digits are zero-padded to 32×32: $d = 1024$, of which 240 values are always 0, so their
  bits/dim are per padded pixel and not comparable with results on 28×28 MNIST.
- **MNIST**: the last 500 digits are **held out** (no model here trained on them); the first 9500 are the
  **training digits** of `bf-mnist` and `energy-mnist`, so their energies are in-sample.
- **Histogram**: how many images have each energy (click a bar to see its images). The curve is the
  maximum-likelihood **Gumbel** fit, $f(x) = \tfrac1\beta e^{-z - e^{-z}}$, $z = (x-\mu)/\beta$ (mirrored when the
  energies are skewed to the left), scaled to image counts.
- **References**: constant images (black, mid-gray, white) and uniform-noise images of the same size; markers
  outside the range of the data are drawn as arrows at the edge, with their value.
- **Your image**: an uploaded (or built-in) photograph, converted to gray and centre-cropped and resized to the
  size of the data set's images, placed on the histogram (red).

A model that is not normalized yet ($\log Z$ unknown) shows relative energies $U_\theta(x, t_{\min})$.
(Guth, Kadkhodaie & Simoncelli, *Learning normalized image densities via dual score matching*, NeurIPS 2025.)
"""


# ------------------------------------------------------------------------------------------ helpers
def is_energy_card(card: dict[str, Any]) -> bool:
    kind = str(card.get("kind", card.get("type", ""))).lower()
    return kind == "energy" or "energy" in card or str(card.get("architecture", "")).lower().startswith("energy")


def energy_model_names() -> list[str]:
    """Catalog energy models (``energy-mnist`` first) and registered handles whose model has ``nll``."""
    try:
        cards = {c["name"]: c for c in explorer.catalog()}
    except Exception:
        cards = {}
    names = []
    for n in model_names(include_classical=False):
        if n in cards:
            ok = is_energy_card(cards[n])
        else:  # a registered handle: already built
            try:
                ok = callable(getattr(getattr(get_handle(n), "model", None), "nll", None))
            except Exception:
                ok = False
        if ok:
            names.append(n)
    if DEFAULT_MODEL in names:
        names.remove(DEFAULT_MODEL)
        names.insert(0, DEFAULT_MODEL)
    return names


def fit_to_shape(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop to the aspect ratio of ``shape`` (H, W), then resize to it (area-averaging when shrinking)."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    h, w = int(shape[0]), int(shape[1])
    if h == w:
        return square_resize(img, h).astype(np.float32)
    H, W = img.shape
    if H * w > W * h:  # too tall
        ch, cw = max(1, round(W * h / w)), W
    else:
        ch, cw = H, max(1, round(H * w / h))
    top, left = (H - ch) // 2, (W - cw) // 2
    crop = img[top:top + ch, left:left + cw]
    method = Image.Resampling.BOX if (h <= ch and w <= cw) else Image.Resampling.BICUBIC
    out = np.asarray(Image.fromarray(crop).resize((w, h), method), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def to_unit(nats: Any, dims: Any, unit: str) -> np.ndarray:
    """Energies in nats per image → ``unit`` (:func:`explorer.energy.in_unit`, the one conversion)."""
    v = np.atleast_1d(np.asarray(nats, dtype=np.float64))
    d = np.broadcast_to(np.asarray(dims, dtype=np.int64), v.shape)
    return np.asarray(in_unit(v, d, unit), dtype=np.float64)


def axis_label(unit: str, quantity: NLLQuantity = CONTINUOUS) -> str:
    """"−log p(x), density on [0,1]^d (bits/dim)" or "−log P(x), 8-bit discrete (bits/dim)"."""
    return f"{quantity.short()} ({'nats per image' if unit == 'nats' else unit})"


def bin_members(values: np.ndarray, edges: np.ndarray, i: int) -> np.ndarray:
    """Indices of the values in bin ``i`` of ``edges`` ([e_i, e_i+1), the last bin closed), as np.histogram counts."""
    lo, hi = edges[i], edges[i + 1]
    inside = (values >= lo) & ((values <= hi) if i == len(edges) - 2 else (values < hi))
    return np.nonzero(inside)[0]


def _display(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    return a.mean(axis=-1) if a.ndim == 3 else a


class DataSetError(RuntimeError):
    """The chosen data set cannot be listed (MNIST missing, no such folder, no images)."""


class EnergyView(ToolView):
    """Energies of a data set under an energy model: histogram (+ Gumbel fit, references), extremes,
    the images of a clicked bin, one chosen image placed on the histogram.

    Parameters: ``dataset`` (:data:`DATASETS`), ``folder`` (for "image folder"), ``folder_patches``
    (cut the folder's images into patches), ``patch`` (patch / resize size), ``count`` (the first images
    of the data set used), ``use_cache``; display: ``unit``, ``bins``, ``show_all_references``,
    ``selected_bin``; ``probe`` (the single image: none, uploaded file or a built-in photograph).
    Results: ``report`` (an :class:`explorer.energies.EnergyReport`), ``items`` (its images),
    ``references`` (:func:`explorer.energies.reference_energies`), ``probe_image`` / ``probe_nats``.
    """

    title = "Energies of images"

    dataset = param.Selector(objects=list(DATASETS), default=DATASETS[0], doc="Images whose energies are computed")
    folder = param.String(default="", doc="Folder of images (PNG, JPEG, TIFF…) for the 'image folder' data set")
    folder_patches = param.Boolean(default=False, doc="Cut the folder's images into non-overlapping patches")
    patch = param.Selector(objects=[16, 32, 64], default=32, doc="Patch size / resized size (pixels per side)")
    count = param.Integer(default=500, bounds=(3, 10000), doc="Use the first N images of the data set")
    use_cache = param.Boolean(default=True, doc="Reuse (and store) energies in the on-disk cache")
    unit = param.Selector(objects=list(UNITS), default="bits/dim", doc="Unit of the energies shown")
    bins = param.Selector(objects=["auto", 10, 20, 40, 80], default="auto", doc="Number of histogram bins")
    show_all_references = param.Boolean(default=False, doc="Widen the axis to show every reference energy")
    selected_bin = param.Integer(default=None, allow_None=True, doc="Index of the clicked histogram bin")
    probe = param.Selector(objects=[PROBE_NONE, PROBE_UPLOAD, *BUILTIN_IMAGES], default=PROBE_NONE,
                           doc="One image placed on the histogram")

    def __init__(self, model: str | None = None, **params: Any):
        super().__init__(**params)
        self.picker = ModelPicker(model=model, include_classical=False)
        names = energy_model_names()
        chosen = model or (names[0] if names else None)
        if chosen is not None and chosen not in names:
            names = [chosen, *names]
        self.picker.param.model.objects = names
        self.picker.model = chosen
        self.picker._select.name = "Energy model"

        self.report: energies.EnergyReport | None = None
        self.quantity: NLLQuantity = CONTINUOUS
        self.data_name = ""  # the items_for name of the data set computed
        self.items: list[energies.Item] = []
        self.shape: tuple[int, int] = (32, 32)
        self.references: dict[str, Any] | None = None
        self.model_name: str = ""
        self.data_label: str = ""
        self.computed = 0
        self.log_z = float("nan")
        self.seconds = 0.0
        self.probe_image: np.ndarray | None = None
        self.probe_nats: float | None = None
        self.probe_label = ""
        self._uploaded: np.ndarray | None = None
        self._upload_name = ""
        self._tap: hv.streams.Tap | None = None
        self.task = LatestTask(self._compute, self._render, self._on_error, self._on_done, name="energy")

        sw = dict(sizing_mode="stretch_width")
        self._alert = alert()
        self._note = alert("warning")
        self._failures = alert("warning")
        self._probe_alert = alert()
        self._progress = pn.indicators.Progress(value=0, max=100, height=12, bar_color="primary", margin=(4, 5), **sw)
        self._status = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"})
        self._run = pn.widgets.Button(label="▶ Compute energies", color="primary", width=170)
        self._run.on_click(lambda _e: self.compute())
        self._stop = pn.widgets.Button(label="■ Stop", color="warning", width=90, disabled=True)
        self._stop.on_click(lambda _e: self.stop())
        self._hist_pane = pn.pane.HoloViews(None, linked_axes=False, min_height=400, min_width=520, **sw)
        self._summary = pn.pane.Markdown("", css_classes=["explorer-number"], width=390, margin=(0, 10),
                                         stylesheets=[SUMMARY_CSS])
        self._bin_title = pn.pane.Markdown("#### Images in a bin\nClick a bar of the histogram to see its images.",
                                           margin=(0, 10), **sw)
        self._bin_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._low_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._high_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._probe_pane = pn.pane.HoloViews(None, linked_axes=False, margin=0)
        self._probe_text = pn.pane.Markdown("", css_classes=["explorer-number"], margin=(0, 10), **sw)
        self._file = pn.widgets.FileInput(accept=".png,.jpg,.jpeg,.tif,.tiff,.bmp,.gif,.pgm,.ppm,.webp",
                                          multiple=False, **sw)
        self._file.param.watch(self._on_file, "value")

        self.picker.param.watch(lambda _e: self.compute(), "model")
        self.compute()

    # ------------------------------------------------------------------ requests
    def _source(self) -> tuple[str, dict[str, Any], str]:
        """(items_for data argument, its keyword arguments, a human label) of the chosen data set."""
        p = int(self.patch)
        if self.dataset in MNIST_DATASETS:
            data, label = MNIST_DATASETS[self.dataset]
            return data, {}, label
        if self.dataset == "built-in photographs (patches)":
            return f"patches:{SKIMAGE_DATA_DIR}", dict(patch=p, per_image=16), f"{p}×{p} patches of the built-in photographs"
        if self.dataset == "built-in photographs (resized)":
            return "builtin", dict(size=p), f"built-in photographs resized to {p}×{p}"
        folder = os.path.expanduser(self.folder.strip())
        if self.folder_patches:
            return f"patches:{folder}", dict(patch=p, per_image=16), f"{p}×{p} patches of {folder}"
        return folder, {}, f"images of {folder}"

    @param.depends("dataset", "folder", "folder_patches", "patch", "count", "use_cache", watch=True)
    def compute(self) -> None:
        """Start (or restart) the energies of the chosen data set under the chosen model."""
        handle = self.picker.handle
        if handle is None:
            show_alert(self._alert, self.picker.error or "No energy model.")
            return
        model = getattr(handle, "model", None)
        if not callable(getattr(model, "nll", None)):
            show_alert(self._alert, f"{self.picker.model!r} is not an energy model (it has no nll): choose another.")
            return
        if self.dataset == "image folder" and not self.folder.strip():
            show_alert(self._alert, "")
            self._status.object = "Type the path of a folder of images in the sidebar."
            return
        show_alert(self._alert, "")
        data, kw, label = self._source()
        self._stop.disabled = False
        self._run.disabled = True
        self._progress.value = 0
        self._status.object = "Listing the images…"
        self.task.submit(dict(handle=handle, name=self.picker.model, data=data, kw=kw, label=label,
                              quantity=nll_quantity(getattr(handle, "card", None)),
                              count=int(self.count), use_cache=bool(self.use_cache), dataset=self.dataset))

    def stop(self) -> None:
        """Cancel the computation; the energies computed so far are in the cache (Compute resumes from there)."""
        self.task.cancel()
        self._stop.disabled = True
        self._run.disabled = False
        self._status.object = ("Stopped. The energies computed so far are cached: ▶ Compute resumes from there."
                               if self.use_cache else "Stopped.")

    # ------------------------------------------------------------------ computation (worker thread)
    @staticmethod
    def list_items(data: str, kw: dict[str, Any], gray: bool = True,
                   quantity: NLLQuantity = CONTINUOUS) -> tuple[list[energies.Item], str]:
        """Every item of a data set and its :func:`explorer.energies.source_spec` (raises DataSetError)."""
        if data in energies.MNIST_SOURCES:
            path = default_mnist_path()
            if not path.is_file():
                raise DataSetError(f"MNIST is not available: {path} does not exist. Put the MNIST test images "
                                   "(t10k-images-idx3-ubyte.gz) there or set $EXPLORER_MNIST to the file, "
                                   "or choose another data set.")
        elif data not in ("builtin",):
            folder = Path(data.split(":", 1)[1] if data.startswith("patches:") else data)
            if not folder.is_dir():
                raise DataSetError(f"{folder}: no such folder.")
        try:
            items = energies.items_for(data, gray=gray, **kw)
        except ImageFileError as e:
            raise DataSetError(f"The data set could not be read: {e}") from e
        if data.startswith("patches:") and Path(data.split(":", 1)[1]) == SKIMAGE_DATA_DIR:
            keep = {builtin_path(n).name for n in BUILTIN_IMAGES}  # photographs only, not the package's drawings
            items = [it for it in items if it.label.split("@")[0] in keep]
        if not items:
            raise DataSetError(f"No images found in {data}.")
        source = energies.source_spec(data, gray, kw.get("size"), kw.get("patch", 32), kw.get("per_image", 16), quantity)
        return items, source

    def _compute(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        t0 = time.perf_counter()
        handle, quantity = req["handle"], req["quantity"]  # every model call below goes through the handle (its lock)
        items, source = self.list_items(req["data"], req["kw"], gray=handle.channels == 1, quantity=quantity)
        selected = items[:req["count"]]
        use_cache = req["use_cache"]
        # Each compute_energies call rewrites the cache with the entries of the items it was given, so every
        # call also gets the already-cached items of this source (instant): nothing computed before is lost.
        cached_keys = set(energies._read_cache(energies.cache_path(handle, source))) if use_cache else set()
        sel_keys = {it.key for it in selected}
        keep = [it for it in items if it.key in cached_keys and it.key not in sel_keys]
        done = [it for it in selected if it.key in cached_keys]
        todo = [it for it in selected if it.key not in cached_keys]
        n_cached = len(done)
        good: list[energies.Item] = []
        nats: list[float] = []
        dims: list[int] = []
        sds: list[float] = []
        failures: list[tuple[str, str]] = []
        failed: set[str] = set()
        publish(dict(kind="progress", done=n_cached, total=len(selected), cached=n_cached))
        for start in range(0, len(todo), CHUNK):
            if stop.is_set():
                return
            part = todo[start:start + CHUNK]
            prefix = keep + done if use_cache else []
            rep = energies.compute_energies(handle, prefix + part, source, use_cache=use_cache, progress=False)
            ok, v, d, sd, bad = _match(part, rep, len(prefix))
            failures += bad
            failed |= {it.key for it in part if it.key not in {g.key for g in ok}}
            if use_cache:
                done += ok
            else:
                good += ok
                nats += v
                dims += d
                sds += sd
            publish(dict(kind="progress", done=n_cached + start + len(part), total=len(selected), cached=n_cached))
        if stop.is_set():
            return
        if use_cache:  # every usable selected image is cached now: read them back in data-set order
            wanted = [it for it in selected if it.key not in failed]
            rep = energies.compute_energies(handle, wanted + keep, source, use_cache=True, progress=False)
            good, nats, dims, sds, bad = _match(wanted, rep, 0)
            failures += bad
        if good:
            shape = _common_shape(good)
            refs = energies.reference_energies(handle, shape, quantity=quantity)
        else:
            shape, refs = (32, 32), None
        report = energies.EnergyReport([it.label for it in good], np.asarray(nats, np.float64), np.asarray(dims, np.int64),
                                       energies.is_normalized(handle), failures, cached=n_cached, quantity=quantity,
                                       draw_sd=np.asarray(sds, np.float64))
        publish(dict(kind="result", report=report, items=good, shape=shape, references=refs, name=req["name"],
                     label=req["label"], data=req["data"], computed=len(todo), seconds=time.perf_counter() - t0,
                     total=len(selected), log_z=float(handle.model.log_z)))

    def _on_error(self, e: BaseException) -> None:
        msg = str(e) if isinstance(e, DataSetError) else f"The computation failed: {type(e).__name__}: {e}"
        show_alert(self._alert, msg)
        notify(msg)
        self._status.object = "Failed."

    def _on_done(self) -> None:
        self._stop.disabled = True
        self._run.disabled = False

    # ------------------------------------------------------------------ display (event loop)
    def _render(self, msg: dict[str, Any]) -> None:
        if msg["kind"] == "progress":
            total = max(1, msg["total"])
            self._progress.value = int(100 * msg["done"] / total)
            self._status.object = (f"Computing energies… {msg['done']} / {msg['total']} images "
                                   f"({msg['cached']} from the cache)")
            return
        report: energies.EnergyReport = msg["report"]
        self.report, self.items, self.shape, self.references = report, msg["items"], msg["shape"], msg["references"]
        self.model_name, self.data_label, self.computed, self.seconds = msg["name"], msg["label"], msg["computed"], msg["seconds"]
        self.log_z = msg["log_z"]
        self.quantity, self.data_name = report.quantity, msg["data"]
        self._progress.value = 100
        n = len(report.values)
        computed = max(0, msg["computed"] - len(report.failures))
        if not self.use_cache:
            parts = [f"{computed} computed, cache off"]
        elif computed == 0 and report.cached:
            parts = [f"all {report.cached} from the cache"]
        else:
            parts = [f"{report.cached} from the cache", f"{computed} computed"]
        if report.failures:
            parts.append(f"{len(report.failures)} unusable, listed below")
        self._status.object = f"Done: {n} energies of {msg['total']} images ({'; '.join(parts)}) in {msg['seconds']:.1f} s."
        if n == 0:
            show_alert(self._alert, "Every image failed: no energies to show (see the list of failures below).")
        show_alert(self._note, "" if report.normalized else
                   "This model is not normalized (log Z unknown): the energies are relative, U(x, t_min), "
                   "not −log p(x).")
        self._show_failures()
        with param.parameterized.discard_events(self):
            self.selected_bin = None
        self._update_probe()
        self.refresh()

    def refresh(self) -> None:
        """Redraw everything that depends on the energies (unit, bins, selection, probe)."""
        self._show_histogram()
        self._show_summary()
        self._show_extremes()
        self._show_bin()

    @param.depends("unit", "bins", "show_all_references", watch=True)
    def _on_display_change(self) -> None:
        if self.selected_bin is not None and self.selected_bin >= len(self.edges()) - 1:
            with param.parameterized.discard_events(self):
                self.selected_bin = None
        self.refresh()

    @param.depends("selected_bin", watch=True)
    def _on_select(self) -> None:
        self._show_histogram()
        self._show_bin()

    # -- numbers in the current unit
    def values(self) -> np.ndarray:
        """The energies shown, in ``unit`` (one per image of ``items``)."""
        if self.report is None:
            return np.zeros(0)
        return np.asarray(self.report.in_unit(self.unit), dtype=np.float64)

    def edges(self) -> np.ndarray:
        v = self.values()
        if v.size == 0:
            return np.zeros(0)
        return np.asarray(energies.histogram(v, self.bins)["edges"], dtype=np.float64)

    def counts(self) -> np.ndarray:
        v = self.values()
        return np.asarray(energies.histogram(v, self.bins)["counts"]) if v.size else np.zeros(0, int)

    def gumbel(self) -> dict[str, Any] | None:
        v = self.values()
        try:
            return energies.gumbel_fit(v) if v.size >= 3 else None
        except ValueError:
            return None

    def reference_markers(self) -> list[tuple[str, float]]:
        """(label, energy in ``unit``) of the reference images: constant black, mid-gray, white; uniform noise."""
        r = self.references
        if not r:
            return []
        d = int(np.prod(r["shape"]))
        out = []
        levels = np.asarray(r["gray_levels"])
        for g in REFERENCE_LEVELS:
            i = int(np.argmin(np.abs(levels - g)))
            name = {0.0: "black", 1.0: "white"}.get(g, f"gray {g:g}")
            out.append((f"constant {name}", float(to_unit(r["constant"][i], d, self.unit)[0])))
        out.append(("uniform noise (mean)", float(to_unit(r["uniform_noise_mean"], d, self.unit)[0])))
        return out

    def probe_value(self) -> float | None:
        if self.probe_nats is None or self.probe_image is None:
            return None
        return float(to_unit(self.probe_nats, self.probe_image.size, self.unit)[0])

    # -- selection
    def select_at(self, x: float | None) -> int | None:
        """Select the bin containing x (a click on the histogram); outside the bins nothing changes."""
        e = self.edges()
        if x is None or e.size < 2 or not (e[0] <= x <= e[-1]):
            return None
        i = int(np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(e) - 2))
        self.selected_bin = i
        return i

    def selected_indices(self) -> np.ndarray:
        """Indices (into ``items``) of the images in the selected bin, by increasing energy."""
        e = self.edges()
        if self.selected_bin is None or e.size < 2 or self.selected_bin >= len(e) - 1:
            return np.zeros(0, dtype=int)
        v = self.values()
        idx = bin_members(v, e, int(self.selected_bin))
        return idx[np.argsort(v[idx], kind="stable")]

    def extremes(self, k: int = EXTREMES) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the k lowest (increasing) and k highest (decreasing) energies."""
        v = self.values()
        order = np.argsort(v, kind="stable")
        return order[:k], order[::-1][:k]

    def image(self, i: int) -> np.ndarray:
        return _display(self.items[int(i)].load())

    # -- plots
    def figure(self) -> hv.Overlay | None:
        """The histogram with the Gumbel fit, the reference markers, the selected bin and the chosen image."""
        v = self.values()
        if v.size == 0:
            return None
        unit = self.unit
        xlabel = axis_label(unit, self.quantity)
        edges, counts = self.edges(), self.counts()
        top = float(max(counts.max(), 1))
        hist = hv.Histogram((edges, counts), kdims=[xlabel], vdims=["images"], label="images").opts(
            color=ACCENT, fill_alpha=0.75, line_color="white", tools=["hover", "tap"])
        layers: list[Any] = [hist]
        lo, hi = float(edges[0]), float(edges[-1])
        span = max(hi - lo, 1e-12)
        refs = self.reference_markers()
        probe = self.probe_value()
        xlo, xhi = lo - 0.04 * span, hi + 0.04 * span
        if probe is not None:
            xlo, xhi = min(xlo, probe - 0.04 * span), max(xhi, probe + 0.04 * span)
        if self.show_all_references and refs:
            xlo = min(xlo, min(r for _, r in refs) - 0.04 * span)
            xhi = max(xhi, max(r for _, r in refs) + 0.04 * span)
        if self.selected_bin is not None and self.selected_bin < len(counts):
            i = int(self.selected_bin)
            sel = np.zeros_like(counts)
            sel[i] = counts[i]
            layers.append(hv.Histogram((edges, sel), kdims=[xlabel], vdims=["images"], label="selected bin").opts(
                color=BIN_COLOR, fill_alpha=0.9, line_color="white"))
        g = self.gumbel()
        if g is not None:
            width = float(np.diff(edges).mean())
            xs = np.linspace(xlo, xhi, 400)
            ys = energies.gumbel_pdf(xs, g) * v.size * width
            layers.append(hv.Curve((xs, ys), xlabel, "images",
                                   label=f"Gumbel fit (μ = {fmt_number(g['loc'])}, β = {fmt_number(g['scale'])})").opts(
                color="#222222", line_width=2))
        ymax = top * 1.45
        span_x = xhi - xlo
        for k, (name, x) in enumerate(refs):
            y = top * (1.38 - 0.09 * k)
            text = f"{name}: {fmt_number(x)}"
            if x < xlo:  # off the axis: an arrow-text at the edge, pointing to where it is
                layers.append(hv.Text(xlo, y, f" ◀ {text}", halign="left", fontsize=8).opts(text_color=REF_COLOR, **LABEL_BG))
            elif x > xhi:
                layers.append(hv.Text(xhi, y, f"{text} ▶ ", halign="right", fontsize=8).opts(text_color=REF_COLOR,
                                                                                            **LABEL_BG))
            else:
                layers.append(hv.VLine(x).opts(color=REF_COLOR, line_dash="dashed", line_width=1.2))
                right = x < xlo + 0.6 * span_x
                layers.append(hv.Text(x, y, f" {text} " if right else f"{text} ", halign="left" if right else "right",
                                      fontsize=8).opts(text_color=REF_COLOR, **LABEL_BG))
        if probe is not None:
            layers.append(hv.VLine(probe).opts(color=PROBE_COLOR, line_width=2.5))
            right = probe < xlo + 0.6 * span_x
            layers.append(hv.Text(probe, top * 0.97, f" {self.probe_label}: {fmt_number(probe)} " if right else
                                  f"{self.probe_label}: {fmt_number(probe)} ", halign="left" if right else "right",
                                  fontsize=9).opts(text_color=PROBE_COLOR, text_font_style="bold", **LABEL_BG))
        n = v.size
        title = f"{n} {self.data_label} under {self.model_name}"
        return hv.Overlay(layers).opts(
            xlabel=xlabel, ylabel="images", title=title, xlim=(xlo, xhi), ylim=(0, ymax), responsive=True,
            min_height=400, min_width=520, show_grid=True, legend_position="top", legend_cols=3, toolbar=None,
            fontsize={"title": "11pt", "legend": "9pt"})

    def _show_histogram(self) -> None:
        fig = self.figure()
        if fig is None:
            self._hist_pane.object = None
            self._tap = None
            return
        self._tap = hv.streams.Tap(source=fig, x=None, y=None)
        self._tap.add_subscriber(lambda x=None, y=None, **_: self.select_at(x))
        self._hist_pane.object = fig

    def _tiles(self, idx: Sequence[int], cols: int, size: int = TILE) -> hv.Layout | None:
        if len(idx) == 0:
            return None
        v = self.values()
        imgs = [gray_image(self.image(i), title=f"{fmt_number(v[i])}", size=size, fontsize={"title": "9pt"})
                for i in idx]
        return hv.Layout(imgs).cols(cols).opts(toolbar=None, shared_axes=False)

    def _show_extremes(self) -> None:
        if self.values().size == 0:
            self._low_pane.object = self._high_pane.object = None
            return
        low, high = self.extremes()
        self._low_pane.object = self._tiles(low, EXTREMES)
        self._high_pane.object = self._tiles(high, EXTREMES)

    def _show_bin(self) -> None:
        idx = self.selected_indices()
        unit = self.unit if self.unit != "nats" else "nats per image"
        if self.selected_bin is None or self.report is None:
            self._bin_title.object = "#### Images in a bin\nClick a bar of the histogram to see its images."
            self._bin_pane.object = None
            return
        e = self.edges()
        i = int(self.selected_bin)
        shown = idx[:MAX_BIN_IMAGES]
        more = f" (the {len(shown)} lowest shown)" if len(idx) > len(shown) else ""
        right = "]" if i == len(e) - 2 else ")"
        self._bin_title.object = (f"#### Images in the selected bin [{fmt_number(e[i], 4)}, {fmt_number(e[i + 1], 4)}{right} "
                                  f"{unit}: {len(idx)} image{'s' if len(idx) != 1 else ''}{more}\n"
                                  f"Each titled with its {self.quantity.short()} in {unit}.")
        self._bin_pane.object = self._tiles(shown, BIN_COLS)

    def summary_stats(self) -> dict[str, float] | None:
        """The summary shown (:func:`explorer.energies.summary` of the energies in ``unit``), with
        ``mean_stderr``, the standard error the dequantization draws leave on the mean (NaN for a
        continuous density); None before any energies."""
        v = self.values()
        if v.size == 0 or self.report is None:
            return None
        return {**energies.summary(v), "mean_stderr": self.report.mean_stderr(self.unit)}

    def _show_summary(self) -> None:
        s = self.summary_stats()
        if s is None:
            self._summary.object = ""
            return
        unit = self.unit
        u = "nats per image" if unit == "nats" else unit
        sn = energies.summary(self.report.values)
        rows = [("number of images", str(s["count"]), "")]
        for key, name in (("mean", "mean"), ("std", "standard deviation"), ("min", "minimum"),
                          ("median", "median"), ("max", "maximum")):
            rows.append((name, fmt_number(s[key], 4), fmt_number(sn[key], 4)))
            if key == "mean" and math.isfinite(s["mean_stderr"]):
                rows.append((f"± standard error of the mean ({self.quantity.draws} draws)", fmt_number(s["mean_stderr"], 2),
                             fmt_number(self.report.mean_stderr("nats"), 2)))
        rows.append(("skewness (no unit)", fmt_number(s["skewness"], 3), fmt_number(sn["skewness"], 3)))
        g = self.gumbel()
        if g is not None:
            rows.append((f"Gumbel location μ ({'maxima' if g['side'] == 'right' else 'minima'})",
                         fmt_number(g["loc"], 4), ""))
            rows.append(("Gumbel scale β", fmt_number(g["scale"], 4), ""))
        for name, x in self.reference_markers():
            rows.append((name, fmt_number(x, 4), ""))
        p = self.probe_value()
        if p is not None:
            rows.append((f"**{self.probe_label}**", f"**{fmt_number(p, 4)}**", fmt_number(self.probe_nats, 4)))
        head = f"| {self.quantity.short()} | in {u} | in nats per image |\n|:--|--:|--:|\n"
        body = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
        d = sorted(set(self.report.dims.tolist()))
        dims = f"d = {d[0]}" if len(d) == 1 else f"d ∈ {{{', '.join(map(str, d[:4]))}{'…' if len(d) > 4 else ''}}}"
        lz = self.log_z
        lz_text = f"log Z = {fmt_number(lz, 4)} nats" if math.isfinite(lz) else "log Z unknown (relative energies)"
        note = energies.data_note(self.data_name)
        self._summary.object = (f"#### Summary\n**Shown:** {self.quantity.describe()}.\n\n{head}{body}\n\n"
                                f"<span style='color:#666'>{note or dims + ' values per image'} · {lz_text} · "
                                f"references: images of the data set's size {self.shape[0]}×{self.shape[1]}</span>")

    def _show_failures(self) -> None:
        f = self.report.failures if self.report is not None else []
        if not f:
            show_alert(self._failures, "")
            return
        lines = [f"- **{a}**: {b}" for a, b in f[:30]]
        if len(f) > 30:
            lines.append(f"- … and {len(f) - 30} more")
        show_alert(self._failures, f"**{len(f)} image{'s' if len(f) != 1 else ''} could not be used** "
                                   f"(not in the histogram):\n" + "\n".join(lines))

    # ------------------------------------------------------------------ the single image
    def load_upload(self, data: bytes, filename: str = "upload.png") -> bool:
        """Use an uploaded file as the probe image; a bad file shows an error (never raises). True if used."""
        try:
            img = decode_upload(data, filename)
        except ValueError as e:
            self._upload_error(str(e))
            return False
        self._uploaded, self._upload_name = img, filename or "upload"
        show_alert(self._probe_alert, "")
        if self.probe != PROBE_UPLOAD:
            self.probe = PROBE_UPLOAD  # → _update_probe
        else:
            self._update_probe()
            self.refresh()
        return True

    def _upload_error(self, msg: str) -> None:
        show_alert(self._probe_alert, msg)
        notify(msg)

    def _on_file(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.load_upload(event.new, self._file.filename or "upload")

    @param.depends("probe", watch=True)
    def _on_probe(self) -> None:
        self._update_probe()
        self.refresh()

    def _update_probe(self) -> None:
        """Energy of the chosen single image, resized to the data set's image size."""
        self.probe_image, self.probe_nats = None, None
        self._probe_pane.object = None
        self._probe_text.object = ""
        if self.probe == PROBE_NONE:
            return
        if self.probe == PROBE_UPLOAD:
            if self._uploaded is None:
                self._probe_text.object = "Choose a file above."
                return
            raw, label = self._uploaded, Path(self._upload_name).stem or "upload"
        else:
            raw, label = builtin_image(self.probe), self.probe
        handle = self.picker.handle
        if handle is None:
            return
        try:
            img = fit_to_shape(raw, self.shape)
            x = torch.from_numpy(np.repeat(img[None, None], handle.channels, axis=1))
            quantity = self.report.quantity if self.report is not None else nll_quantity(getattr(handle, "card", None))
            nats = float(energies.image_energies(handle, x, quantity=quantity)[0])
        except Exception as e:
            self._upload_error(f"Could not compute the energy of {label!r}: {type(e).__name__}: {e}")
            return
        self.probe_image, self.probe_nats, self.probe_label = img, nats, label
        show_alert(self._probe_alert, "")
        self._probe_pane.object = gray_image(img, title=f"{label} ({img.shape[0]}×{img.shape[1]})", size=150,
                                             fontsize={"title": "9pt"})
        self._show_probe_text()

    def _show_probe_text(self) -> None:
        if self.probe_nats is None:
            return
        u = self.unit
        parts = [f"{fmt_number(float(to_unit(self.probe_nats, self.probe_image.size, k)[0]), 4)} {k}" for k in UNITS]
        rank = ""
        v = self.report.values if self.report is not None else np.zeros(0)
        if v.size:
            frac = float(np.mean(v / self.report.dims < self.probe_nats / self.probe_image.size))
            rank = f"<br>{100 * frac:.1f} % of the data set has a lower energy (is more probable per dimension)"
        rounded = " (rounded to 8 bits)" if self.quantity.discrete else ""
        self._probe_text.object = (f"{self.quantity.short()}{rounded} = " + " = ".join(parts) + f" (shown in {u}){rank}")

    # ------------------------------------------------------------------ downloads
    def _histogram_png(self, width: int = 960, height: int = 400) -> Image.Image:
        """The histogram, Gumbel fit and markers rasterized with PIL (no matplotlib)."""
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        font, small = _font(14), _font(12)
        v = self.values()
        if v.size == 0:
            draw.text((20, 20), "no energies", fill=(0, 0, 0), font=font)
            return img
        edges, counts = self.edges(), self.counts()
        L, R, T, B = 64, 24, 36, 56
        lo, hi = float(edges[0]), float(edges[-1])
        refs, probe = self.reference_markers(), self.probe_value()
        xs_extra = [x for _, x in refs] if self.show_all_references else []
        xs_extra += [probe] if probe is not None else []
        x0, x1 = min([lo, *xs_extra]), max([hi, *xs_extra])
        pad = 0.04 * max(x1 - x0, 1e-12)
        x0, x1 = x0 - pad, x1 + pad
        top = float(max(counts.max(), 1))
        ymax = top * 1.3
        px = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)  # noqa: E731
        py = lambda y: height - B - y / ymax * (height - T - B)  # noqa: E731

        def label(x: float, y: float, text: str, fill: tuple[int, int, int], f: Any) -> None:
            w = draw.textlength(text, font=f)
            xx = px(x) + 4 if px(x) + 4 + w < width - R else px(x) - 4 - w
            draw.text((xx, y), text, fill=fill, font=f)

        for i, c in enumerate(counts):
            color = (255, 127, 14) if i == self.selected_bin else (31, 95, 139)
            draw.rectangle([px(edges[i]), py(c), px(edges[i + 1]), py(0)], fill=color, outline="white")
        g = self.gumbel()
        if g is not None:
            xs = np.linspace(x0, x1, 300)
            ys = energies.gumbel_pdf(xs, g) * v.size * float(np.diff(edges).mean())
            draw.line([(px(a), py(min(b, ymax))) for a, b in zip(xs, ys)], fill=(34, 34, 34), width=2)
        k = 0
        for name, x in refs:
            if x0 <= x <= x1:
                draw.line([(px(x), T), (px(x), height - B)], fill=(110, 110, 110), width=1)
                label(x, T + 2 + 15 * k, f"{name}: {fmt_number(x)}", (90, 90, 90), small)
                k += 1
        if probe is not None:
            draw.line([(px(probe), T), (px(probe), height - B)], fill=(214, 39, 40), width=3)
            label(probe, T + 2 + 15 * k, f"{self.probe_label}: {fmt_number(probe)}", (214, 39, 40), small)
        draw.line([(L, height - B), (width - R, height - B)], fill=(0, 0, 0))
        draw.line([(L, T), (L, height - B)], fill=(0, 0, 0))
        for t in np.linspace(x0, x1, 7):
            draw.line([(px(t), height - B), (px(t), height - B + 4)], fill=(0, 0, 0))
            text = fmt_number(t)
            draw.text((px(t) - draw.textlength(text, font=small) / 2, height - B + 6), text, fill=(0, 0, 0), font=small)
        for t in np.linspace(0, top, 5):
            text = f"{t:.0f}"
            draw.line([(L - 4, py(t)), (L, py(t))], fill=(0, 0, 0))
            draw.text((L - 8 - draw.textlength(text, font=small), py(t) - 7), text, fill=(0, 0, 0), font=small)
        xl = axis_label(self.unit, self.quantity).replace("−", "-")
        draw.text((L + (width - L - R - draw.textlength(xl, font=font)) / 2, height - 24), xl, fill=(0, 0, 0), font=font)
        draw.text((6, T - 22), "images", fill=(0, 0, 0), font=small)
        draw.text((L, 8), f"Energies of {v.size} {self.data_label} under {self.model_name}", fill=(0, 0, 0), font=font)
        return img

    def _png(self) -> io.BytesIO:
        hist = self._histogram_png()
        panels: list[tuple] = []
        if self.values().size:
            v = self.values()
            low, high = self.extremes()
            panels += [(f"lowest {fmt_number(v[i])}", self.image(i)) for i in low]
            panels += [(f"highest {fmt_number(v[i])}", self.image(i)) for i in high]
            panels += [(f"bin {fmt_number(v[i])}", self.image(i)) for i in self.selected_indices()[:MAX_BIN_IMAGES]]
        if self.probe_image is not None:
            panels.append((f"{self.probe_label} {fmt_number(self.probe_value())}", self.probe_image))
        tiles = Image.open(png_bytes(panels, min_size=96, columns=EXTREMES)).convert("RGB")
        canvas = Image.new("RGB", (max(hist.width, tiles.width), hist.height + tiles.height), "white")
        canvas.paste(hist, (0, 0))
        canvas.paste(tiles, (0, hist.height))
        buf = io.BytesIO()
        canvas.save(buf, format="PNG")
        buf.seek(0)
        return buf

    def _npz(self) -> io.BytesIO:
        arrays: dict[str, Any] = {}
        params: dict[str, Any] = dict(model=self.model_name, data=self.data_label, dataset=self.dataset,
                                      folder=self.folder, folder_patches=self.folder_patches, patch=self.patch,
                                      count=self.count, unit=self.unit, bins=self.bins, selected_bin=self.selected_bin,
                                      use_cache=self.use_cache, probe=self.probe)
        if self.report is not None:
            r = self.report
            low, high = self.extremes()
            arrays.update(labels=np.array(r.labels, dtype=str), nats=r.values, dims=r.dims, values=self.values(),
                          hist_counts=self.counts(), hist_edges=self.edges(), lowest=low, highest=high,
                          selected=self.selected_indices())
            params.update(normalized=r.normalized, cached=r.cached, failures=[list(f) for f in r.failures],
                          quantity={**r.quantity.spec(), "description": r.quantity.describe()},
                          mean_stderr_of_draws=r.mean_stderr(self.unit),
                          summary=energies.summary(self.values()) if self.values().size else None,
                          gumbel=self.gumbel(), references=self.references,
                          reference_markers=dict(self.reference_markers()))
        if self.probe_image is not None:
            arrays.update(probe_image=self.probe_image, probe_nats=np.float64(self.probe_nats))
            params.update(probe_label=self.probe_label, probe_value=self.probe_value())
        return npz_bytes(arrays, params)

    def _basename(self) -> str:
        names = {k: v[0].replace(":", "-") for k, v in MNIST_DATASETS.items()}
        data = {**names, "image folder": Path(self.folder or "folder").name}.get(self.dataset, "builtin")
        return f"energy_{self.model_name or 'model'}_{data}_{self.unit.replace('/', '-per-')}".replace(" ", "_")

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> pn.Column:
        w = dict(sizing_mode="stretch_width")
        folder = pn.widgets.TextInput.from_param(self.param.folder, name="Folder path", placeholder="/path/to/images", **w)
        patches = pn.widgets.Checkbox.from_param(self.param.folder_patches, name="Cut into patches", **w)

        @pn.depends(self.param.dataset)
        def folder_widgets(dataset: str) -> pn.viewable.Viewable:
            return pn.Column(folder, patches, margin=0, **w) if dataset == "image folder" else pn.Spacer(height=0)

        upload_hint = pn.pane.Markdown("PNG / JPEG / TIFF…, converted to gray, centre-cropped and resized to the "
                                       "data set's image size.", styles={"color": "#666", "font-size": "0.85em"},
                                       margin=(0, 10))
        return pn.Column(
            self.picker,
            pn.pane.Markdown("**Data set**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(self.param.dataset, name="Images", **w),
            folder_widgets,
            pn.widgets.Select.from_param(self.param.patch, name="Patch / resized size (pixels per side)", **w),
            pn.widgets.IntInput.from_param(self.param.count, name="Number of images (the first N)", step=100, **w),
            pn.widgets.Checkbox.from_param(self.param.use_cache, name="Use the on-disk energy cache", **w),
            pn.pane.Markdown("**Display**", margin=(10, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(self.param.unit, name="", button_type="primary",
                                                   button_style="outline", **w),
            pn.widgets.Select.from_param(self.param.bins, name="Histogram bins", **w),
            pn.widgets.Checkbox.from_param(self.param.show_all_references, name="Widen the axis to every reference", **w),
            pn.pane.Markdown("**One image on the histogram**", margin=(10, 10, 0, 10)),
            pn.widgets.Select.from_param(self.param.probe, name="Image", **w),
            self._file, upload_hint, self._probe_alert, self._probe_pane, self._probe_text,
            **w)

    def main(self) -> pn.Column:
        self.task.bind()
        sw = dict(sizing_mode="stretch_width")
        return pn.Column(
            self._alert,
            pn.Card(pn.Row(self._run, self._stop, pn.Column(self._progress, self._status, **sw), **sw),
                    hide_header=True, **sw),
            self._note,
            pn.Row(self._hist_pane, self._summary, **sw),
            pn.Row(pn.Column(pn.pane.Markdown(f"#### {EXTREMES} lowest energies (most probable)", margin=(0, 10)),
                             self._low_pane),
                   pn.Spacer(width=20),
                   pn.Column(pn.pane.Markdown(f"#### {EXTREMES} highest energies (least probable)", margin=(0, 10)),
                             self._high_pane), **sw),
            pn.Column(self._bin_title, self._bin_pane, **sw),
            self._failures,
            downloads(self._png, self._npz, self._basename),
            explanation(EXPLANATION, title="Energies: −log p(x) from dual score matching"),
            **sw)


def _match(items: Sequence[energies.Item], rep: energies.EnergyReport, offset: int
           ) -> tuple[list[energies.Item], list[float], list[int], list[float], list[tuple[str, str]]]:
    """Pair ``items`` with the report entries from ``offset`` on (a report lists the usable items in order):
    (items, nats, dims, draw sds, failures)."""
    labels, vals, dims = rep.labels[offset:], rep.values[offset:], rep.dims[offset:]
    spread = rep.draw_sd[offset:] if rep.draw_sd is not None else np.full(len(labels), np.nan)
    reasons = dict(rep.failures)
    good, v, d, sd, bad = [], [], [], [], []
    j = 0
    for it in items:
        if j < len(labels) and labels[j] == it.label:
            good.append(it)
            v.append(float(vals[j]))
            d.append(int(dims[j]))
            sd.append(float(spread[j]))
            j += 1
        else:
            bad.append((it.label, reasons.get(it.label, "no energy")))
    return good, v, d, sd, bad


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except Exception:  # an old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _common_shape(items: Sequence[energies.Item]) -> tuple[int, int]:
    """The most common (H, W) among the first images (the size references and uploads are made at)."""
    shapes: dict[tuple[int, int], int] = {}
    for it in items[:64]:
        try:
            s = tuple(int(n) for n in np.shape(it.load())[:2])
        except Exception:
            continue
        shapes[s] = shapes.get(s, 0) + 1
    return max(shapes, key=shapes.get) if shapes else (32, 32)
