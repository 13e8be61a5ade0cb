"""Denoising benchmark: mean PSNR / SSIM of denoisers on a folder of images at fixed noise levels.

``python -m explorer.evaluate MODEL [MODEL ...] --data DIR --sigma 15,25,50 [--scale 255|1] [--seed 0]
[--bm3d] [--classical] [--arc] [--json OUT] [--limit N] [--write-card]``

Protocol (that of the lab's papers): for image x_i (in [0, 1]) and level σ, one noise draw
y = x_i + σ z, z ~ N(0, I), from a generator seeded by (seed, i, σ) — so every model sees the
same noisy images, and a σ gets the same noise whatever other levels are evaluated; the output is
clamped, x̂ ← clip(x̂(y), 0, 1) (the noisy input is not); PSNR = 10 log10(1 / MSE) on [0, 1], equal
to the 8-bit PSNR with peak 255; SSIM of Wang et al. 2004 (:mod:`explorer.metrics`). Scores are
averaged over the images. Blind models get no σ; non-blind ones get the true σ (in [0, 1] units).

MODEL is a catalog name, a ``.safetensors``/``.json`` path, or a lab ``.pt`` file (imported in
memory by :func:`explorer.convert.import_legacy`). ``--bm3d`` adds BM3D (Dabov et al. 2007, the
``bm3d`` package, :class:`explorer.denoisers.BM3D`, given the true σ); ``--classical`` adds the
Gaussian, Wiener and Haar-shrinkage filters of :mod:`explorer.denoisers.classical`, ``--arc`` the
classical arc of issue #19 at its fitted σ rules (Tikhonov, Perona–Malik, total variation, bilateral,
non-local means, wavelet shrinkage; :func:`arc`); all of these are blind and estimate σ themselves.
``--data`` is a folder or a built-in set made on demand (:mod:`explorer.data.testsets`: ``mnist``,
the 500 held-out digits; ``discs``, ``calpha``, ``dead-leaves``, 100 seeded synthetic images unless
``--limit``). ``--write-card`` stores the results, with the command that made them, into each model
card's ``metrics[<folder name or set label>]``, touching no other field. Exit status 1 with a one-line message for a missing model, folder or package, or for
unreadable images (each named; no table is written).

Scale-out: ``--workers N`` (a local Dask cluster of N processes) or ``--scheduler ADDRESS`` (a running
Dask cluster) splits the images into batches scored by the workers (each opens the models once; see
:mod:`explorer.distributed`, the Dask runner of :mod:`explorer.runner`'s hook). Since an image's noise depends only on (seed, index, σ) and the means
are summed in image order, the table is identical to the single-machine one. Workers read the models
and images by path: on a remote cluster both must be at the same path on every worker.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import runner as runners
from .checkpoints import CheckpointError
from .data.files import ImageFileError, list_images
from .data.testsets import builtin_set, is_builtin_set
from .denoisers import (BM3D, BilateralFilter, Denoiser, GaussianSmoothing, HaarShrinkage, NonLocalMeans,
                        PeronaMalik, TikhonovGradient, TotalVariation, WaveletShrinkage, WienerFilter)
from .handle import ModelHandle
from .imagesets import Failures, ImageRef, each_image, image_name, noisy_image, open_model, portable, read_image  # noqa: F401
from .metrics import psnr, ssim
from .runner import Runner

Results = dict[str, dict[float, dict[str, float]]]
#: {model name: {σ: (PSNR, SSIM)}} of one image.
ImageScores = dict[str, dict[float, tuple[float, float]]]


class EvaluationError(ValueError):
    """A benchmark that cannot run; the message names the model, folder or package at fault."""


def _check(names: Sequence[str], images: int, sigmas: Sequence[float], seed: int) -> None:
    """Raise :class:`EvaluationError` for duplicate model names, no images or σ, a negative seed or σ ≤ 0."""
    if len(set(names)) != len(names):
        raise EvaluationError(f"two models share a name: {list(names)}")
    if not images or not sigmas:
        raise EvaluationError("nothing to evaluate: need at least one image and one sigma")
    if seed < 0 or any(not np.isfinite(s) or s <= 0 for s in sigmas):
        raise EvaluationError(f"seed must be ≥ 0 and every sigma > 0, got seed={seed}, sigmas={list(sigmas)}")


def score_image(handles: Sequence[ModelHandle], x: np.ndarray, index: int, sigmas: Sequence[float], seed: int) -> ImageScores:
    """PSNR and SSIM of every model on image number ``index`` at every σ (the protocol of the module docstring)."""
    return score_batch(handles, [x], [index], sigmas, seed)[0]


def mean_scores(scores: Sequence[ImageScores]) -> Results:
    """The per-model, per-σ means of per-image scores, summed in the order given."""
    sums = {n: {s: np.zeros(2) for s in d} for n, d in scores[0].items()}
    for image in scores:
        for n, d in image.items():
            for s, v in d.items():
                sums[n][s] += v
    return {n: {s: {"psnr": float(v[0] / len(scores)), "ssim": float(v[1] / len(scores))} for s, v in d.items()}
            for n, d in sums.items()}


def evaluate_models(
    handles: Sequence[ModelHandle],
    images: Sequence[np.ndarray],
    sigmas: Sequence[float],
    seed: int = 0,
    progress: bool = True,
    batch: int = 1,
) -> Results:
    """{model name: {σ: {"psnr": mean dB, "ssim": mean}}} over ``images`` (each (H, W) or (H, W, C) in [0, 1]).

    ``sigmas`` are in [0, 1] units (σ_8bit / 255). See the module docstring for the protocol. ``batch`` > 1
    denoises up to that many consecutive images of one shape in one pass (:func:`score_batch`: the same
    noise, the same table up to float rounding; for networks on small images, e.g. patches, much faster).
    """
    _check([h.name for h in handles], len(images), sigmas, seed)
    if batch < 1:
        raise EvaluationError(f"batch must be ≥ 1, got {batch}")
    scores: list[ImageScores] = []
    with tqdm(total=len(images), desc="evaluate", unit="image", disable=not progress) as bar:
        for chunk in same_shape_runs(images, batch):
            scores += score_batch(handles, [images[i] for i in chunk], chunk, sigmas, seed)
            bar.update(len(chunk))
    return mean_scores(scores)


def same_shape_runs(images: Sequence[np.ndarray], batch: int) -> list[list[int]]:
    """Indices of ``images`` in order, cut into runs of at most ``batch`` consecutive images of one shape."""
    runs: list[list[int]] = []
    for i, x in enumerate(images):
        if runs and len(runs[-1]) < batch and np.shape(images[runs[-1][0]]) == np.shape(x):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def score_batch(handles: Sequence[ModelHandle], xs: Sequence[np.ndarray], indices: Sequence[int],
                sigmas: Sequence[float], seed: int) -> list[ImageScores]:
    """PSNR and SSIM of every model on images of one shape (numbers ``indices``) at every σ, one forward pass
    per model and σ: each image keeps the noise of its own index, so the scores are those of one image at a
    time (up to float rounding)."""
    scores: list[ImageScores] = [{h.name: {} for h in handles} for _ in xs]
    for s in sigmas:
        ys = np.stack([noisy_image(x, s, seed, i) for x, i in zip(xs, indices)])
        batch = torch.from_numpy(ys[:, None] if ys.ndim == 3 else ys.transpose(0, 3, 1, 2).copy())
        for h in handles:
            out = h.denoise(batch, None if h.blind else s).clamp(0.0, 1.0).numpy()
            out = out[:, 0] if ys.ndim == 3 else out.transpose(0, 2, 3, 1)
            for k, x in enumerate(xs):
                scores[k][h.name][s] = (psnr(out[k], x), ssim(out[k], x))
    return scores


def score_files(handles: Sequence[ModelHandle], files: Sequence[tuple[int, ImageRef]], sigmas: Sequence[float],
                seed: int, progress: bool = False) -> tuple[dict[int, ImageScores], Failures]:
    """:func:`score_image` of every (index, path) pair, and the files that failed."""
    gray = handles[0].channels == 1
    return each_image(lambda i, x: score_image(handles, x, i, sigmas, seed), files, gray, "evaluate", progress)


def score_task(files: Sequence[tuple[int, ImageRef]], lineup: Lineup, fingerprints: tuple[str, ...],
               sigmas: Sequence[float], seed: int) -> tuple[dict[int, ImageScores], Failures]:
    """A runner task: :func:`score_files` of the ``lineup`` (opened once per process and checked
    against the caller's weight ``fingerprints``) on (index, image) pairs."""
    handles = runners.opened(("evaluate", lineup, fingerprints), lambda: runners.verified(lineup.open(), fingerprints))
    return score_files(handles, files, sigmas, seed)


@dataclass(frozen=True)
class Lineup:
    """The denoisers of a benchmark, described so that any process can open them."""

    models: tuple[str, ...] = ()
    bm3d: bool = False
    classical: bool = False
    classical_arc: bool = False

    def open(self) -> list[ModelHandle]:
        """The named models (:func:`open_model`) followed by the requested baselines, all of one channel count."""
        handles = [open_model(m) for m in self.models]
        channels = {h.channels for h in handles} or {1}
        if len(channels) > 1:
            raise EvaluationError(f"models take different channel counts {sorted(channels)}; evaluate them separately")
        handles += baselines(self.bm3d, self.classical, channels.pop(), self.classical_arc)
        if not handles:
            raise EvaluationError("no model to evaluate: name one or pass --bm3d / --classical / --arc")
        return handles


@dataclass
class Benchmark:
    """Mean scores over the images that could be used, their number, and the files that could not."""

    results: Results
    images: int
    failures: Failures


def benchmark(
    lineup: Lineup,
    files: Sequence[ImageRef],
    sigmas: Sequence[float],
    seed: int = 0,
    runner: Runner | None = None,
    progress: bool = True,
    handles: Sequence[ModelHandle] | None = None,
    client: Any = None,
) -> Benchmark:
    """Score the ``lineup`` on images (files or built-in set images), batch by batch through ``runner``
    (:mod:`explorer.runner`; default: serially here, e.g. ``explorer.distributed.DaskRunner(client)``
    for a Dask cluster). ``client=`` is the deprecated spelling of ``runner=DaskRunner(client)``.

    ``handles`` are the lineup already opened in this process (opened here if not given). Image i is
    the i-th of ``files`` whichever process scores it, so every runner gives the same numbers.
    """
    run = runners.resolve(runner, client)
    handles = list(handles) if handles is not None else lineup.open()
    _check([h.name for h in handles], len(files), sigmas, seed)
    indexed = list(enumerate(files))
    if runners.is_in_process(run):
        task = partial(score_files, handles, sigmas=sigmas, seed=seed, progress=progress)
    else:  # other processes open the lineup themselves, by name, and check the weights
        fingerprints = tuple(runners.model_fingerprint(h) for h in handles)
        task = partial(score_task, lineup=lineup, fingerprints=fingerprints, sigmas=list(sigmas), seed=seed)
        indexed = portable(indexed)
    scores, failures = runners.merge(run(task, indexed, desc="evaluate", progress=progress))
    if not scores:
        raise EvaluationError(f"every image failed: {'; '.join(f'{n}: {r}' for n, r in failures)}")
    return Benchmark(mean_scores([scores[i] for i in sorted(scores)]), len(scores), failures)


def arc(channels: int) -> list[tuple[str, Denoiser]]:
    """The classical arc of issue #19 at its fitted σ rules, Tikhonov to wavelet shrinkage (blind: σ̂)."""
    return [("tikhonov", TikhonovGradient(channels=channels)), ("perona-malik", PeronaMalik(channels=channels)),
            ("total-variation", TotalVariation(channels=channels)), ("bilateral", BilateralFilter(channels=channels)),
            ("nl-means", NonLocalMeans(channels=channels)), ("wavelet", WaveletShrinkage(channels=channels))]


def baselines(bm3d: bool, classical: bool, channels: int, classical_arc: bool = False) -> list[ModelHandle]:
    """The optional reference denoisers of the CLI flags."""
    out = []
    if bm3d:
        try:
            out.append(ModelHandle(BM3D(channels), device="cpu", name="BM3D"))
        except ImportError as e:
            raise EvaluationError(str(e)) from None
    if classical:
        for name, model in [("gaussian", GaussianSmoothing(channels=channels)), ("wiener", WienerFilter(channels=channels)),
                            ("haar", HaarShrinkage(channels=channels))]:
            out.append(ModelHandle(model, name=name))
    if classical_arc:
        out += [ModelHandle(model, name=name) for name, model in arc(channels)]
    return out


def _label(sigma: float) -> str:
    return f"{sigma:g}"


def relabel(results: Results, scale: float) -> dict[str, dict[str, dict[str, float]]]:
    """The results with σ keys written in the user's units (σ · scale), as strings."""
    return {n: {_label(s * scale): v for s, v in d.items()} for n, d in results.items()}


def format_table(table: dict[str, dict[str, dict[str, float]]], title: str) -> str:
    """Rows = models, columns = σ, cells 'PSNR / SSIM'."""
    cols = list(next(iter(table.values())))
    width = max(len("model"), *(len(n) for n in table))
    lines = [title, f"{'model':<{width}}  " + "  ".join(f"{'σ=' + c:>16}" for c in cols)]
    for n, d in table.items():
        lines.append(f"{n:<{width}}  " + "  ".join(f"{d[c]['psnr']:>7.2f} / {d[c]['ssim']:.4f}" for c in cols))
    return "\n".join(lines)


def write_card_metrics(card_path: Path | str, dataset: str, entry: dict[str, Any]) -> None:
    """Set ``metrics[dataset] = entry`` in the JSON card, leaving every other field as it is."""
    card_path = Path(card_path)
    card = json.loads(card_path.read_text())
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    metrics[dataset] = entry
    card["metrics"] = metrics
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def _parse_sigmas(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sigma takes comma-separated numbers, got {text!r}") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--sigma needs positive numbers, got {text!r}")
    return values


def benchmark_images(data: str, limit: int | None) -> tuple[str, list[ImageRef]]:
    """(label, images) of ``--data``: a built-in set (:mod:`explorer.data.testsets`) or a folder (label:
    its name). ``limit`` keeps the first N."""
    if is_builtin_set(data) and not Path(data).is_dir():
        try:
            label, images = builtin_set(data, limit)
        except ValueError as e:
            raise EvaluationError(str(e)) from None
        return label, list(images)
    files = list_images(data)[:limit]
    if not files:
        raise EvaluationError(f"{data}: no image files in the folder")
    return Path(data).resolve().name, list(files)


def command_line(argv: Sequence[str]) -> str:
    """The command that regenerates a table, for the model card."""
    return " ".join(["python -m explorer.evaluate", *argv])


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    lineup = Lineup(tuple(args.models), args.bm3d, args.classical, args.arc)
    handles = lineup.open()
    dataset, files = benchmark_images(args.data, args.limit)
    sigmas = [s / args.scale for s in args.sigma]
    from .distributed import runner_for

    with runner_for(args.scheduler, args.workers) as runner:
        bench = benchmark(lineup, files, sigmas, args.seed, runner, progress=not args.quiet, handles=handles)
    if bench.failures:
        raise EvaluationError(f"{len(bench.failures)} of {len(files)} images unusable: "
                              + "; ".join(f"{name}: {reason}" for name, reason in bench.failures))
    table = relabel(bench.results, args.scale)
    print(format_table(table, f"PSNR (dB) / SSIM on {dataset} ({bench.images} images), σ in units of 1/{args.scale:g}, seed {args.seed}"))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")
    if args.write_card:
        for h in handles[:len(lineup.models)]:
            card_path = h.card.get("_card_path")
            if card_path is None:
                print(f"explorer.evaluate: note: {h.name} has no model card; nothing written", file=sys.stderr)
                continue
            entry = {"sigma_scale": args.scale, "seed": args.seed, "images": bench.images, "results": table[h.name],
                     "command": command_line(argv)}
            write_card_metrics(card_path, dataset, entry)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="MODEL", help="catalog name, .safetensors/.json path or lab .pt file")
    parser.add_argument("--data", required=True,
                        help="folder of test images, or a built-in set: mnist (500 held-out digits), discs[:SIZE], calpha[:SIZE], dead-leaves[:SIZE]")
    parser.add_argument("--sigma", required=True, type=_parse_sigmas, help="comma-separated noise levels, e.g. 15,25,50")
    parser.add_argument("--scale", type=float, default=255.0, choices=[255.0, 1.0], help="σ units: 255 = 8-bit levels (default), 1 = [0, 1]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bm3d", action="store_true", help="add BM3D (needs the bm3d package)")
    parser.add_argument("--classical", action="store_true", help="add Gaussian, Wiener and Haar-shrinkage baselines")
    parser.add_argument("--arc", action="store_true",
                        help="add the classical arc: Tikhonov, Perona–Malik, total variation, bilateral, non-local means, wavelets")
    parser.add_argument("--json", type=Path, help="write {model: {sigma: {psnr, ssim}}} here")
    parser.add_argument("--limit", type=int, help="use only the first N images (sorted by name)")
    parser.add_argument("--write-card", action="store_true", help="store the results in each model card's metrics")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="score on a running Dask cluster (e.g. tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N", help="score on a local Dask cluster of N worker processes")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be ≥ 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be ≥ 1")
    try:
        return _run(args, sys.argv[1:] if argv is None else argv)
    except (CheckpointError, ImageFileError, EvaluationError, OSError) as e:
        print(f"explorer.evaluate: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
