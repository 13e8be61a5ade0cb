"""Where the clean image comes from: a built-in photograph, a synthetic generator, an upload, a kept sample.

- :data:`SYNTHETIC_SETS` / :data:`SYNTHETIC` and :func:`synthetic_image` — the synthetic generators
  of the registered data sets.
- :func:`decode_upload` — an uploaded file's bytes as a gray image (a bad file raises ``ValueError``).
- :class:`ImageSource` — the widget: choose a source, get ``.image`` (float32, square, in [0, 1]).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param

from explorer.data import BUILTIN_IMAGES, ImageFileError, builtin_image, load_image, square_resize
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
