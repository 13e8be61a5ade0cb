"""Where the clean image comes from: a built-in photograph, a synthetic generator, an upload, a kept sample.

- :data:`SYNTHETIC_SETS` / :data:`SYNTHETIC` and :func:`synthetic_image` — the synthetic generators
  of the registered data sets.
- :func:`read_upload` / :func:`decode_upload` — an uploaded file's bytes as a gray image, with notes on
  how it was converted (an unusable file raises ``ValueError`` naming it).
- :class:`UploadBox` — the upload widget every tool uses: formats and size limit stated, big files sent
  in chunks, files over :data:`UPLOAD_MAX_MB` refused in the browser; calls ``on_upload(data, filename)``.
- :class:`ImageSource` — the widget: choose a source, get ``.image`` (float32, square, in [0, 1]).
"""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from PIL import Image, ImageOps

from explorer.data import BUILTIN_IMAGES, ImageFileError, builtin_image, load_image, square_resize
from explorer.data.files import MAX_PIXELS
from explorer.data.registry import dataset

from .text import notify
from .theme import SIZES

SYNTHETIC_SETS = {"dead leaves": "dead-leaves", "discs": "discs", "C^α contour": "calpha"}  # label → registry name
SYNTHETIC = tuple(SYNTHETIC_SETS)


def synthetic_image(kind: str, size: int, seed: int) -> np.ndarray:
    """One synthetic image (float32 (size, size) in [0, 1]) of ``kind`` in :data:`SYNTHETIC`: the generator of
    the registered data set (:mod:`explorer.data.registry`, e.g. C^α with the training sets' α) at ``seed``."""
    if kind not in SYNTHETIC_SETS:
        raise ValueError(f"unknown synthetic image {kind!r}; choose one of {SYNTHETIC}")
    return dataset(SYNTHETIC_SETS[kind]).make(1, size, seed)[0]


UPLOAD_MAX_MB = 40  # bigger files are refused in the browser, before they are sent
UPLOAD_MAX_PIXELS = 8192 * 8192  # bigger images are refused; above MAX_PIXELS (4096×4096) they are downsampled
UPLOAD_MIN_SIDE = 8  # smaller images are refused (a 1×1 image would silently become a constant image)
UPLOAD_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm", ".webp")
UPLOAD_HINT = (f"PNG / JPEG / TIFF / BMP / GIF / WebP / PGM, up to {UPLOAD_MAX_MB} MB. Converted to gray and "
               f"centre-cropped to a square; an image larger than 4096×4096 is downsampled on the server.")


@dataclass(frozen=True)
class Upload:
    """A decoded upload: the gray image and what was done to it on the way (one sentence per note)."""

    image: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        return " ".join(self.notes)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class UploadRefused(ValueError):
    """An upload refused before decoding; the message names the file and says why."""


def _refuse(name: str, why: str) -> UploadRefused:
    return UploadRefused(f"{name!r} was not used: {why}")


def read_upload(data: bytes, filename: str = "upload.png") -> Upload:
    """The bytes of an uploaded file as an :class:`Upload`: a gray float32 image in [0, 1] and notes.

    Refused (``ValueError`` naming ``filename``): an empty file, one over :data:`UPLOAD_MAX_MB`, an image
    over :data:`UPLOAD_MAX_PIXELS` or under :data:`UPLOAD_MIN_SIDE` pixels a side, and anything the
    decoder cannot read (:func:`explorer.data.load_image`). Converted, with a note saying how: colour
    (to gray, ITU-R 601 luma), transparency (composited over white), an image above 4096×4096
    (box-downsampled by an integer factor), a multi-frame file (first frame), a constant image (said).
    """
    name = filename or "the file"
    data = data or b""
    if not data:
        raise _refuse(name, "the file is empty (0 bytes).")
    if len(data) > UPLOAD_MAX_MB * 1_000_000:
        raise _refuse(name, f"the file is {_mb(len(data))}, over the {UPLOAD_MAX_MB} MB limit.")
    notes: list[str] = []
    rewritten: Image.Image | None = None
    alpha: np.ndarray | None = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > UPLOAD_MAX_PIXELS:
                raise _refuse(name, f"{w}×{h} pixels is over the {int(UPLOAD_MAX_PIXELS ** 0.5)}×"
                                    f"{int(UPLOAD_MAX_PIXELS ** 0.5)} limit.")
            if min(w, h) < UPLOAD_MIN_SIDE:
                raise _refuse(name, f"{w}×{h} pixels is too small (at least {UPLOAD_MIN_SIDE}×{UPLOAD_MIN_SIDE}).")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                notes.append(f"It has {frames} frames: only the first is used.")
            bands = im.getbands()
            has_alpha = "A" in bands or (im.mode == "P" and "transparency" in im.info)
            if len(bands) >= 3 or (im.mode in ("P", "PA") and _palette_is_colour(im)):
                notes.append("Colour converted to gray (0.299 R + 0.587 G + 0.114 B).")
            factor = int(np.ceil(np.sqrt(w * h / MAX_PIXELS))) if w * h > MAX_PIXELS else 1
            if has_alpha or factor > 1:
                im.load()
                rewritten = ImageOps.exif_transpose(im)
                if rewritten.mode in ("P", "PA", "1"):
                    rewritten = rewritten.convert("RGBA" if has_alpha else "L" if rewritten.mode == "1" else "RGB")
                elif rewritten.mode.startswith("I;16"):
                    rewritten = rewritten.convert("I")
                if factor > 1:
                    rewritten = rewritten.reduce(factor)
                    notes.append(f"Downsampled {factor}× (mean of {factor}×{factor} blocks) from {w}×{h} to "
                                 f"{rewritten.width}×{rewritten.height}: images over 4096×4096 are reduced.")
                if has_alpha:
                    a = np.asarray(rewritten.getchannel("A"), dtype=np.float32) / 255.0
                    rewritten = rewritten.convert("RGB" if len(rewritten.getbands()) >= 3 else "L")
                    if (a < 1.0).any():
                        alpha = a
                        notes.append(f"Transparent parts ({np.mean(a < 1.0):.0%} of the pixels) composited "
                                     f"over white (its alpha channel).")
                    else:
                        notes.append("Its alpha channel is opaque everywhere and was ignored.")
    except UploadRefused:
        raise
    except Exception:  # noqa: BLE001 - not an image PIL can open: load_image says why, naming the file
        rewritten = None
    suffix = ".tiff" if rewritten is not None else (Path(filename or "upload").suffix or ".png")
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="explorer-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            if rewritten is None:
                f.write(data)
            else:
                rewritten.save(f, format="TIFF")
        img = load_image(tmp, gray=True)
    except ImageFileError as e:
        raise ValueError(str(e).replace(tmp, name)) from None
    except Exception as e:  # anything else a hostile file can trigger
        raise ValueError(f"Could not read {name!r}: {type(e).__name__}: {e}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if alpha is not None and alpha.shape == img.shape:
        img = (alpha * img + (1.0 - alpha)).astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi - lo < 1e-6:
        notes.append(f"The image is constant (every pixel is {lo:.3g}): the tools see a flat image.")
    return Upload(np.ascontiguousarray(img, dtype=np.float32), tuple(notes))


def _palette_is_colour(im: Image.Image) -> bool:
    try:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    except Exception:  # noqa: BLE001
        return False
    return bool((np.abs(rgb[..., 0] - rgb[..., 1]).max() > 0) or (np.abs(rgb[..., 1] - rgb[..., 2]).max() > 0))


def decode_upload(data: bytes, filename: str = "upload.png") -> np.ndarray:
    """The bytes of an uploaded file as a gray float32 image in [0, 1]: :func:`read_upload`'s image.

    Raises ``ValueError`` with a message naming ``filename`` for anything unusable — an empty, unreadable,
    truncated, oversized or too small file, or any other error a hostile file can trigger in the decoder.
    """
    return read_upload(data, filename).image


def _load_upload_extension() -> None:
    """The upload widget's JavaScript (FilePond, bundled with Panel) must be on the page: ask for it while
    the session's page is being built. (An app that builds its views later, e.g. apps/main.py, calls
    ``pn.extension("filedropper")`` itself.)"""
    st = pn.state
    try:
        if st.curdoc is not None and st._is_launching and UPLOAD_EXTENSION not in (st._extensions or []):
            pn.extension(UPLOAD_EXTENSION)
    except Exception:  # noqa: BLE001 - never let the page fail for this
        pass


UPLOAD_EXTENSION = "filedropper"


class UploadBox(pn.viewable.Viewer):
    """The upload widget of every tool: a drop area and a line stating the formats and the size limit.

    Files travel to the server in chunks (Panel's ``FileDropper``), so a file up to :data:`UPLOAD_MAX_MB`
    never hits the websocket's message limit, and a bigger one is refused in the browser before it is
    sent, with FilePond's message ("File is too large"). ``on_upload(data, filename)`` is called on the
    server for each file received (an empty file included, so it can be refused with a message).
    Apps that build their views after the page has loaded need ``pn.extension("filedropper")``.
    """

    def __init__(self, on_upload: Callable[[bytes, str], Any], hint: str = UPLOAD_HINT, **params: Any):
        super().__init__(**params)
        _load_upload_extension()
        self._on_upload = on_upload
        self.dropper = pn.widgets.FileDropper(
            accepted_filetypes=list(UPLOAD_SUFFIXES), max_file_size=f"{UPLOAD_MAX_MB}MB", multiple=False,
            chunk_size=4_000_000, previews=[], layout="compact", sizing_mode="stretch_width", height=80,
            margin=(5, 10))
        self.dropper.param.watch(self._received, "value")
        self.hint = pn.pane.Markdown(hint, styles={"color": "#555", "font-size": "0.85em"}, margin=(0, 10),
                                     sizing_mode="stretch_width")

    def _received(self, event: param.parameterized.Event) -> None:
        files = event.new or {}
        if files:
            filename, data = list(files.items())[-1]
            self.upload(data if isinstance(data, bytes) else str(data).encode(), filename)

    def upload(self, data: bytes, filename: str) -> Any:
        """Hand a file's bytes to ``on_upload`` (what the drop area does; also for tests)."""
        return self._on_upload(data, filename)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.dropper, self.hint, sizing_mode="stretch_width", margin=0)


class ImageSource(pn.viewable.Viewer):
    """Where the clean image comes from: a built-in photograph, a synthetic generator, an upload, or a
    sample the sampler kept (:mod:`explorer.ui.samples`; ``refresh_samples()`` re-lists them).

    ``image`` always holds a float32 (size, size) array in [0, 1] (an upload is centre-cropped to a
    square and resized). A bad upload sets ``error`` (shown in the page) and keeps the last image.
    Public panes: ``upload`` (the :class:`UploadBox`), ``alert_pane`` (the error), ``note_pane`` (how an
    upload was converted).
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
    note = param.String(default="", doc="How the uploaded image was converted (shown under the image choice)")

    def __init__(self, **params: Any):
        sizes = params.pop("sizes", None)
        super().__init__(**params)
        if sizes:
            self.param.size.objects = list(sizes)
            if self.size not in sizes:
                self.size = sizes[0]
        self._uploaded: np.ndarray | None = None
        self._upload_name = ""
        self._upload_notes: tuple[str, ...] = ()
        self.upload = UploadBox(self.load_bytes)
        self.alert_pane = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.note_pane = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width")
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
            up = read_upload(data, filename)
        except ValueError as e:
            self.error = str(e)
            return False
        self._uploaded, self._upload_name, self._upload_notes = up.image, filename, up.notes
        self.error = ""
        if self.source != "upload":
            self.source = "upload"  # triggers _update
        else:
            self._update()
        return True

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
            self.note = ""
        else:
            self.note = self._upload_note(size)
        self.label = label
        self.image = np.ascontiguousarray(img, dtype=np.float32)

    def _upload_note(self, size: int) -> str:
        """What was done to the upload: its decoding notes, then the square crop and the resize."""
        h, w = self._uploaded.shape
        s = min(h, w)
        notes = [f"{self._upload_name}:", *self._upload_notes]
        if h != w:
            notes.append(f"Centre-cropped from {w}×{h} to {s}×{s}.")
        if s < size:
            notes.append(f"Upscaled from {s}×{s} to {size}×{size} (bicubic): it shows no finer detail than the file.")
        elif s > size:
            notes.append(f"Resized from {s}×{s} to {size}×{size} (mean of the pixels each covers).")
        return " ".join(notes)

    @param.depends("note", watch=True)
    def _show_note(self) -> None:
        self.note_pane.object = self.note
        self.note_pane.visible = bool(self.note)

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self.alert_pane.object = self.error
        self.alert_pane.visible = bool(self.error)
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
        @pn.depends(self.param.source)
        def choice(source: str) -> pn.viewable.Viewable:
            if source == "built-in":
                return builtin
            if source == "synthetic":
                return pn.Row(synth, seed, sizing_mode="stretch_width")
            if source == "sample":
                return pn.Row(sample, self._refresh_button, sizing_mode="stretch_width")
            return self.upload

        return pn.Column(pn.pane.Markdown("**Image**", margin=(0, 10)), src, choice, size, self.alert_pane, self.note_pane,
                         sizing_mode="stretch_width", margin=0)
