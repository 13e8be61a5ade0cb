"""What a tool lets you download: a PNG of the figure and an NPZ of its arrays and parameters.

- :func:`png_bytes` — titled images side by side, upscaled with square pixels.
- :func:`npz_bytes` — compressed arrays (tensors converted) plus the parameters as JSON.
- :func:`downloads` — the two download buttons of every tool.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import panel as pn
from PIL import Image, ImageDraw

from .plots import to_rgb


def png_bytes(panels: Sequence[tuple[str, np.ndarray] | tuple[str, np.ndarray, str]], min_size: int = 256,
              columns: int | None = None) -> io.BytesIO:
    """A PNG of images side by side (wrapping after ``columns``), each titled, upscaled with square pixels.

    ``panels``: (title, array) or (title, array, kind) with kind 'gray' (default), 'diverging' or 'magnitude'.
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
