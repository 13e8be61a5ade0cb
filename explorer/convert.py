"""Import the LCV lab's published PyTorch checkpoints into safetensors + model card.

``python -m explorer.convert SRC DEST_DIR [--name NAME] [--force]`` writes ``DEST_DIR/NAME.safetensors``
and ``DEST_DIR/NAME.json``; it exits with status 1 and a one-line message on anything it refuses.

Safety: a ``.pt`` file is a pickle, and unpickling can run arbitrary code. Files are read only with
``torch.load(weights_only=True)`` and an allow-list of exactly one class, ``argparse.Namespace``
(the training arguments stored by bias_free_denoising); any other object in the pickle is refused
before it is built.

Formats, recognised from the keys:

1. LabForComputationalVision/bias_free_denoising ``pretrained/{dncnn,unet}/{bias,bias_free}/0-N.pt``:
   ``{"model": [state_dict], "args": Namespace, ...}``.
   - DnCNN (``first_layer``, ``hidden_layer_list.i``, ``bn_layer_list.i``, ``last_layer``), returning
     x̂ = y − net(y), → :class:`DnCNN`. Its bias-free norm computes, in eval mode,
     z = γ · x / (√running_var + 1e-5), so our ``BFNorm2d.running_sd := √running_var + 1e-5``
     reproduces it; the biased model's ``BatchNorm2d`` maps one to one.
   - UNet (``conv1`` … ``conv9``) → :class:`LabUNet` (``args.residual`` kept).
2. LabForComputationalVision/universal_inverse_problem ``BF_CNN``: a state dict ``conv_layers.i.weight``,
   ``running_sd.i`` and ``gammas.i`` of shape (1, C, 1, 1); eval z = γ · x / running_sd; the network
   predicts the residual → :class:`DnCNN` (bias-free).
3. LabForComputationalVision/memorization_generalization_in_diffusion_models ``UNet`` (ICLR 2024): a
   state dict (often with the ``module.`` prefix of DataParallel) ``encoder.b.i``, ``mid_block.i``,
   ``upsample.b``, ``decoder.b.i`` with bias-free norms ``running_sd``/``gammas``; predicts the
   residual → :class:`LabUNet2024`. The pooling window is not stored in the file; the original
   default (2) is assumed and written to the card.
"""
from __future__ import annotations

import argparse
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .checkpoints import CheckpointError, save_model, sha256_file
from .denoisers import ARCHITECTURES, Denoiser, DnCNN, LabUNet, LabUNet2024

ALLOWED_GLOBALS = [argparse.Namespace]
BFD_EPS = 1e-5  # the additive ε of bias_free_denoising's BFBatchNorm2d: x / (√var + ε)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
REPOS = {
    "bias_free_denoising": "LabForComputationalVision/bias_free_denoising",
    "universal_inverse_problem": "LabForComputationalVision/universal_inverse_problem",
    "memorization_generalization": "LabForComputationalVision/memorization_generalization_in_diffusion_models",
}


class LegacyModel(NamedTuple):
    """A lab checkpoint read into memory: the model (eval, CPU), its card fields and a default name."""

    model: Denoiser
    fields: dict[str, Any]
    name: str


def read_legacy(src: Path | str) -> Any:
    """Unpickle ``src`` with tensors, plain containers and ``argparse.Namespace`` only."""
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(src, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{src}: refused: {_refusal_reason(str(e))}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{src}: not a readable PyTorch checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _refusal_reason(message: str) -> str:
    """The useful part of torch's weights-only error: the forbidden global or the unsupported opcode."""
    m = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if m:
        return f"the pickle would build {m.group(1)}; only tensors, plain containers and argparse.Namespace are allowed"
    m = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", message)
    detail = m.group(1) if m else "unknown reason"
    return f"not a weights-only PyTorch pickle ({detail})"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _strip_prefix(state: dict[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def _indices(state: dict[str, Tensor], pattern: str) -> list[int]:
    """Sorted integers i for which ``pattern.format(i)`` is a key (pattern has one ``{}``)."""
    rx = re.compile("^" + re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
    return sorted(int(m.group(1)) for k in state if (m := rx.match(k)))


def _load_into(model: Denoiser, state: dict[str, Tensor], src: Path) -> Denoiser:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{src}: weights do not fit {type(model).__name__} ({str(e).splitlines()[0]})") from None
    return model.eval()


def _num(x: Any) -> float | int:
    x = float(x)
    return int(x) if x.is_integer() else x


def _license_note(src: Path, repo: str) -> str:
    """The LICENSE beside the file or in a parent folder (first lines), else a pointer to the repository."""
    for folder in list(src.resolve().parents)[:4]:
        lic = folder / "LICENSE"
        if lic.is_file():
            lines = [ln.strip() for ln in lic.read_text(errors="replace").splitlines() if ln.strip()][:2]
            return f"{' — '.join(lines)} (github.com/{repo}; LICENSE found at {lic})"
    return f"license of github.com/{repo} applies (no LICENSE file found beside {src.name})"


def _range_from_path(src: Path) -> list[float | int] | None:
    """A noise range spelled ``0to100`` / ``0-100`` in the file or folder names, if any."""
    for part in (src.stem, *[p.name for p in src.parents][:3]):
        m = re.search(r"(\d+(?:\.\d+)?)\s*(?:to|-)\s*(\d+(?:\.\d+)?)", part)
        if m:
            return sorted([_num(m.group(1)), _num(m.group(2))])
    return None


def _range_suffix(noise_range: list | None) -> str:
    return f"-{noise_range[0]}-{noise_range[1]}" if noise_range else ""


def _fields(src: Path, repo_key: str, fmt: str, noise_range: list | None, **training: Any) -> dict[str, Any]:
    repo = REPOS[repo_key]
    return {
        "source": {"file": str(src.resolve()), "sha256": sha256_file(src), "repository": f"https://github.com/{repo}"},
        "format": fmt,
        "training": {"noise_range": noise_range, "noise_units": "8-bit (sigma * 255)", **training},
        "license": _license_note(src, repo),
    }


# --- format 1: bias_free_denoising --------------------------------------------------------------


def _bfd_dncnn(state: dict[str, Tensor], src: Path) -> DnCNN:
    hidden = _indices(state, "hidden_layer_list.{}.weight")
    first = state.get("first_layer.weight")
    if first is None or "last_layer.weight" not in state or hidden != list(range(len(hidden))):
        raise CheckpointError(f"{src}: DnCNN keys first_layer/hidden_layer_list.i/last_layer missing or not contiguous")
    bias = "first_layer.bias" in state
    model = DnCNN(channels=first.shape[1], depth=len(hidden) + 2, width=first.shape[0], bias_free=not bias)
    out: dict[str, Tensor] = {}
    convs = ["first_layer"] + [f"hidden_layer_list.{i}" for i in hidden] + ["last_layer"]
    for j, key in enumerate(convs):
        out[f"convs.{j}.weight"] = state[f"{key}.weight"]
        if bias:
            out[f"convs.{j}.bias"] = state[f"{key}.bias"]
    for i in hidden:
        bn = f"bn_layer_list.{i}"
        try:
            if bias:
                for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    out[f"norms.{i}.{p}"] = state[f"{bn}.{p}"]
            else:  # eval: γ·x/(√var + ε); the stored mean and β are unused by the bias-free layer
                out[f"norms.{i}.weight"] = state[f"{bn}.weight"]
                out[f"norms.{i}.running_sd"] = state[f"{bn}.running_var"].sqrt() + BFD_EPS
        except KeyError as e:
            raise CheckpointError(f"{src}: normalisation key {e.args[0]!r} missing") from None
    return _load_into(model, out, src)


def _bfd_unet(state: dict[str, Tensor], args: argparse.Namespace, src: Path) -> LabUNet:
    if "conv1.weight" not in state:
        raise CheckpointError(f"{src}: UNet key conv1.weight missing")
    model = LabUNet(bias="conv1.bias" in state, residual=bool(getattr(args, "residual", False)), channels=state["conv1.weight"].shape[1])
    return _load_into(model, dict(state), src)


def _from_bias_free_denoising(obj: dict[str, Any], src: Path) -> LegacyModel:
    args = obj["args"]
    if not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{src}: 'args' is a {type(args).__name__}, expected the training Namespace")
    state = obj["model"][0] if isinstance(obj["model"], (list, tuple)) and obj["model"] else obj["model"]
    if not _is_state_dict(state):
        raise CheckpointError(f"{src}: 'model' does not hold a state dict of tensors")
    state = _strip_prefix(state)
    arch = getattr(args, "model", None)
    if arch == "dncnn":
        model: Denoiser = _bfd_dncnn(state, src)
    elif arch == "unet":
        model = _bfd_unet(state, args, src)
    else:
        raise CheckpointError(f"{src}: bias_free_denoising model {arch!r} is not supported (dncnn, unet)")
    try:  # the lab stores [0, N] as (min_noise, max_noise) for the UNets but (N, 0) for DnCNN
        noise_range = sorted(_num(getattr(args, k)) for k in ("min_noise", "max_noise"))
    except (AttributeError, TypeError, ValueError):
        noise_range = _range_from_path(src)
    kind = "bf" if model.bias_free else "bias"
    extra = {"residual_connection": bool(args.residual)} if arch == "unet" and hasattr(args, "residual") else {}
    fields = _fields(src, "bias_free_denoising", f"bias_free_denoising/{arch}", noise_range,
                     dataset=getattr(args, "dataset", None), **extra)
    return LegacyModel(model, fields, f"lab-{arch}-{kind}" + _range_suffix(noise_range))


# --- format 2: universal_inverse_problem BF_CNN --------------------------------------------------


def _from_universal_inverse_problem(state: dict[str, Tensor], src: Path) -> LegacyModel:
    convs = _indices(state, "conv_layers.{}.weight")
    n_norm = len(convs) - 2
    if convs != list(range(len(convs))) or n_norm < 0 or _indices(state, "running_sd.{}") != list(range(n_norm)) \
            or _indices(state, "gammas.{}") != list(range(n_norm)):
        raise CheckpointError(f"{src}: BF_CNN needs conv_layers.0..L-1 and running_sd/gammas.0..L-3")
    first = state["conv_layers.0.weight"]
    if first.shape[-2:] != (3, 3):
        raise CheckpointError(f"{src}: BF_CNN kernels are {tuple(first.shape[-2:])}, only 3×3 is supported")
    model = DnCNN(channels=first.shape[1], depth=len(convs), width=first.shape[0], bias_free=True)
    out = {f"convs.{i}.weight": state[f"conv_layers.{i}.weight"] for i in convs}
    for i in range(n_norm):
        out[f"norms.{i}.weight"] = state[f"gammas.{i}"].reshape(-1)
        out[f"norms.{i}.running_sd"] = state[f"running_sd.{i}"].reshape(-1)
    model = _load_into(model, out, src)
    noise_range = _range_from_path(src)
    fields = _fields(src, "universal_inverse_problem", "universal_inverse_problem/BF_CNN", noise_range)
    return LegacyModel(model, fields, f"uip-bfcnn-{model.channels}ch" + _range_suffix(noise_range))


# --- format 3: memorization_generalization_in_diffusion_models UNet ---------------------------------


def _conv_count(state: dict[str, Tensor], prefix: str) -> int:
    return sum(1 for k, v in state.items() if k.startswith(prefix) and k.endswith(".weight") and v.ndim == 4)


def _from_generalization_unet(state: dict[str, Tensor], src: Path) -> LegacyModel:
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("encoder.")})
    if not blocks or blocks != list(range(len(blocks))) or "encoder.0.0.weight" not in state:
        raise CheckpointError(f"{src}: UNet encoder blocks encoder.0..B-1 (with encoder.0.0.weight) missing")
    first = state["encoder.0.0.weight"]
    config = dict(
        channels=first.shape[1], num_kernels=first.shape[0], kernel_size=first.shape[-1], num_blocks=len(blocks),
        num_enc_conv=_conv_count(state, f"encoder.{blocks[-1]}."), num_mid_conv=_conv_count(state, "mid_block."),
        num_dec_conv=_conv_count(state, "decoder.0."), pool_window=2, bias=any(k.endswith(".bias") for k in state),
    )
    try:
        model = LabUNet2024(**config)
    except ValueError as e:
        raise CheckpointError(f"{src}: UNet layout not understood ({e})") from None
    out = {}
    for k, v in state.items():
        if k.endswith(".gammas"):
            out[k[: -len("gammas")] + "weight"] = v.reshape(-1)
        elif k.endswith(".running_sd"):
            out[k] = v.reshape(-1)
        else:
            out[k] = v
    model = _load_into(model, out, src)
    noise_range = _range_from_path(src)
    fields = _fields(src, "memorization_generalization", "memorization_generalization/UNet", noise_range,
                     assumed={"pool_window": 2})
    return LegacyModel(model, fields, f"mg-unet-{len(blocks)}blocks" + _range_suffix(noise_range))


# --- entry points -------------------------------------------------------------------------------


def import_legacy(src: Path | str) -> LegacyModel:
    """Read ``src`` safely, recognise its layout and rebuild the model (see the module docstring)."""
    src = Path(src)
    obj = read_legacy(src)
    if isinstance(obj, dict) and "model" in obj and "args" in obj:
        return _from_bias_free_denoising(obj, src)
    if _is_state_dict(obj):
        state = _strip_prefix(obj)
        if "conv_layers.0.weight" in state and "gammas.0" in state:
            return _from_universal_inverse_problem(state, src)
        if "encoder.0.0.weight" in state and any(k.startswith("mid_block.") for k in state):
            return _from_generalization_unet(state, src)
        keys = sorted(state)[:6]
    else:
        keys = sorted(map(str, obj))[:6] if isinstance(obj, dict) else [type(obj).__name__]
    raise CheckpointError(f"{src}: not a recognised lab checkpoint layout (starts with {keys})")


def load_legacy(src: Path | str) -> tuple[Denoiser, dict[str, Any]]:
    """The model in memory (eval mode, CPU) and its card fields: source, format, training, license."""
    legacy = import_legacy(src)
    return legacy.model, legacy.fields


def architecture_of(model: Denoiser) -> str:
    """The registry name of ``model``'s class (the card's ``architecture``)."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered architecture")


def convert(src: Path | str, dest_dir: Path | str, name: str | None = None, overwrite: bool = False) -> Path:
    """Convert ``src`` into ``dest_dir/NAME.safetensors`` + ``NAME.json``; return the card path."""
    legacy = import_legacy(src)
    name = name or legacy.name
    if not NAME_PATTERN.match(name):
        raise CheckpointError(f"{name!r}: a model name may hold only letters, digits, '.', '_' and '-'")
    card = Path(dest_dir) / f"{name}.json"
    if card.exists() and not overwrite:
        raise CheckpointError(f"{card}: already exists (pass --force to replace it)")
    return save_model(legacy.model, architecture_of(legacy.model), dest_dir, name, **legacy.fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the lab's .pt file")
    parser.add_argument("dest_dir", type=Path, help="folder for NAME.safetensors and NAME.json")
    parser.add_argument("--name", help="catalog name (default: derived from the file, e.g. lab-dncnn-bf-0-55)")
    parser.add_argument("--force", action="store_true", help="replace an existing model of that name")
    args = parser.parse_args(argv)
    try:
        card = convert(args.src, args.dest_dir, args.name, overwrite=args.force)
    except (CheckpointError, OSError) as e:
        print(f"explorer.convert: error: {e}", file=sys.stderr)
        return 1
    print(card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
