"""Which denoiser: the process-wide handle registry and the model picker widget.

- :func:`model_names` / :func:`get_handle` / :func:`register_handle` — catalog models, handles
  registered by tests or notebooks, and the classical denoisers, each loaded once and shared by every
  session of the process.
- :func:`describe_card` — one line about a model, from whatever its card holds.
- :func:`sigma_arg` — what to tell a denoiser about σ (nothing if it is blind).
- :class:`ModelPicker` — a model chosen by name, loaded lazily, errors shown in the page.
"""
from __future__ import annotations

import math
import numbers
import threading
from typing import Any

import panel as pn
import param

import explorer

#: Picker name → (class in :mod:`explorer.denoisers`, constructor arguments): the classical arc, each at its
#: fitted σ rule. BM3D is not differentiable (``differentiable = False``): the analyses say so when asked.
CLASSICAL: dict[str, tuple[str, dict[str, Any]]] = {
    "classical: Gaussian smoothing": ("GaussianSmoothing", {}),
    "classical: Wiener filter": ("WienerFilter", {}),
    "classical: Haar shrinkage": ("HaarShrinkage", {}),
    "classical: Tikhonov (gradient prior)": ("TikhonovGradient", {}),
    "classical: Perona–Malik diffusion": ("PeronaMalik", {}),
    "classical: total variation": ("TotalVariation", {}),
    "classical: bilateral filter": ("BilateralFilter", {}),
    "classical: non-local means": ("NonLocalMeans", {}),
    "classical: wavelet shrinkage (sym8, cycle spinning)": ("WaveletShrinkage", {}),
    "classical: BM3D": ("BM3D", {}),
    "classical: BM3D (low-complexity profile)": ("BM3D", {"profile": "lc"}),
}
_EXTRA: dict[str, Any] = {}
_CLASSICAL_HANDLES: dict[str, Any] = {}
_HANDLE_LOCK = threading.Lock()


def register_handle(name: str, handle: Any) -> None:
    """Offer an already-built handle under ``name`` in every model picker of this process (tests, notebooks)."""
    with _HANDLE_LOCK:
        _EXTRA[name] = handle


def model_names(include_classical: bool = True) -> list[str]:
    """Catalog names (the default model first), then registered handles, then the classical denoisers."""
    try:
        names = [c["name"] for c in explorer.catalog()]
    except Exception:  # a broken model folder must not take the page down
        names = []
    if explorer.DEFAULT_MODEL in names:
        names.remove(explorer.DEFAULT_MODEL)
        names.insert(0, explorer.DEFAULT_MODEL)
    names += [n for n in _EXTRA if n not in names]
    if include_classical:
        names += list(CLASSICAL)
    return names


def get_handle(name: str) -> Any:
    """The process-wide shared handle for a picker name (loaded on first use; explorer.load caches)."""
    with _HANDLE_LOCK:
        if name in _EXTRA:
            return _EXTRA[name]
        if name in CLASSICAL:
            if name not in _CLASSICAL_HANDLES:
                from explorer import denoisers

                cls_name, kw = CLASSICAL[name]
                model = getattr(denoisers, cls_name)(**kw)
                _CLASSICAL_HANDLES[name] = explorer.ModelHandle(model, device="cpu", name=name,
                                                                card={"name": name, "architecture": "classical"})
            return _CLASSICAL_HANDLES[name]
    return explorer.load(name)


def _num(value: Any, fmt: str) -> str | None:
    """``value`` formatted with ``fmt``, or None if it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        return None
    return format(float(value), fmt)


def describe_card(handle: Any) -> str:
    """One line about a model: architecture, blind/bias-free, training noise range.

    For an energy model: what it estimates, its noise range and log Z, each only if the card has it.
    """
    card = getattr(handle, "card", {}) or {}
    if "energy" in card:
        e = card["energy"] if isinstance(card["energy"], dict) else {}
        bits = [f"{card.get('architecture', 'energy model')}: U(y, t) ≈ −log p_t(y) by dual score matching",
                "noise-conditioned"]
        t_min, t_max = _num(e.get("t_min"), "g"), _num(e.get("t_max"), "g")
        if t_min is not None and t_max is not None:
            bits.append(f"t ∈ [{t_min}, {t_max}]")
        elif t_min is not None or t_max is not None:
            bits.append(f"t ≥ {t_min}" if t_min is not None else f"t ≤ {t_max}")
        log_z = _num(e.get("log_z"), ".3f")
        if log_z is not None:
            bits.append(f"log Z = {log_z} nats")
        return ", ".join(bits)
    bits = [str(card.get("architecture", type(getattr(handle, "model", handle)).__name__))]
    bits.append("bias-free" if getattr(handle, "bias_free", False) else "with biases")
    bits.append("blind (estimates σ itself)" if getattr(handle, "blind", True) else "needs σ")
    noise = (card.get("training") or {}).get("noise") or {}
    if "sigma_max" in noise:
        bits.append(f"trained on σ ∈ [{noise.get('sigma_min', 0)}, {noise['sigma_max']}]")
    return ", ".join(bits)


def sigma_arg(handle: Any, sigma: float) -> float | None:
    """What to tell a denoiser about σ: nothing if it is blind, the true σ otherwise."""
    return None if getattr(handle, "blind", True) else float(max(sigma, 1e-6))


class ModelPicker(pn.viewable.Viewer):
    """Choose a denoiser by name; ``handle`` loads it lazily (shared per process), errors go to ``error``.

    Shown: ``info`` (the line about the loaded model) and ``alert_pane`` (``error``, visible while there is one).
    """

    model = param.Selector(objects=[], doc="Denoiser (catalog name or classical)")
    error = param.String(default="", doc="Why the chosen model could not be loaded")
    include_classical = param.Boolean(default=True, constant=True)

    def __init__(self, **params: Any):
        include = params.get("include_classical", True)
        names = model_names(include)
        super().__init__(**{k: v for k, v in params.items() if k != "model"})
        self.param.model.objects = names
        self.model = params.get("model") or (names[0] if names else None)
        if self.model not in names and self.model is not None:
            self.param.model.objects = [self.model, *names]
        self._select = pn.widgets.Select.from_param(self.param.model, name="Denoiser", sizing_mode="stretch_width")
        self._info = pn.pane.Markdown("", styles={"color": "#555", "font-size": "0.85em"}, margin=(0, 10))
        self.alert_pane = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    @property
    def handle(self) -> Any:
        """The loaded handle of ``model`` (None, with ``error`` set, if it cannot be loaded)."""
        try:
            h = get_handle(self.model)
        except Exception as e:  # CheckpointError, OSError...
            self.error = f"Could not load model {self.model!r}: {e}"
            return None
        self.error = ""
        self._info.object = describe_card(h)
        return h

    @property
    def info(self) -> str:
        """The line shown about the model (:func:`describe_card`; set once ``handle`` has loaded it)."""
        return self._info.object

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self.alert_pane.object = self.error
        self.alert_pane.visible = bool(self.error)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._select, self._info, self.alert_pane, sizing_mode="stretch_width", margin=0)
