"""A property report for any denoiser: ``python -m explorer.report MODEL [--out report.html]`` (issue #20).

MODEL is a catalog name (``bf-natural-gray``), a model card or weights path, a lab checkpoint
(``../shared/lcv/bias_free_denoising/dncnn/bias_free/0-55.pt``, converted in memory) or a classical
denoiser (``classical:gaussian``, any name of :data:`explorer.denoisers.ARCHITECTURES` that needs no
weights). Every line of :mod:`explorer.properties` is measured on held-out images of the model's training
data (photographs that ship with scikit-image for natural-image models), with its ideal, a pass / fail /
note flag and the command that regenerates it; the HTML is one self-contained file (plots as PNG data
URIs, no external request). ``--write-card CARD`` stores the lines in a run folder's card under ``report``.

    python -m explorer.report bf-natural-gray --out report.html
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import properties as props
from .handle import ModelHandle
from .properties import Measured, Property

KEYS = ("homogeneity", "linearity", "symmetry", "row_sums", "effective_dimension", "psnr", "sigma_hat", "chains",
        "calibration")
NATURAL_TEST_IMAGES = ("camera", "coins", "moon")
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"


class ReportError(ValueError):
    """A model the report cannot be made for, or a card it must not write."""


@dataclass
class Report:
    """The measured lines (in :data:`KEYS` order), the curves for the plots, what was measured on, and the time."""

    model: str
    lines: list[Property] = field(default_factory=list)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    measured_by: dict[str, str] = field(default_factory=dict)  # line key → the measurement (``--only``) that made it

    def command(self, key: str) -> str:
        """The command that regenerates line ``key``."""
        return f"python -m explorer.report {self.model} --only {self.measured_by.get(key, key)}"

    def as_card_entry(self) -> dict[str, Any]:
        """The lines as JSON (what ``--write-card`` stores)."""
        return dict(settings=self.settings, seconds=round(self.seconds, 2),
                    lines=[dict(key=p.key, title=p.title, value=None if not np.isfinite(p.value) else round(p.value, 6),
                                unit=p.unit, ideal=p.ideal, flag=p.flag, detail=p.detail, command=self.command(p.key))
                           for p in self.lines])


# --------------------------------------------------------------------------------- which model
def resolve(spec: str, device: str | None = None) -> tuple[ModelHandle, dict[str, Any], str]:
    """A handle, its card and its name for a catalog name, card/weights path, lab checkpoint or classical name."""
    import explorer
    from explorer.denoisers import ARCHITECTURES

    if spec.startswith("classical:") or (spec in ARCHITECTURES and spec not in {c["name"] for c in explorer.catalog()}):
        name = spec.removeprefix("classical:")
        if name not in ARCHITECTURES:
            raise ReportError(f"unknown classical denoiser {name!r}; known: {sorted(ARCHITECTURES)}")
        try:
            model = ARCHITECTURES[name]()
        except TypeError as e:
            raise ReportError(f"{name!r} needs weights or parameters ({e}): give its card instead") from None
        card = dict(name=f"classical:{name}", architecture=name, bias_free=bool(model.bias_free))
        return ModelHandle(model, device=device, name=card["name"], card=card), card, card["name"]
    if spec.endswith(".pt"):
        from .convert import load_legacy

        model, card = load_legacy(spec)
        name = card.get("name") or Path(spec).stem
        return ModelHandle(model, device=device, name=name, card=card), card, spec
    handle = explorer.load(spec, device=device)
    return handle, dict(getattr(handle, "card", None) or {}), spec


def test_images(card: dict[str, Any], count: int = 3, size: int = 64) -> tuple[list[np.ndarray], str]:
    """Held-out images of the model's training data set (registry names), else photographs that ship."""
    from .data.builtin import builtin_image
    from .data.registry import NAMES, dataset

    data = str(((card.get("training") or {}).get("data")) or "")
    if data in NAMES:
        ds = dataset(data)
        return [np.asarray(ds.test_image(i, size), np.float32) for i in range(count)], f"{count} held-out {data} images"
    names = NATURAL_TEST_IMAGES[:count]
    return [builtin_image(n, size) for n in names], f"{size}×{size} photographs ({', '.join(names)})"


# --------------------------------------------------------------------------------- measuring
def measure(handle: ModelHandle, card: dict[str, Any], model: str, only: Sequence[str] | None = None,
            progress: Callable[[Report], None] | None = None, seed: int = 0,
            images: Sequence[np.ndarray] | None = None) -> Report:
    """Every line of the report (or those of ``only``) on ``images`` (default :func:`test_images`), calling
    ``progress(report)`` after each measurement."""
    keys = list(KEYS if not only else only)
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise ReportError(f"unknown report lines {unknown}; known: {', '.join(KEYS)}")
    if images is None:
        images, described = test_images(card)
    else:
        images = props.as_images(images)
        described = f"{len(images)} given images ({images[0].shape[0]}×{images[0].shape[1]})" if images else ""
    if not images:
        raise ReportError("no images to measure on")
    trained = props.training_range(card)
    top = trained[1] if trained else 0.2
    mid = min(max(top / 2, 0.02), 0.2)
    inside = np.geomspace(max(top / 8, 0.01), top, 5)  # up to the top of the training range, then beyond it
    sweep = sorted({round(float(s), 4) for s in (*inside, *((1.5 * top, 2 * top) if trained else ()))})
    report = Report(model, settings=dict(images=described, sigma=mid, sigmas=sweep, seed=seed,
                                         training_range=list(trained) if trained else None, device=str(handle.device)))
    plan: dict[str, Callable[[], Measured]] = {
        "homogeneity": lambda: props.homogeneity(handle, images, mid, seed=seed),
        "linearity": lambda: props.linearity(handle, images, mid, seed=seed),
        "symmetry": lambda: props.jacobian_symmetry(handle, images[0], mid, seed=seed),
        "row_sums": lambda: props.filter_row_sums(handle, images[0], mid, seed=seed),
        "effective_dimension": lambda: props.effective_dimension(handle, images[0], sweep, seed=seed),
        "psnr": lambda: props.psnr_curve(handle, images, sweep, trained, seed=seed),
        "sigma_hat": lambda: props.noise_estimation(handle, images, [s for s in sweep if s <= top + 1e-9] or sweep, seed=seed),
        "chains": lambda: props.chains_converge(handle, min(32, images[0].shape[0]), seed=seed),
        "calibration": lambda: props.posterior_calibration(handle, images[0], mid, seed=seed),
    }
    start = time.perf_counter()
    for key in keys:
        try:
            measured = plan[key]()
        except Exception as e:  # a denoiser that cannot do this (e.g. not differentiable): say so, go on
            measured = Measured([Property(key, key.replace("_", " "), float("nan"), "—", "note",
                                          f"could not be measured: {type(e).__name__}: {e}")])
        report.lines += measured.lines
        report.measured_by.update({p.key: key for p in measured.lines})
        if measured.curve:
            report.curves[key] = measured.curve
        report.seconds = time.perf_counter() - start
        if progress is not None:
            progress(report)
    return report


def write_card(card_path: Path | str, report: Report) -> None:
    """Store the report's lines in a run folder's card (never in ``pretrained/``: publish from the run)."""
    path = Path(card_path).resolve()
    if PRETRAINED in path.parents:
        raise ReportError(f"{path} is in pretrained/: write the report into the run folder's card and publish it")
    if not path.is_file():
        raise ReportError(f"no card at {path}")
    card = json.loads(path.read_text())
    card["report"] = report.as_card_entry()
    path.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    from .report_html import render_html

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="catalog name, card or weights path, lab .pt checkpoint, or classical:NAME")
    p.add_argument("--out", default=None, help="write the self-contained HTML report here")
    p.add_argument("--only", default=None, help=f"comma-separated lines to measure (of {','.join(KEYS)})")
    p.add_argument("--write-card", default=None, metavar="CARD", help="store the lines in this run folder's card")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--images", default=None, metavar="FOLDER",
                   help="measure on the (gray) images of this folder (centre square, resized to 64×64) instead of the default ones")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    try:
        handle, card, name = resolve(a.model, a.device)
        images = None
        if a.images:
            from .data.builtin import square_resize
            from .data.files import load_folder

            images = [square_resize(im, 64) for im in load_folder(a.images)]
        report = measure(handle, card, name, a.only.split(",") if a.only else None, seed=a.seed, images=images)
        if a.write_card:
            write_card(a.write_card, report)
    except (ReportError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_lines(report))
    if a.out:
        Path(a.out).write_text(render_html(report, card), encoding="utf-8")
        print(f"wrote {a.out}")
    return 0


def format_lines(report: Report) -> str:
    """The report as plain text: one line per property, then the time."""
    rows = [f"Property report of {report.model} ({report.settings['images']}, seed {report.settings['seed']})"]
    for line in report.lines:
        value = "—" if not np.isfinite(line.value) else f"{line.value:.4g}{(' ' + line.unit) if line.unit else ''}"
        rows.append(f"[{line.flag:4}] {line.title}: {value} (ideal {line.ideal}) — {line.detail}")
    rows.append(f"measured in {report.seconds:.1f} s on {report.settings['device']}")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
