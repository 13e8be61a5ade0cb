"""The property report as one self-contained HTML file: a table of lines and PNG plots as data URIs.

:func:`figures` draws the report's curves with matplotlib (Agg, no display): PSNR against σ with the
training range shaded, the effective dimension against σ, σ̂ against σ, and the images the posterior
calibration was measured on. :func:`render_html` puts them and the lines into a page that makes no
external request (no scripts, fonts or style sheets from anywhere).
"""
from __future__ import annotations

import base64
import html
import io
import time
from typing import Any

import numpy as np

Report = Any  # an explorer.report.Report (not imported: report's command line imports this module)

FLAG_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "note": "#6e7781"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def figures(report: Report) -> dict[str, bytes]:
    """PNG bytes of each plot the report's curves allow, by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    c = report.curves
    if "psnr" in c:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        s = c["psnr"]["sigma"] * 255
        if c["psnr"]["trained"] is not None:
            lo, hi = c["psnr"]["trained"]
            ax.axvspan(lo * 255, hi * 255, color="#ddf4e4", label="training range")
        ax.plot(s, c["psnr"]["psnr"], "o-", color="#1f77b4", label="denoised x̂(y)")
        ax.plot(s, c["psnr"]["input_psnr"], "s--", color="#888888", label="noisy input y")
        ax.set(xlabel="noise σ (8-bit units, ×1/255 of the [0, 1] range)", ylabel="PSNR (dB)",
               title="PSNR against σ, inside and beyond training")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out["psnr"] = _png(fig)
    if "effective_dimension" in c:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        e = c["effective_dimension"]
        ax.loglog(e["sigma"] * 255, e["trace"], "o-", label="tr A / N")
        ax.loglog(e["sigma"] * 255, e["fro2"], "s-", label="Σ s² / N = ‖A‖²_F / N")
        ax.set(xlabel="noise σ (8-bit units, log scale)", ylabel="fraction of N (log scale)", title="Effective dimension against σ")
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor log ticks' labels overlap
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
        out["effective_dimension"] = _png(fig)
    if "sigma_hat" in c:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        e = c["sigma_hat"]
        ax.plot(e["sigma"] * 255, e["sigma"] * 255, "--", color="#888888", label="σ̂ = σ")
        ax.plot(e["sigma"] * 255, e["sigma_hat"] * 255, "o-", label="σ̂ = ‖y − x̂(y)‖/√N")
        ax.set(xlabel="true noise σ (8-bit units)", ylabel="estimated σ̂ (8-bit units)", title="Blind noise estimation")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out["sigma_hat"] = _png(fig)
    if "calibration" in c:
        e = c["calibration"]
        fig, axes = plt.subplots(1, 4, figsize=(11, 3.0))
        top = float(np.percentile(np.concatenate([e["std"].ravel(), e["error"].ravel()]), 99)) or 1.0
        for ax, (title, img, kw) in zip(axes, [("clean x", e["clean"], dict(cmap="gray", vmin=0, vmax=1)),
                                                ("denoised x̂(y)", e["denoised"], dict(cmap="gray", vmin=0, vmax=1)),
                                                ("posterior std √(σ²Aᵢᵢ)", e["std"], dict(cmap="viridis", vmin=0, vmax=top)),
                                                ("actual error |x̂ − x|", e["error"], dict(cmap="viridis", vmin=0, vmax=top))]):
            im = ax.imshow(img, interpolation="nearest", **kw)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.colorbar(im, ax=axes[2:], shrink=0.8, label="[0, 1] units")
        out["calibration"] = _png(fig)
    if "chains" in c:
        samples = c["chains"]["samples"]
        fig, axes = plt.subplots(1, len(samples), figsize=(2.2 * len(samples), 2.4))
        for ax, img in zip(np.atleast_1d(axes), samples):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        fig.suptitle("Algorithm 1 samples x̂(y_T) at the default settings", fontsize=9)
        out["chains"] = _png(fig)
    return out


def _value(p: Any) -> str:
    return "—" if not np.isfinite(p.value) else f"{p.value:.4g}" + (f" {p.unit}" if p.unit else "")


def lines_table(report: Report) -> str:
    """The lines as an HTML table: property, value, ideal, flag, detail, the command that regenerates it."""
    rows = "\n".join(
        f"<tr><td>{html.escape(p.title)}</td><td class=num>{html.escape(_value(p))}</td><td>{html.escape(p.ideal)}</td>"
        f"<td><b style='color:{FLAG_COLOURS.get(p.flag, '#000')}'>{p.flag}</b></td><td>{html.escape(p.detail)}</td>"
        f"<td><code>{html.escape(report.command(p.key))}</code></td></tr>" for p in report.lines)
    return (f"<table class='report'><tr><th>property</th><th>value</th><th>ideal</th><th>flag</th><th>detail</th>"
            f"<th>regenerate with</th></tr>\n{rows}\n</table>")


def render_html(report: Report, card: dict[str, Any] | None = None) -> str:
    """The whole report as an HTML string with no external resources."""
    card = card or {}
    plots = "\n".join(f"<figure><img alt='{html.escape(k)}' src='data:image/png;base64,{base64.b64encode(v).decode()}'></figure>"
                      for k, v in figures(report).items())
    trained = report.settings.get("training_range")
    about = [f"architecture {card.get('architecture', '?')}", f"bias-free: {card.get('bias_free', '?')}",
             "training σ range " + (f"[{trained[0] * 255:.3g}, {trained[1] * 255:.3g}] (8-bit units)" if trained else "not recorded")]
    settings = html.escape(f"measured on {report.settings['images']}, σ = {report.settings['sigma']:g} ([0, 1] units) "
                           f"for the single-σ lines, sweep {report.settings['sigmas']}, seed {report.settings['seed']}, "
                           f"{report.seconds:.1f} s on {report.settings['device']}, {time.strftime('%Y-%m-%d %H:%M')}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Property report: {html.escape(report.model)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #1f2328; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }}
td.num {{ font-family: monospace; white-space: nowrap; }}
code {{ font-size: 0.85em; }}
figure {{ display: inline-block; margin: 0.5em; }}
</style></head><body>
<h1>Property report: {html.escape(report.model)}</h1>
<p>{html.escape(' · '.join(about))}</p>
<p><small>{settings}</small></p>
{lines_table(report)}
<h2>Plots</h2>
{plots}
<p><small>Made by Denoiser Explorer's <code>python -m explorer.report</code>. Ideals: a least-squares, bias-free
denoiser (Mohan, Kadkhodaie, Simoncelli &amp; Fernandez-Granda, ICLR 2020; Kadkhodaie, Guth, Simoncelli &amp; Mallat,
ICLR 2024).</small></p>
</body></html>
"""
