"""EnergyState: the logic of the Energies tool, widget-free (no Panel object is made here).

Which images (the data sets of :mod:`explorer.ui.energy_data`), their energies through
:func:`explorer.energies.compute_energies` chunk by chunk on a task runner (cache reuse:
:func:`explorer.energies.read_cache`; ``compute_runner`` is its ``runner=``), the histogram, Gumbel
fit, statistics, references, extremes, the images of a bin, and one chosen image (uploaded or
built-in) and its rank. The view
(:mod:`explorer.ui.energy_view`) only wires widgets to it; tests drive it directly.

The task runner is anything with ``submit(request)`` and ``cancel()`` built as
``task_factory(compute, render, on_error, on_done)``: :class:`InlineTask` (the default, synchronous)
or :class:`explorer.ui.tasks.LatestTask` (the view's), which delivers a run's messages in order and
drops those of a superseded or cancelled run, so the status always ends in the final state.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import param
import torch

from explorer import energies, gaussian_baseline
from explorer.data import BUILTIN_IMAGES, builtin_image
from explorer.energy import CONTINUOUS, DEFAULT_DRAWS, NLLQuantity, in_unit, nll_quantity

from .energy_data import DATASETS, DataSetError, common_shape, dataset_source, fit_to_shape, list_items, match_report
from .sources import read_upload

UNITS = energies.UNITS
CHUNK = 100  # images per compute_energies call (one progress step)
EXTREMES = 6  # lowest / highest images shown
MAX_BIN_IMAGES = 24  # images of the clicked bin shown
REFERENCE_LEVELS = (0.0, 0.5, 1.0)  # constant gray images marked on the histogram
PROBE_NONE, PROBE_UPLOAD = "— none —", "uploaded file"


# ------------------------------------------------------------------------------------------ helpers
def to_unit(nats: Any, dims: Any, unit: str) -> np.ndarray:
    """Energies in nats per image → ``unit`` (:func:`explorer.energy.in_unit`, the one conversion)."""
    v = np.atleast_1d(np.asarray(nats, dtype=np.float64))
    d = np.broadcast_to(np.asarray(dims, dtype=np.int64), v.shape)
    return np.asarray(in_unit(v, d, unit), dtype=np.float64)


def bin_members(values: np.ndarray, edges: np.ndarray, i: int) -> np.ndarray:
    """Indices of the values in bin ``i`` of ``edges`` ([e_i, e_i+1), the last bin closed), as np.histogram counts."""
    lo, hi = edges[i], edges[i + 1]
    inside = (values >= lo) & ((values <= hi) if i == len(edges) - 2 else (values < hi))
    return np.nonzero(inside)[0]


@dataclass
class Baseline:
    """The stationary Gaussian baseline (:mod:`explorer.gaussian_baseline`) on the images shown: ``nats`` per
    image in the model's quantity (NaN for an image of another size), what it was ``fitted`` on, or ``why``
    there is none."""

    nats: np.ndarray | None = None
    fitted: str = ""
    why: str = "not computed yet"


def gaussian_baseline_of(handle: Any, items: list[energies.Item], shape: tuple[int, int], quantity: NLLQuantity) -> Baseline:
    """The Gaussian fitted to square patches of the model's training data (its card's ``training.data``), of
    the images' size, evaluated on ``items`` in ``quantity``."""
    source = gaussian_baseline.training_source(getattr(handle, "card", None))
    if source is None:
        return Baseline(why="its card names no training data found here, so there is nothing to fit it on")
    if shape[0] != shape[1]:
        return Baseline(why=f"it is fitted to square patches; these images are {shape[0]}×{shape[1]}")
    try:
        gauss, fitted = gaussian_baseline.baseline_for(source, int(shape[0]), quantity.bits)
    except ValueError as e:
        return Baseline(why=str(e))
    images = [np.asarray(it.load(), dtype=np.float32) for it in items]
    same = [i for i, a in enumerate(images) if a.shape == tuple(shape)]
    nats = np.full(len(items), np.nan)
    if same:
        x = torch.from_numpy(np.stack([images[i] for i in same]))[:, None]
        nats[same] = energies.image_energies(gauss, x, batch=1024, quantity=quantity)
    return Baseline(nats, fitted)


class InlineTask:
    """The task runner outside a page: ``submit`` runs the request at once, in the caller."""

    def __init__(self, compute: Callable[[Any, threading.Event, Callable[[Any], None]], Any],
                 render: Callable[[Any], Any], on_error: Callable[[BaseException], Any],
                 on_done: Callable[[], Any], name: str = "energy"):
        self._compute, self._render, self._on_error, self._on_done = compute, render, on_error, on_done
        self._stop = threading.Event()

    def submit(self, request: Any) -> None:
        self._stop.set()
        self._stop = stop = threading.Event()
        try:
            self._compute(request, stop, self._render)
        except Exception as e:
            self._on_error(e)
        self._on_done()

    def cancel(self) -> None:
        self._stop.set()


# ------------------------------------------------------------------------------------------ the state
class EnergyState(param.Parameterized):
    """Energies of a data set under an energy model, and everything shown about them.

    Inputs: ``handle`` / ``model_name`` / ``model_error`` (the energy model), ``dataset``, ``folder``,
    ``folder_patches``, ``patch``, ``stride``, ``per_image``, ``draws``, ``count``, ``use_cache`` (each
    recomputes), ``unit``, ``bins``,
    ``show_all_references``, ``selected_bin``, ``probe``; :meth:`compute`, :meth:`stop`,
    :meth:`load_upload`, :meth:`select_at`. Outputs: ``status``, ``progress``, ``running``, ``error``,
    ``note``, ``probe_error``, ``probe_note``, ``revision`` (bumped when the results or the chosen image
    change); ``report``, ``items``, ``shape``, ``references``, ``probe_image`` / ``probe_nats``; the
    numbers in ``unit``: :meth:`values`, :meth:`edges`, :meth:`counts`, :meth:`gumbel`,
    :meth:`summary_stats`, :meth:`reference_markers`, :meth:`probe_value`, :meth:`probe_rank`, ``baseline``
    (:class:`Baseline`) with :meth:`baseline_values` and :meth:`baseline_margin`, :meth:`probability_ratio`,
    :meth:`extremes`, :meth:`selected_indices`, :meth:`image`.
    """

    handle = param.Parameter(default=None, doc="The energy model's ModelHandle")
    model_name = param.String(default="", doc="Its name (titles, file names, distributed workers)")
    model_error = param.String(default="", doc="Why no handle (shown instead of computing)")
    compute_runner = param.Parameter(default=None, doc="runner= of compute_energies (explorer.runner); None: here")
    dataset = param.Selector(objects=list(DATASETS), default=DATASETS[0], doc="Images whose energies are computed")
    folder = param.String(default="", doc="Folder of images (PNG, JPEG, TIFF…) for the 'image folder' data set")
    folder_patches = param.Boolean(default=False, doc="Cut the folder's images into non-overlapping patches")
    patch = param.Selector(objects=[16, 32, 64], default=32, doc="Patch size / resized size (pixels per side)")
    stride = param.Selector(objects=[4, 8, 16, 32, 64], default=32,
                            doc="Step between patches, pixels (= the patch size: non-overlapping tiles)")
    per_image = param.Integer(default=16, bounds=(1, 10000), doc="Patches per photograph at most, evenly spread")
    draws = param.Selector(objects=[1, 2, 4, 8], default=DEFAULT_DRAWS,
                           doc="Dequantization draws per image of a discrete (8-bit) likelihood: 1 = one pass per image")
    count = param.Integer(default=500, bounds=(3, 10000), doc="Use the first N images of the data set")
    use_cache = param.Boolean(default=True, doc="Reuse (and store) energies in the on-disk cache")
    unit = param.Selector(objects=list(UNITS), default="bits/dim", doc="Unit of the energies shown")
    bins = param.Selector(objects=["auto", 10, 20, 40, 80], default="auto", doc="Number of histogram bins")
    show_all_references = param.Boolean(default=False, doc="Widen the axis to show every reference energy")
    selected_bin = param.Integer(default=None, allow_None=True, doc="Index of the clicked histogram bin")
    probe = param.Selector(objects=[PROBE_NONE, PROBE_UPLOAD, *BUILTIN_IMAGES], default=PROBE_NONE,
                           doc="One image placed on the histogram")

    status = param.String(default="", doc="The status line of the computation")
    progress = param.Integer(default=0, bounds=(0, 100), doc="Progress of the computation, percent")
    running = param.Boolean(default=False, doc="A computation is under way")
    error = param.String(default="", doc="Why there are no energies (model, data set, computation)")
    note = param.String(default="", doc="A caveat about the energies shown (a model not normalized)")
    probe_error = param.String(default="", doc="Why the chosen image (upload) could not be used")
    probe_note = param.String(default="", doc="What the conversion of the uploaded image did")
    probe_hint = param.String(default="", doc="What the single-image section waits for")
    revision = param.Integer(default=0, doc="Bumped whenever the results or the chosen image change")

    def __init__(self, task_factory: Callable[..., Any] = InlineTask, **params: Any):
        super().__init__(**params)
        self.task = task_factory(self._work, self.receive, self.failed, self.finished, name="energy")
        self.report: energies.EnergyReport | None = None
        self.quantity: NLLQuantity = CONTINUOUS
        self.items: list[energies.Item] = []
        self.shape: tuple[int, int] = (32, 32)
        self.references: dict[str, Any] | None = None
        self.baseline = Baseline()  # the stationary Gaussian's −log p of the same images
        self.data_name = self.data_label = self.result_model = ""  # of the energies shown
        self.computed, self.seconds, self.log_z = 0, 0.0, float("nan")
        self.probe_image: np.ndarray | None = None
        self.probe_nats: float | None = None
        self.probe_label = ""
        self._uploaded: np.ndarray | None = None
        self._upload_name = self._upload_note = ""

    # ------------------------------------------------------------------ requests
    @param.depends("handle", "dataset", "folder", "folder_patches", "patch", "stride", "per_image", "draws", "count",
                   "use_cache", watch=True)
    def compute(self) -> None:
        """Start (or restart) the energies of the chosen data set under the chosen model."""
        handle = self.handle
        if handle is None:
            self.error = self.model_error or "No energy model."
            return
        if not callable(getattr(getattr(handle, "model", None), "nll", None)):
            self.error = f"{self.model_name!r} is not an energy model (it has no nll): choose another."
            return
        if self.dataset == "image folder" and not self.folder.strip():
            self.param.update(error="", status="Type the path of a folder of images in the sidebar.")
            return
        data, kw, label = dataset_source(self.dataset, self.folder, self.folder_patches, self.patch, self.stride,
                                         self.per_image)
        self.param.update(error="", running=True, progress=0, status="Listing the images…")
        self.task.submit(dict(handle=handle, name=self.model_name, data=data, kw=kw, label=label,
                              quantity=nll_quantity(getattr(handle, "card", None), draws=int(self.draws)), count=int(self.count),
                              use_cache=bool(self.use_cache), runner=self.compute_runner))

    def stop(self) -> None:
        """Cancel the computation; the energies computed so far are in the cache (Compute resumes from there)."""
        self.task.cancel()
        self.param.update(running=False, status="Stopped. The energies computed so far are cached: ▶ Compute "
                          "resumes from there." if self.use_cache else "Stopped.")

    # ------------------------------------------------------------------ the work (worker thread)
    def _work(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        t0 = time.perf_counter()

        def send(kind: str, **kw: Any) -> None:
            publish(dict(kind=kind, **kw))

        handle, quantity = req["handle"], req["quantity"]  # every model call below goes through the handle (its lock)
        items, source = list_items(req["data"], req["kw"], gray=handle.channels == 1, quantity=quantity)
        selected = items[:req["count"]]
        use_cache = req["use_cache"]
        run = dict(runner=req["runner"], model_ref=req["name"] or None, use_cache=use_cache, progress=False)
        # Each compute_energies call rewrites the cache with the entries of the items it was given, so every
        # call also gets the already-cached items of this source (instant): nothing computed before is lost.
        cached_keys = set(energies.read_cache(energies.cache_path(handle, source))) if use_cache else set()
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
        send("progress", done=n_cached, total=len(selected), cached=n_cached)
        for start in range(0, len(todo), CHUNK):
            if stop.is_set():
                return
            part = todo[start:start + CHUNK]
            prefix = keep + done if use_cache else []
            rep = energies.compute_energies(handle, prefix + part, source, **run)
            ok, v, d, sd, bad = match_report(part, rep, len(prefix))
            failures += bad
            failed |= {it.key for it in part} - {g.key for g in ok}
            if use_cache:
                done += ok
            else:
                good, nats, dims, sds = good + ok, nats + v, dims + d, sds + sd
            send("progress", done=n_cached + start + len(part), total=len(selected), cached=n_cached)
        if stop.is_set():
            return
        if use_cache:  # every usable selected image is cached now: read them back in data-set order
            wanted = [it for it in selected if it.key not in failed]
            rep = energies.compute_energies(handle, wanted + keep, source, **run)
            good, nats, dims, sds, bad = match_report(wanted, rep, 0)
            failures += bad
        shape = common_shape(good) if good else (32, 32)
        refs = energies.reference_energies(handle, shape, quantity=quantity) if good else None
        if stop.is_set():
            return
        send("progress", done=len(selected), total=len(selected), cached=n_cached, doing="the Gaussian baseline")
        baseline = gaussian_baseline_of(handle, good, shape, quantity)
        report = energies.EnergyReport([it.label for it in good], np.asarray(nats, np.float64), np.asarray(dims, np.int64),
                                       energies.is_normalized(handle), failures, cached=n_cached, quantity=quantity,
                                       draw_sd=np.asarray(sds, np.float64))
        send("result", report=report, items=good, shape=shape, references=refs, baseline=baseline, name=req["name"], label=req["label"],
             data=req["data"], computed=len(todo), seconds=time.perf_counter() - t0, total=len(selected),
             log_z=float(handle.model.log_z))

    # ------------------------------------------------------------------ messages (event loop)
    def receive(self, msg: dict[str, Any]) -> None:
        """Show a message of the work: progress, or the result."""
        if msg["kind"] == "progress":
            doing = f"; now {msg['doing']}" if msg.get("doing") else ""
            self.param.update(progress=int(100 * msg["done"] / max(1, msg["total"])),
                              status=f"Computing energies… {msg['done']} / {msg['total']} images "
                                     f"({msg['cached']} from the cache){doing}")
            return
        report: energies.EnergyReport = msg["report"]
        self.baseline = msg["baseline"]
        self.report, self.items, self.shape, self.references = report, msg["items"], msg["shape"], msg["references"]
        self.result_model, self.data_label, self.data_name = msg["name"], msg["label"], msg["data"]
        self.computed, self.seconds, self.log_z, self.quantity = msg["computed"], msg["seconds"], msg["log_z"], report.quantity
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
        with param.parameterized.discard_events(self):
            self.selected_bin = None
        self.param.update(
            progress=100, status=f"Done: {n} energies of {msg['total']} images ({'; '.join(parts)}) in {msg['seconds']:.1f} s.",
            error="Every image failed: no energies to show (see the list of failures below)." if n == 0 else self.error,
            note=self._caveat(report))
        self._update_probe()
        self.revision += 1

    @staticmethod
    def _caveat(report: energies.EnergyReport) -> str:
        """What the numbers must not be read as: relative energies, or impossible discrete likelihoods."""
        if not report.normalized:
            return "This model is not normalized (log Z unknown): the energies are relative, U(x, t_min), not −log p(x)."
        below = int(np.sum(report.values < 0)) if report.quantity.discrete else 0
        if below:
            return (f"{below} of these {report.quantity.bits}-bit −log P(x) are below 0 (P(x) > 1 by this estimate), which no "
                    "normalized model gives in expectation: the model's density (or its log Z) does not hold on these images "
                    "(were they like its training data?).")
        return ""

    def failed(self, e: BaseException) -> None:
        """The work raised: say why."""
        self.param.update(error=str(e) if isinstance(e, DataSetError) else f"The computation failed: {type(e).__name__}: {e}",
                          status="Failed.")

    def finished(self) -> None:
        """The work returned (after its last message)."""
        self.running = False

    # ------------------------------------------------------------------ numbers in the current unit
    def values(self) -> np.ndarray:
        """The energies shown, in ``unit`` (one per image of ``items``)."""
        return np.zeros(0) if self.report is None else np.asarray(self.report.in_unit(self.unit), dtype=np.float64)

    def edges(self) -> np.ndarray:
        v = self.values()
        return np.asarray(energies.histogram(v, self.bins)["edges"], dtype=np.float64) if v.size else np.zeros(0)

    def counts(self) -> np.ndarray:
        v = self.values()
        return np.asarray(energies.histogram(v, self.bins)["counts"]) if v.size else np.zeros(0, int)

    def gumbel(self) -> dict[str, Any] | None:
        v = self.values()
        try:
            return energies.gumbel_fit(v) if v.size >= 3 else None
        except ValueError:
            return None

    def summary_stats(self) -> dict[str, float] | None:
        """The summary shown (:func:`explorer.energies.summary` of the energies in ``unit``), with
        ``mean_stderr``, the standard error the dequantization draws leave on the mean (NaN for a
        continuous density); None before any energies."""
        v = self.values()
        if v.size == 0 or self.report is None:
            return None
        return {**energies.summary(v), "mean_stderr": self.report.mean_stderr(self.unit)}

    def reference_energies(self) -> list[tuple[str, float]]:
        """(label, energy in ``unit``) of the reference images: constant black, mid-gray, white; uniform
        noise. NaN where the model gave no finite energy (never drawn as a marker)."""
        r = self.references
        if not r:
            return []
        d, levels, out = int(np.prod(r["shape"])), np.asarray(r["gray_levels"]), []
        for g in REFERENCE_LEVELS:
            i = int(np.argmin(np.abs(levels - g)))
            name = {0.0: "black", 1.0: "white"}.get(g, f"gray {g:g}")
            out.append((f"constant {name}", float(to_unit(r["constant"][i], d, self.unit)[0])))
        out.append(("uniform noise (mean)", float(to_unit(r["uniform_noise_mean"], d, self.unit)[0])))
        return [(k, x if math.isfinite(x) else float("nan")) for k, x in out]

    def reference_markers(self) -> list[tuple[str, float]]:
        """The references with a finite energy (markers on the histogram)."""
        return [(k, x) for k, x in self.reference_energies() if math.isfinite(x)]

    def baseline_values(self) -> np.ndarray:
        """The stationary Gaussian baseline's −log p of each image of ``items`` in ``unit`` (NaN where it has none)."""
        if self.report is None or self.baseline.nats is None:
            return np.full(len(self.values()), np.nan)
        return to_unit(self.baseline.nats, self.report.dims, self.unit)

    def baseline_margin(self) -> tuple[float, float] | None:
        """(mean over the images of baseline − model, its paired standard error) in ``unit``: > 0 when the
        model makes the images more probable than the Gaussian does; None without a baseline."""
        b, v = self.baseline_values(), self.values()
        ok = np.isfinite(b)
        if ok.sum() < 2:
            return None
        diff = b[ok] - v[ok]
        return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))

    def probability_ratio(self) -> float | None:
        """k of p(most probable) / p(least probable) = 10^k over the images shown
        (:func:`explorer.energies.log10_probability_ratio`); None before any energies or when the images
        differ in size (their densities are then not comparable)."""
        if self.report is None or len(self.report.values) < 2 or len(set(self.report.dims.tolist())) != 1:
            return None
        return energies.log10_probability_ratio(self.report.values)

    def probe_value(self) -> float | None:
        if self.probe_nats is None or self.probe_image is None:
            return None
        return float(to_unit(self.probe_nats, self.probe_image.size, self.unit)[0])

    def probe_rank(self) -> float | None:
        """Fraction of the data set with a lower energy per dimension than the chosen image."""
        if self.probe_nats is None or self.report is None or not len(self.report.values):
            return None
        return float(np.mean(self.report.values / self.report.dims < self.probe_nats / self.probe_image.size))

    # ------------------------------------------------------------------ selection
    def select_at(self, x: float | None) -> int | None:
        """Select the bin containing x (a click on the histogram); outside the bins nothing changes."""
        e = self.edges()
        if x is None or e.size < 2 or not (e[0] <= x <= e[-1]):
            return None
        self.selected_bin = i = int(np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(e) - 2))
        return i

    @param.depends("unit", "bins", watch=True, on_init=False)
    def _drop_stale_selection(self) -> None:
        if self.selected_bin is not None and self.selected_bin >= len(self.edges()) - 1:
            self.selected_bin = None

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
        order = np.argsort(self.values(), kind="stable")
        return order[:k], order[::-1][:k]

    def image(self, i: int) -> np.ndarray:
        a = np.asarray(self.items[int(i)].load(), dtype=np.float32)
        return a.mean(axis=-1) if a.ndim == 3 else a

    # ------------------------------------------------------------------ the single image
    def load_upload(self, data: bytes | None, filename: str = "upload.png") -> bool:
        """Use an uploaded file as the chosen image (:func:`explorer.ui.sources.read_upload`: an empty,
        unreadable or tiny file sets ``probe_error``, naming it; never raises). How the file was converted
        (colour, transparency composited, a constant image…) goes to ``probe_note``. True if used."""
        try:
            upload = read_upload(data or b"", filename or "upload")
        except ValueError as e:
            self.probe_error = str(e)
            return False
        self._uploaded, self._upload_name, self._upload_note = upload.image, filename or "upload", upload.note
        self.probe_error = ""
        if self.probe != PROBE_UPLOAD:
            self.probe = PROBE_UPLOAD  # → _on_probe
        else:
            self._on_probe()
        return True

    @param.depends("probe", watch=True)
    def _on_probe(self) -> None:
        self._update_probe()
        self.revision += 1

    def _update_probe(self) -> None:
        """Energy of the chosen single image, resized to the data set's image size."""
        self.probe_image, self.probe_nats = None, None
        self.param.update(probe_note=self._upload_note if self.probe == PROBE_UPLOAD else "", probe_hint="")
        if self.probe == PROBE_NONE:
            return
        if self.probe == PROBE_UPLOAD:
            if self._uploaded is None:
                self.probe_hint = "Choose a file above."
                return
            raw, label = self._uploaded, Path(self._upload_name).stem or "upload"
        else:
            raw, label = builtin_image(self.probe), self.probe
        handle = self.handle
        if handle is None:
            return
        try:
            img = fit_to_shape(raw, self.shape)
            x = torch.from_numpy(np.repeat(img[None, None], handle.channels, axis=1))
            quantity = self.report.quantity if self.report is not None else nll_quantity(getattr(handle, "card", None))
            nats = float(energies.image_energies(handle, x, quantity=quantity)[0])
        except Exception as e:
            self.probe_error = f"Could not compute the energy of {label!r}: {type(e).__name__}: {e}"
            return
        if not math.isfinite(nats):
            self.probe_error = (f"The model gives no finite energy for {label!r} (a diverged or unsuitable model?): "
                                "it is not placed on the histogram.")
            return
        self.probe_image, self.probe_nats, self.probe_label = img, nats, label
        self.probe_error = ""
