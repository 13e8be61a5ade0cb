"""EnergyPatchState: the photograph views of the Energies tool, widget-free.

Beside the energies of an :class:`~explorer.ui.energy_state.EnergyState` (``energy``), on their own task
runners so the histogram never waits for them:

When ``active`` (they cost a denoiser pass per image and a model pass per patch, so they start off):

- the scatter data: each image's gradient energy (local contrast) and its denoising gain, PSNR(x̂, x) −
  PSNR(y, x) at σ = 25/255 under ``denoiser`` (:mod:`explorer.patch_measures`), recomputed when new
  energies arrive or the denoiser changes;
- the map: −log p of every patch of one photograph (``photo``: a built-in one or a file of the data set's
  folder, square-cropped and resized to ``map_size``) at ``map_stride``, patches of the data set's image
  size, in the energies' quantity (:func:`explorer.energy_maps.nll_map`), recomputed when the photograph,
  its size, the stride or the energies change.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import param
import torch

import explorer
from explorer.data import BUILTIN_IMAGES, builtin_image, list_images, load_image, square_resize
from explorer.energy_maps import NLLMap, nll_map
from explorer.patch_measures import DEFAULT_SIGMA, denoising_gain, gradient_energy

from .energy_data import PATCH_FOLDERS
from .energy_state import EnergyState, InlineTask
from .models import get_handle

NO_DENOISER = "— none —"
MAP_SIZES = [128, 256, 512, "original"]


class EnergyPatchState(param.Parameterized):
    """Contrast and denoisability of the images shown, and the −log p map of one photograph.

    Inputs: ``active`` (nothing is computed until it is on), ``denoiser``, ``photo``, ``map_size``,
    ``map_stride`` (and the energies of ``energy``).
    Outputs: ``gradient`` / ``gain`` (one per image of ``energy.items``, NaN where unusable), ``map`` (an
    :class:`~explorer.energy_maps.NLLMap`) and ``map_image`` (the photograph it covers), the ``*_status``
    and ``*_error`` texts, ``revision`` (bumped when any result changes).
    """

    active = param.Boolean(default=False, doc="Compute the scatter plots and the map, and again for every new set of "
                           "energies (off: nothing is computed; they cost a denoiser pass per image and a model pass per patch)")
    denoiser = param.String(default=explorer.DEFAULT_MODEL, doc="The denoiser whose gain is plotted (picker name)")
    photo = param.Selector(objects=list(BUILTIN_IMAGES), default="camera" if "camera" in BUILTIN_IMAGES else None,
                           doc="The photograph of the map")
    map_size = param.Selector(objects=MAP_SIZES, default=256, doc="Side the photograph is resized to (centre square)")
    map_stride = param.Selector(objects=[4, 8, 16, 32], default=8, doc="Step between the map's patches, pixels")

    scatter_status = param.String(default="")
    scatter_error = param.String(default="")
    map_status = param.String(default="")
    map_error = param.String(default="")
    revision = param.Integer(default=0)

    def __init__(self, energy: EnergyState, task_factory: Callable[..., Any] = InlineTask, **params: Any):
        super().__init__(**params)
        self.energy = energy
        self.gradient = self.gain = np.zeros(0)
        self.sigma = DEFAULT_SIGMA
        self.map: NLLMap | None = None
        self.map_image: np.ndarray | None = None
        self.map_label = ""
        self._paths: dict[str, Path] = {}
        self._report: Any = None
        self.scatter_task = task_factory(self._scatter_work, self._scatter_result, self._failed("scatter"),
                                         lambda: None, name="energy-scatter")
        self.map_task = task_factory(self._map_work, self._map_result, self._failed("map"), lambda: None, name="energy-map")
        energy.param.watch(lambda _e: self._list_photos(), ["dataset", "folder"])
        energy.param.watch(lambda _e: self._on_energies(), "revision")
        self._list_photos()

    # ------------------------------------------------------------------ the photographs offered
    def photo_folder(self) -> Path | None:
        """The folder of the data set shown (Set68, Set12, the user's), whose files the map also offers."""
        e = self.energy
        if e.dataset in PATCH_FOLDERS:
            return PATCH_FOLDERS[e.dataset][0]
        if e.dataset == "image folder" and e.folder.strip():
            return Path(e.folder.strip()).expanduser()
        return None

    def _list_photos(self) -> None:
        folder = self.photo_folder()
        try:
            files = list_images(folder) if folder is not None and folder.is_dir() else []
        except Exception:
            files = []
        self._paths = {f"{folder.name}/{p.name}": p for p in files}
        objects = [*self._paths, *BUILTIN_IMAGES]
        # a photograph of the data set shown if it has any (the one chosen when it is one of them), else a built-in one
        keep = self.photo if self.photo in self._paths or (not self._paths and self.photo in objects) else (
            next(iter(self._paths), None) or self.param.photo.default)
        with param.parameterized.discard_events(self):
            self.param.photo.objects = objects
            self.photo = keep

    def photograph(self, photo: str | None = None, size: int | str | None = None) -> np.ndarray:
        """A photograph offered (default: the chosen one), gray in [0, 1], its centre square resized to
        ``size`` (default ``map_size``; "original": as it is)."""
        photo, size = photo or self.photo, size or self.map_size
        img = load_image(self._paths[photo]) if photo in self._paths else builtin_image(photo)
        return img if size == "original" else square_resize(img, int(size))

    # ------------------------------------------------------------------ requests
    def _on_energies(self) -> None:
        if self.energy.report is not self._report:  # new energies (not just a new probe image)
            self._report = self.energy.report
            self._on_active()

    @param.depends("active", watch=True)
    def _on_active(self) -> None:
        """Compute both when active; otherwise drop what was shown (it would describe other energies)."""
        if self.active:
            self.compute_scatter()
            self.compute_map()
            return
        self.scatter_task.cancel()
        self.map_task.cancel()
        self.gradient = self.gain = np.zeros(0)
        self.map = self.map_image = None
        self.param.update(scatter_status="", map_status="", scatter_error="", map_error="")
        self.revision += 1

    @param.depends("denoiser", watch=True)
    def compute_scatter(self) -> None:
        """Start the gradient energies and denoising gains of the images shown."""
        e = self.energy
        if not self.active or e.report is None or not len(e.items):
            return
        self.param.update(scatter_error="", scatter_status=f"Denoising {len(e.items)} images at σ = 25/255…")
        self.scatter_task.submit(dict(items=list(e.items), shape=e.shape, denoiser=self.denoiser, report=e.report))

    @param.depends("photo", "map_size", "map_stride", watch=True)
    def compute_map(self) -> None:
        """Start the −log p map of the chosen photograph under the energies' model and quantity."""
        e = self.energy
        if not self.active or e.report is None or e.handle is None or self.photo is None:
            return
        if e.shape[0] != e.shape[1]:
            self.param.update(map_error=f"The map cuts square patches; this data set's images are {e.shape[0]}×{e.shape[1]}.",
                              map_status="")
            return
        self.param.update(map_error="", map_status=f"Mapping {self.photo} at stride {self.map_stride}…")
        self.map_task.submit(dict(handle=e.handle, size=int(e.shape[0]), quantity=e.quantity, photo=self.photo,
                                  map_size=self.map_size, stride=int(self.map_stride), report=e.report))

    # ------------------------------------------------------------------ the work (worker threads)
    def _scatter_work(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        t0 = time.perf_counter()
        images = [np.asarray(it.load(), dtype=np.float32) for it in req["items"]]
        images = [a.mean(axis=-1) if a.ndim == 3 else a for a in images]
        same = [i for i, a in enumerate(images) if a.shape == tuple(req["shape"])]
        gradient, gain = np.full(len(images), np.nan), np.full(len(images), np.nan)
        x = torch.from_numpy(np.stack([images[i] for i in same]))[:, None] if same else None
        if x is not None:
            gradient[same] = gradient_energy(x)
        why = ""
        if x is not None and req["denoiser"] != NO_DENOISER:
            handle = get_handle(req["denoiser"])
            if stop.is_set():
                return
            if handle.channels != 1:
                why = f"{req['denoiser']} takes {handle.channels}-channel images; these are gray"
            else:
                gain[same] = denoising_gain(handle.denoise, x, self.sigma)
        publish(dict(gradient=gradient, gain=gain, report=req["report"], why=why, seconds=time.perf_counter() - t0,
                     denoiser=req["denoiser"]))

    def _map_work(self, req: dict[str, Any], stop: threading.Event, publish: Callable[[Any], None]) -> None:
        t0 = time.perf_counter()
        img = self.photograph(req["photo"], req["map_size"])
        result = nll_map(req["handle"], img, req["size"], req["stride"], req["quantity"])
        publish(dict(map=result, image=img, photo=req["photo"], report=req["report"], seconds=time.perf_counter() - t0))

    # ------------------------------------------------------------------ results (event loop)
    def _scatter_result(self, msg: dict[str, Any]) -> None:
        if msg["report"] is not self.energy.report:
            return  # energies newer than these
        self.gradient, self.gain = msg["gradient"], msg["gain"]
        what = f"gains of {msg['denoiser']}" if msg["denoiser"] != NO_DENOISER else "no denoiser chosen"
        self.param.update(scatter_status=f"Gradient energies and {what} in {msg['seconds']:.1f} s.",
                          scatter_error=msg["why"])
        self.revision += 1

    def _map_result(self, msg: dict[str, Any]) -> None:
        if msg["report"] is not self.energy.report:
            return
        self.map, self.map_image, self.map_label = msg["map"], msg["image"], msg["photo"]
        m = self.map
        self.map_status = (f"{m.nats.size} patches of {m.size}×{m.size} ({m.nats.shape[0]}×{m.nats.shape[1]}, stride "
                           f"{m.stride}) in {msg['seconds']:.1f} s.")
        self.revision += 1

    def _failed(self, which: str) -> Callable[[BaseException], None]:
        def on_error(e: BaseException) -> None:
            self.param.update(**{f"{which}_error": f"The {which} failed: {type(e).__name__}: {e}", f"{which}_status": "Failed."})
        return on_error
