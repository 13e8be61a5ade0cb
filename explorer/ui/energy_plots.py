"""What the Energies tool draws and writes from an :class:`~explorer.ui.energy_state.EnergyState`.

- :func:`histogram_figure` — the histogram, its Gumbel fit, the reference markers, the selected bin and
  the chosen image (HoloViews); :func:`tiles` — thumbnails titled with their energies.
- :func:`summary_markdown`, :func:`bin_markdown`, :func:`failures_markdown`, :func:`probe_markdown` —
  the texts beside them.
- :func:`png_export`, :func:`npz_export`, :func:`basename` — the downloads (the histogram rasterized with
  PIL, no matplotlib).
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
from PIL import Image, ImageDraw

from explorer import energies
from explorer.energy import CONTINUOUS, NLLQuantity

from .energy_data import MNIST_DATASETS
from .energy_state import EXTREMES, MAX_BIN_IMAGES, UNITS, EnergyState, to_unit
from .export import npz_bytes, png_bytes
from .plots import gray_image
from .text import fmt_number
from .theme import ACCENT

TILE = 64  # on-screen size of a thumbnail
PROBE_COLOR = "#d62728"
BIN_COLOR = "#ff7f0e"
REF_COLOR = "#6b6b6b"
BASELINE_COLOR = "#2ca02c"
LABEL_BG = dict(background_fill_color="white", background_fill_alpha=0.85)
NO_BIN = "#### Images in a bin\nClick a bar of the histogram to see its images."


def axis_label(unit: str, quantity: NLLQuantity = CONTINUOUS) -> str:
    """"−log p(x), density on [0,1]^d (bits/dim)" or "−log P(x), 8-bit discrete (bits/dim)"."""
    return f"{quantity.short()} ({'nats per image' if unit == 'nats' else unit})"


def _unit_words(unit: str) -> str:
    return "nats per image" if unit == "nats" else unit


def _x_range(s: EnergyState, edges: np.ndarray) -> tuple[float, float, float]:
    lo, hi = float(edges[0]), float(edges[-1])
    span = max(hi - lo, 1e-12)
    xlo, xhi = lo - 0.04 * span, hi + 0.04 * span
    probe, refs = s.probe_value(), s.reference_markers()
    if probe is not None:
        xlo, xhi = min(xlo, probe - 0.04 * span), max(xhi, probe + 0.04 * span)
    if s.show_all_references and refs:
        xlo = min(xlo, min(r for _, r in refs) - 0.04 * span)
        xhi = max(xhi, max(r for _, r in refs) + 0.04 * span)
    return xlo, xhi, span


def histogram_figure(s: EnergyState) -> hv.Overlay | None:
    """The histogram with the Gumbel fit, the reference markers, the selected bin and the chosen image."""
    v = s.values()
    if v.size == 0:
        return None
    xlabel = axis_label(s.unit, s.quantity)
    edges, counts = s.edges(), s.counts()
    top = float(max(counts.max(), 1))
    hist = hv.Histogram((edges, counts), kdims=[xlabel], vdims=["images"], label="images").opts(
        color=ACCENT, fill_alpha=0.75, line_color="white", tools=["hover", "tap"])
    layers: list[Any] = [hist]
    xlo, xhi, _ = _x_range(s, edges)
    if s.selected_bin is not None and s.selected_bin < len(counts):
        sel = np.zeros_like(counts)
        sel[s.selected_bin] = counts[s.selected_bin]
        layers.append(hv.Histogram((edges, sel), kdims=[xlabel], vdims=["images"], label="selected bin").opts(
            color=BIN_COLOR, fill_alpha=0.9, line_color="white"))
    g = s.gumbel()
    if g is not None:
        xs = np.linspace(xlo, xhi, 400)
        ys = energies.gumbel_pdf(xs, g) * v.size * float(np.diff(edges).mean())
        layers.append(hv.Curve((xs, ys), xlabel, "images",
                               label=f"Gumbel fit (μ = {fmt_number(g['loc'])}, β = {fmt_number(g['scale'])})").opts(
            color="#222222", line_width=2))
    span_x = xhi - xlo
    for k, (name, x) in enumerate(s.reference_markers()):
        y = top * (1.38 - 0.09 * k)
        text = f"{name}: {fmt_number(x)}"
        if x < xlo:  # off the axis: an arrow-text at the edge, pointing to where it is
            layers.append(hv.Text(xlo, y, f" ◀ {text}", halign="left", fontsize=8).opts(text_color=REF_COLOR, **LABEL_BG))
        elif x > xhi:
            layers.append(hv.Text(xhi, y, f"{text} ▶ ", halign="right", fontsize=8).opts(text_color=REF_COLOR, **LABEL_BG))
        else:
            layers.append(hv.VLine(x).opts(color=REF_COLOR, line_dash="dashed", line_width=1.2))
            right = x < xlo + 0.6 * span_x
            layers.append(hv.Text(x, y, f" {text} " if right else f"{text} ", halign="left" if right else "right",
                                  fontsize=8).opts(text_color=REF_COLOR, **LABEL_BG))
    base = s.baseline_values()
    if np.isfinite(base).any():
        mean = float(np.nanmean(base))
        text = f"stationary Gaussian (mean): {fmt_number(mean)}"
        if xlo <= mean <= xhi:
            layers.append(hv.VLine(mean).opts(color=BASELINE_COLOR, line_dash="dashdot", line_width=2))
            right = mean < xlo + 0.6 * span_x
            layers.append(hv.Text(mean, top * 1.1, f" {text} " if right else f"{text} ", halign="left" if right else "right",
                                  fontsize=8).opts(text_color=BASELINE_COLOR, **LABEL_BG))
        else:
            edge, arrow = (xlo, f" ◀ {text}") if mean < xlo else (xhi, f"{text} ▶ ")
            layers.append(hv.Text(edge, top * 1.1, arrow, halign="left" if mean < xlo else "right", fontsize=8).opts(
                text_color=BASELINE_COLOR, **LABEL_BG))
    probe = s.probe_value()
    if probe is not None:
        layers.append(hv.VLine(probe).opts(color=PROBE_COLOR, line_width=2.5))
        right, text = probe < xlo + 0.6 * span_x, f"{s.probe_label}: {fmt_number(probe)}"
        layers.append(hv.Text(probe, top * 0.97, f" {text} " if right else f"{text} ", halign="left" if right else "right",
                              fontsize=9).opts(text_color=PROBE_COLOR, text_font_style="bold", **LABEL_BG))
    return hv.Overlay(layers).opts(
        xlabel=xlabel, ylabel="images", title=histogram_title(s), xlim=(xlo, xhi),
        ylim=(0, top * 1.45), responsive=True, min_height=400, min_width=520, show_grid=True, legend_position="top",
        legend_cols=3, toolbar=None, fontsize={"title": "11pt", "legend": "9pt"})


def histogram_title(s: EnergyState) -> str:
    """"N <data> under <model>", and the spread as the probability ratio of the extremes."""
    k = s.probability_ratio()
    spread = "" if k is None else f"\np(most probable) / p(least probable) = 10^{k:.0f}"
    return f"{s.values().size} {s.data_label} under {s.result_model}{spread}"


def tiles(s: EnergyState, idx: Sequence[int], cols: int, size: int = TILE) -> hv.Layout | None:
    """Thumbnails of the images ``idx`` of ``s.items``, each titled with its energy in ``s.unit``."""
    if len(idx) == 0:
        return None
    v = s.values()
    imgs = [gray_image(s.image(i), title=f"{fmt_number(v[i])}", size=size, fontsize={"title": "9pt"}) for i in idx]
    return hv.Layout(imgs).cols(cols).opts(toolbar=None, shared_axes=False)


# ------------------------------------------------------------------------------------------ texts
def bin_markdown(s: EnergyState) -> str:
    """The title of the images of the selected bin."""
    if s.selected_bin is None or s.report is None:
        return NO_BIN
    idx, e, i, unit = s.selected_indices(), s.edges(), int(s.selected_bin), _unit_words(s.unit)
    shown = idx[:MAX_BIN_IMAGES]
    more = f" (the {len(shown)} lowest shown)" if len(idx) > len(shown) else ""
    right = "]" if i == len(e) - 2 else ")"
    return (f"#### Images in the selected bin [{fmt_number(e[i], 4)}, {fmt_number(e[i + 1], 4)}{right} "
            f"{unit}: {len(idx)} image{'s' if len(idx) != 1 else ''}{more}\n"
            f"Each titled with its {s.quantity.short()} in {unit}.")


def summary_markdown(s: EnergyState) -> str:
    """The summary table: statistics in ``unit`` and in nats, Gumbel fit, references, the chosen image."""
    st = s.summary_stats()
    if st is None:
        return ""
    sn = energies.summary(s.report.values)
    rows = [("number of images", str(st["count"]), "")]
    for key, name in (("mean", "mean"), ("std", "standard deviation"), ("min", "minimum"),
                      ("median", "median"), ("max", "maximum")):
        rows.append((name, fmt_number(st[key], 4), fmt_number(sn[key], 4)))
        if key == "mean" and math.isfinite(st["mean_stderr"]):
            rows.append((f"± standard error of the mean ({s.quantity.draws} draws)", fmt_number(st["mean_stderr"], 2),
                         fmt_number(s.report.mean_stderr("nats"), 2)))
    rows.append(("skewness (no unit)", fmt_number(st["skewness"], 3), fmt_number(sn["skewness"], 3)))
    g = s.gumbel()
    if g is not None:
        rows.append((f"Gumbel location μ ({'maxima' if g['side'] == 'right' else 'minima'})", fmt_number(g["loc"], 4), ""))
        rows.append(("Gumbel scale β", fmt_number(g["scale"], 4), ""))
    for name, x in s.reference_energies():
        rows.append((name, fmt_number(x, 4) if math.isfinite(x) else "no finite energy", ""))
    k = s.probability_ratio()
    if k is not None:
        rows.append(("spread: p(most probable) / p(least probable)", f"10^{k:.0f}", f"e^{k * math.log(10):.0f}"))
    base = s.baseline_values()
    if np.isfinite(base).any():
        nats = s.baseline.nats
        rows.append((f"stationary Gaussian baseline, mean ({int(np.isfinite(base).sum())} images)",
                     fmt_number(float(np.nanmean(base)), 4), fmt_number(float(np.nanmean(nats)), 4)))
        margin = s.baseline_margin()
        if margin is not None:
            rows.append(("margin: Gaussian − model (paired mean ± s.e.; > 0: the model is better)",
                         f"{fmt_number(margin[0], 4)} ± {fmt_number(margin[1], 2)}", ""))
    p = s.probe_value()
    if p is not None:
        rows.append((f"**{s.probe_label}**", f"**{fmt_number(p, 4)}**", fmt_number(s.probe_nats, 4)))
    head = f"| {s.quantity.short()} | in {_unit_words(s.unit)} | in nats per image |\n|:--|--:|--:|\n"
    body = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    d = sorted(set(s.report.dims.tolist()))
    dims = f"d = {d[0]}" if len(d) == 1 else f"d ∈ {{{', '.join(map(str, d[:4]))}{'…' if len(d) > 4 else ''}}}"
    lz = f"log Z = {fmt_number(s.log_z, 4)} nats" if math.isfinite(s.log_z) else "log Z unknown (relative energies)"
    note = energies.data_note(s.data_name)
    fitted = (f" · Gaussian baseline: stationary (periodic), mean and power spectrum of {s.baseline.fitted}, "
              "in the same quantity" if s.baseline.nats is not None else f" · no Gaussian baseline: {s.baseline.why}")
    return (f"#### Summary\n**Shown:** {s.quantity.describe()}.\n\n{head}{body}\n\n"
            f"<span style='color:#666'>{note or dims + ' values per image'} · {lz} · "
            f"references: images of the data set's size {s.shape[0]}×{s.shape[1]}{fitted}</span>")


def failures_markdown(s: EnergyState) -> str:
    """The images that could not be used, with why ("" if none)."""
    f = s.report.failures if s.report is not None else []
    if not f:
        return ""
    lines = [f"- **{a}**: {b}" for a, b in f[:30]]
    if len(f) > 30:
        lines.append(f"- … and {len(f) - 30} more")
    return f"**{len(f)} image{'s' if len(f) != 1 else ''} could not be used** (not in the histogram):\n" + "\n".join(lines)


def probe_markdown(s: EnergyState) -> str:
    """The chosen image's energy in every unit and its rank in the data set."""
    if s.probe_nats is None:
        return s.probe_hint
    parts = [f"{fmt_number(float(to_unit(s.probe_nats, s.probe_image.size, k)[0]), 4)} {k}" for k in UNITS]
    frac = s.probe_rank()
    rank = "" if frac is None else (f"<br>{100 * frac:.1f} % of the data set has a lower energy "
                                    "(is more probable per dimension)")
    rounded = " (rounded to 8 bits)" if s.quantity.discrete else ""
    return f"{s.quantity.short()}{rounded} = " + " = ".join(parts) + f" (shown in {s.unit}){rank}"


# ------------------------------------------------------------------------------------------ downloads
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except Exception:  # an old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def histogram_png(s: EnergyState, width: int = 960, height: int = 400) -> Image.Image:
    """The histogram, Gumbel fit and markers rasterized with PIL (no matplotlib)."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(14), _font(12)
    v = s.values()
    if v.size == 0:
        draw.text((20, 20), "no energies", fill=(0, 0, 0), font=font)
        return img
    edges, counts = s.edges(), s.counts()
    L, R, T, B = 64, 24, 36, 56
    lo, hi = float(edges[0]), float(edges[-1])
    refs, probe = s.reference_markers(), s.probe_value()
    xs_extra = [x for _, x in refs] if s.show_all_references else []
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
        draw.text((px(x) + 4 if px(x) + 4 + w < width - R else px(x) - 4 - w, y), text, fill=fill, font=f)

    for i, c in enumerate(counts):
        color = (255, 127, 14) if i == s.selected_bin else (31, 95, 139)
        draw.rectangle([px(edges[i]), py(c), px(edges[i + 1]), py(0)], fill=color, outline="white")
    g = s.gumbel()
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
        label(probe, T + 2 + 15 * k, f"{s.probe_label}: {fmt_number(probe)}", (214, 39, 40), small)
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
    xl = axis_label(s.unit, s.quantity).replace("−", "-")
    draw.text((L + (width - L - R - draw.textlength(xl, font=font)) / 2, height - 24), xl, fill=(0, 0, 0), font=font)
    draw.text((6, T - 22), "images", fill=(0, 0, 0), font=small)
    draw.text((L, 8), f"Energies of {v.size} {s.data_label} under {s.result_model}", fill=(0, 0, 0), font=font)
    return img


def png_export(s: EnergyState) -> io.BytesIO:
    """The PNG download: the histogram above the extremes, the selected bin's images and the chosen image."""
    hist = histogram_png(s)
    panels: list[tuple] = []
    v = s.values()
    if v.size:
        low, high = s.extremes()
        panels += [(f"lowest {fmt_number(v[i])}", s.image(i)) for i in low]
        panels += [(f"highest {fmt_number(v[i])}", s.image(i)) for i in high]
        panels += [(f"bin {fmt_number(v[i])}", s.image(i)) for i in s.selected_indices()[:MAX_BIN_IMAGES]]
    if s.probe_image is not None:
        panels.append((f"{s.probe_label} {fmt_number(s.probe_value())}", s.probe_image))
    tiles_img = Image.open(png_bytes(panels, min_size=96, columns=EXTREMES)).convert("RGB")
    canvas = Image.new("RGB", (max(hist.width, tiles_img.width), hist.height + tiles_img.height), "white")
    canvas.paste(hist, (0, 0))
    canvas.paste(tiles_img, (0, hist.height))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    buf.seek(0)
    return buf


def npz_export(s: EnergyState) -> io.BytesIO:
    """The NPZ download: every energy, the histogram, the selection, the references and the parameters."""
    arrays: dict[str, Any] = {}
    params: dict[str, Any] = dict(model=s.result_model or s.model_name, data=s.data_label, dataset=s.dataset,
                                  folder=s.folder, folder_patches=s.folder_patches, patch=s.patch, count=s.count,
                                  unit=s.unit, bins=s.bins, selected_bin=s.selected_bin, use_cache=s.use_cache,
                                  probe=s.probe)
    if s.report is not None:
        r = s.report
        low, high = s.extremes()
        arrays.update(labels=np.array(r.labels, dtype=str), nats=r.values, dims=r.dims, values=s.values(),
                      hist_counts=s.counts(), hist_edges=s.edges(), lowest=low, highest=high,
                      selected=s.selected_indices())
        params.update(normalized=r.normalized, cached=r.cached, failures=[list(f) for f in r.failures],
                      quantity={**r.quantity.spec(), "description": r.quantity.describe()},
                      mean_stderr_of_draws=r.mean_stderr(s.unit),
                      summary=energies.summary(s.values()) if s.values().size else None,
                      gumbel=s.gumbel(), references=s.references, reference_markers=dict(s.reference_markers()))
    if s.probe_image is not None:
        arrays.update(probe_image=s.probe_image, probe_nats=np.float64(s.probe_nats))
        params.update(probe_label=s.probe_label, probe_value=s.probe_value())
    return npz_bytes(arrays, params)


def basename(s: EnergyState) -> str:
    """The downloads' file name: model, data set, unit."""
    names = {k: v[0].replace(":", "-") for k, v in MNIST_DATASETS.items()}
    data = {**names, "image folder": Path(s.folder or "folder").name}.get(s.dataset, "builtin")
    model = s.result_model or s.model_name or "model"
    return f"energy_{model}_{data}_{s.unit.replace('/', '-per-')}".replace(" ", "_")
