"""The baseline anyone trusts: the exact NLL of a stationary Gaussian fitted to training patches.

    python -m explorer.gaussian_baseline --train ../shared/data/bsd/Train400 --heldout ../shared/data/bsd/Set68 --patch 32
    python -m explorer.gaussian_baseline --train mnist:training --heldout mnist:held-out --patch 32 --model energy-mnist

**Model.** A p×q patch x (C channels, modelled independently with one spectrum) is one period of a
stationary Gaussian field on the torus: x ~ N(m𝟙, Σ) with Σ circulant, Σ = Fᴴ diag(S) F, F the unitary
2-D DFT and S(f) > 0 the power spectrum (:class:`explorer.denoisers.StationaryGaussianDenoiser`, whose
:meth:`~explorer.denoisers.StationaryGaussianDenoiser.nll` is the density). In closed form, per image,

    −log p(x) = ½ Σ_f |F(x − m𝟙)(f)|² / S(f) + ½ Σ_f log 2πS(f)          (nats; d = C·p·q terms),
    H = E[−log p(x)] = ½ Σ_f log 2πe S(f)                                 (its entropy, :func:`entropy`).

**Fit** (maximum likelihood on N training patches x_n; exact, since Σ's eigenvectors are fixed by the
circulant assumption, so the likelihood separates over frequencies and the constant mean is the DC
eigenvector): m = the mean of every pixel of every patch, S(f) = (1/N) Σ_n |F(x_n − m𝟙)(f)|², the averaged
periodogram (:func:`fit_stationary_gaussian`). For the b-bit likelihood the Gaussian is fitted to the
dequantized data x + u, u ~ U[0, δ)^d, δ = 2^-b, as the energy models are trained; its fit is known in
closed form, since u is white with mean δ/2 and variance δ²/12 and F keeps white noise white:
m → m + δ/2, S(f) → S(f) + δ²/12 (:func:`dequantized`; no noise is drawn).

**Boundary assumption: periodic.** Opposite edges of a patch are treated as neighbours. That is what makes
Σ circulant, hence diagonal in the DFT, the NLL and log det Σ exact in O(d log d) and the fit a closed
form; the result is a proper Gaussian density on ℝ^d, so its NLL is a valid code length, and the energy
model's −log p on the same patches can be compared with it directly. The price is that the jump across
the wrap (a patch's top row against its bottom row) counts as image structure: the fitted spectrum
carries that extra high-frequency power, so this baseline is somewhat weaker than the full stationary
(Toeplitz) Gaussian it approximates, by less as the patch grows. Any Gaussian is a lower bar than the data:
the energy model must beat it on held-out patches (issue #17 asks for ≥ 0.5 bits/dim).

**Units and quantities** are the energy models' (:mod:`explorer.likelihood`): nats per image, bits/dim,
dB/dim (:func:`explorer.likelihood.in_unit`); the continuous density −log p(x) on [0,1]^d at the image
itself, and, for 8-bit data, the discrete −log P(x) by the uniform-dequantization bound with the same
seeded draws as the energy model (:func:`explorer.likelihood.discrete_nll`, through
:func:`explorer.energies.image_energies`), so that both models see the same x + u.

Data: ``--train`` / ``--heldout`` are folders (size×size patches at ``--stride``, up to ``--per-image``
per image, as ``python -m explorer.energies --data patches:DIR`` lists them) or ``mnist:training`` /
``mnist:held-out`` (the registry's split of the digits padded to 32×32: one patch per digit, ``--patch 32``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .denoisers.exact import StationaryGaussianDenoiser
from .energies_compute import image_energies
from .energies_sources import MNIST_SOURCES, data_note, items_for
from .energies_stats import reference_energies
from .likelihood import CONTINUOUS, DEFAULT_DRAWS, LN2, UNITS, NLLQuantity, in_unit, nll_quantity

FIT_CHUNK = 4096  # patches per FFT batch of the fit
TRAIN_STRIDE_DIVISOR = 2  # training patches overlap by half by default (stride = patch / 2)


# --------------------------------------------------------------------------- the model
def fit_stationary_gaussian(patches: Tensor | np.ndarray, dequantize_bits: int = 0) -> StationaryGaussianDenoiser:
    """The maximum-likelihood stationary (periodic) Gaussian of (N, C, H, W) patches: m = mean pixel,
    S(f) = mean_n |F(x_n − m)(f)|² (unitary DFT, averaged over channels too), then :func:`dequantized`
    with ``dequantize_bits`` = b > 0 (the Gaussian of x + U[0, 2^-b)^d). See the module docstring."""
    x = torch.as_tensor(np.asarray(patches) if not isinstance(patches, Tensor) else patches)
    if x.ndim != 4 or x.shape[0] < 2 or not x.is_floating_point():
        raise ValueError(f"need at least 2 floating (N, C, H, W) patches to fit, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the training patches contain NaN or infinite values")
    m = float(x.to(torch.float64).mean())
    power = torch.zeros(x.shape[-2:], dtype=torch.float64)
    for chunk in x.split(FIT_CHUNK):
        power += (torch.fft.fft2(chunk.to(torch.float64) - m, norm="ortho").abs() ** 2).sum(dim=(0, 1))
    power /= x.shape[0] * x.shape[1]
    power = 0.5 * (power + torch.roll(power.flip(0, 1), shifts=(1, 1), dims=(0, 1)))  # S(f) = S(−f) exactly
    if bool((power <= 0).any()):
        raise ValueError("the training patches have no power at some frequency (constant patches?): no density")
    return dequantized(StationaryGaussianDenoiser(power, mean=m, channels=int(x.shape[1])), dequantize_bits)


def dequantized(model: StationaryGaussianDenoiser, bits: int) -> StationaryGaussianDenoiser:
    """The Gaussian of x + u, u ~ U[0, δ)^d, δ = 2^-b, for x under ``model``: m + δ/2, S + δ²/12 (b = 0: ``model``)."""
    if bits < 0:
        raise ValueError(f"bits must be ≥ 0, got {bits}")
    if bits == 0:
        return model
    delta = 2.0**-bits
    return StationaryGaussianDenoiser(model.spectrum + delta**2 / 12, mean=model.mean + delta / 2, channels=model.channels)


def entropy(model: StationaryGaussianDenoiser) -> float:
    """H = ½ Σ_f log 2πe S(f) per image in nats (times the channels): the model's expected −log p."""
    s = model.spectrum.to(torch.float64)
    return float(0.5 * torch.log(2 * math.pi * math.e * s).sum()) * model.channels


# --------------------------------------------------------------------------- the data
def patches_of(source: str, patch: int, stride: int | None = None, per_image: int | None = None) -> tuple[Tensor, str]:
    """((N, 1, patch, patch) float32 gray patches, a description) of a folder (size×size patches at
    ``stride``, default ``patch``, up to ``per_image`` per image, evenly spread; :func:`explorer.energies.patch_items`)
    or of ``mnist`` / ``mnist:training`` / ``mnist:held-out`` (the 32×32 padded digits, one patch each)."""
    if source in MNIST_SOURCES:
        if patch != 32:
            raise ValueError(f"the MNIST digits are 32×32 (padded): use --patch 32, not {patch}")
        items, what = items_for(source), f"MNIST {MNIST_SOURCES[source]} digits (32×32, zero-padded)"
    else:
        if not Path(source).is_dir():
            raise ValueError(f"{source}: no such folder (or one of {', '.join(MNIST_SOURCES)})")
        items = items_for("patches:" + source, patch=patch, per_image=per_image, stride=stride)
        spread = "all" if per_image is None else f"up to {per_image} per image"
        what = f"{patch}×{patch} patches of {Path(source).name} (stride {stride or patch}, {spread})"
    loaded = [np.asarray(it.load(), dtype=np.float32) for it in items]
    loaded = [a for a in loaded if a.shape == (patch, patch)]
    if not loaded:
        raise ValueError(f"no {patch}×{patch} patches in {source}")
    return torch.from_numpy(np.stack(loaded))[:, None], f"{len(loaded)} {what}"


def is_8bit(x: Tensor, bits: int = 8) -> bool:
    """Whether every value lies on the b-bit grid k/(2^b − 1) (where a b-bit likelihood is defined)."""
    levels = 2**bits - 1
    v = x.to(torch.float64) * levels
    return bool(((v - v.round()).abs() < 1e-3).all())


REPO_ROOT = Path(__file__).resolve().parents[1]


def training_source(card: dict[str, Any] | None) -> str | None:
    """What a model was trained on, as a :func:`patches_of` source: ``mnist:training`` for ``mnist``, the
    folder its card names (as given, else relative to the repository), or None (no card, a synthetic
    set, a folder not found here)."""
    data = ((card or {}).get("training") or {}).get("data")
    if not isinstance(data, str) or not data:
        return None
    if data == "mnist":
        return "mnist:training"
    for folder in (Path(data).expanduser(), REPO_ROOT / data):
        if folder.is_dir():
            return str(folder.resolve())
    return None


@lru_cache(maxsize=8)
def baseline_for(source: str, patch: int, bits: int = 0) -> tuple[StationaryGaussianDenoiser, str]:
    """(the stationary Gaussian fitted to ``patch``×``patch`` patches of ``source`` at stride patch/2, for the
    b-bit likelihood when ``bits`` > 0; a description of what it was fitted on), kept for the process."""
    train, what = patches_of(source, patch, max(1, patch // TRAIN_STRIDE_DIVISOR))
    return fit_stationary_gaussian(train, bits), what


# --------------------------------------------------------------------------- the comparison
@dataclass
class NLLColumn:
    """−log p of every held-out patch under one model, in one quantity (nats per image)."""

    model: str
    quantity: NLLQuantity
    nats: np.ndarray
    d: int

    def mean(self, unit: str) -> float:
        return float(in_unit(float(self.nats.mean()), self.d, unit))

    def stderr(self, unit: str) -> float:
        """Standard error of the mean over the patches, std/√N (ddof 1)."""
        n = len(self.nats)
        return float(in_unit(float(self.nats.std(ddof=1)) / math.sqrt(n), self.d, unit)) if n > 1 else float("nan")


def margin(baseline: NLLColumn, model: NLLColumn, unit: str) -> tuple[float, float]:
    """(mean of baseline − model over the same patches, its paired standard error) in ``unit``: how much
    more probable the model makes the held-out patches than the Gaussian does (> 0: the model is better)."""
    diff = baseline.nats - model.nats
    se = float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return float(in_unit(float(diff.mean()), baseline.d, unit)), float(in_unit(se, baseline.d, unit))


def quantities(x: Tensor, bits: int, draws: int) -> list[NLLQuantity]:
    """The continuous density, and the b-bit likelihood when b > 0 and the data are b-bit."""
    return [CONTINUOUS] + ([NLLQuantity(bits, draws)] if bits > 0 and is_8bit(x, bits) else [])


def compare(train: Tensor, heldout: Tensor, bits: int = 8, draws: int = DEFAULT_DRAWS, model: Any = None,
            model_name: str = "model", model_bits: int = 0) -> dict[str, Any]:
    """The baseline's (and ``model``'s, an energy model or its handle) −log p of the held-out patches in
    each quantity (:func:`quantities`), the Gaussians' entropies and the references (constant and
    uniform-noise images) under the Gaussian. Values in nats per image and in every unit.

    A model trained on dequantized data (``model_bits`` = b > 0, its card's ``dequantize_bits``) gets no
    continuous column: its density at the grid points themselves is not its likelihood of the data."""
    d = int(np.prod(heldout.shape[1:]))
    out: dict[str, Any] = {"d": d, "train_patches": int(train.shape[0]), "heldout_patches": int(heldout.shape[0]),
                           "boundary": "periodic", "quantities": []}
    for q in quantities(heldout, bits, draws):
        gauss = fit_stationary_gaussian(train, q.bits)
        base = NLLColumn("stationary Gaussian", q, image_energies(gauss, heldout, batch=1024, quantity=q), d)
        entry: dict[str, Any] = {"quantity": q.short(), "description": q.describe(), **q.spec(),
                                 "gaussian_mean": gauss.mean, "gaussian": _column(base),
                                 "gaussian_entropy": {u: float(in_unit(entropy(gauss) + d * q.bits * LN2, d, u)) for u in UNITS}}
        refs = reference_energies(gauss, tuple(heldout.shape[-2:]), levels=3, quantity=q)
        entry["references"] = {name: {u: float(in_unit(v, d, u)) for u in UNITS} for name, v in (
            ("constant black", refs["constant"][0]), ("constant gray 0.5", refs["constant"][1]),
            ("constant white", refs["constant"][2]), ("uniform noise (mean)", refs["uniform_noise_mean"]))}
        if model is not None and model_bits and not q.discrete:
            entry["model_skipped"] = (f"{model_name}: trained on dequantized {model_bits}-bit data, so its density at "
                                      "the grid points is not its likelihood: see the discrete block")
        elif model is not None:
            col = NLLColumn(model_name, q, image_energies(model, heldout, quantity=q), d)
            entry["model"] = {"name": model_name, **_column(col)}
            entry["margin"] = {u: dict(zip(("mean", "stderr"), margin(base, col, u))) for u in UNITS}
        out["quantities"].append(entry)
    return out


def _column(col: NLLColumn) -> dict[str, Any]:
    return {u: {"mean": col.mean(u), "stderr": col.stderr(u)} for u in UNITS} | {"nats_per_patch": col.nats.tolist()}


def format_table(result: dict[str, Any], units: tuple[str, ...] = ("nats", "bits/dim", "dB/dim")) -> str:
    """The comparison as a text table: one block per quantity, rows = what is measured, columns = units."""
    lines = []
    for q in result["quantities"]:
        lines.append(f"\n{q['description']}:")
        head = "".join(f"{('nats/image' if u == 'nats' else u):>22}" for u in units)
        lines.append(f"{'':46}{head}")

        def row(label: str, vals: dict[str, Any], se: bool = True) -> None:
            cells = "".join(f"{v['mean']:>13.4f} ± {v['stderr']:<6.4f}" if se else f"{v:>22.4f}"
                            for v in (vals[u] for u in units))
            lines.append(f"{label:46}{cells}")

        row("held-out, stationary Gaussian (mean ± s.e.)", q["gaussian"])
        if "model" in q:
            row(f"held-out, {q['model']['name']} (mean ± s.e.)", q["model"])
            row(f"margin: Gaussian − {q['model']['name']} (paired)", q["margin"])
        if "model_skipped" in q:
            lines.append(f"({q['model_skipped']})")
        row("Gaussian entropy" + (f" + {q['bits']}·d·ln 2 (expected bound)" if q["bits"] else " (expected −log p)"),
            q["gaussian_entropy"], se=False)
        for name, vals in q["references"].items():
            row(f"{name} under the Gaussian", vals, se=False)
    return "\n".join(lines)


# --------------------------------------------------------------------------- the CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.gaussian_baseline", description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="folder of training images, or mnist:training")
    p.add_argument("--heldout", required=True, help="folder of held-out images, or mnist:held-out")
    p.add_argument("--patch", type=int, default=32, help="patch side (pixels)")
    p.add_argument("--stride", type=int, default=None, help="held-out patch stride (default: --patch, non-overlapping)")
    p.add_argument("--per-image", type=int, default=16,
                   help="held-out patches per image, evenly spread (0: all); 16 = python -m explorer.energies' default")
    p.add_argument("--train-stride", type=int, default=None, help="training patch stride (default: --patch / 2)")
    p.add_argument("--bits", type=int, default=8, help="the b-bit likelihood too (0: the continuous density only)")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS, help="dequantization draws per patch (b-bit likelihood)")
    p.add_argument("--model", default="", help="an energy model (catalog name or card) evaluated on the same patches")
    p.add_argument("--out", default="", help="write the result (every patch's NLL) to FILE.json")
    p.add_argument("--write-card", action="store_true",
                   help='store the means, the margin and the references in the --model\'s card as metrics["gaussian_baseline " + HELDOUT]')
    args = p.parse_args(argv)
    if args.write_card and not args.model:
        p.error("--write-card writes into the card of --model: give one")
    if args.patch < 2 or args.draws < 1 or args.bits < 0 or args.per_image < 0:
        p.error("need --patch ≥ 2, --draws ≥ 1, --bits ≥ 0 and --per-image ≥ 0")
    try:
        train, train_what = patches_of(args.train, args.patch, args.train_stride or max(1, args.patch // TRAIN_STRIDE_DIVISOR))
        held, held_what = patches_of(args.heldout, args.patch, args.stride, args.per_image or None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    handle = None
    if args.model:
        from .checkpoints import load

        handle = load(args.model, device="cpu")
        if not callable(getattr(handle.model, "nll", None)):
            print(f"error: {handle.name} is not an energy model (no nll)", file=sys.stderr)
            return 2
    model_bits = nll_quantity(handle.card).bits if handle else 0
    result = compare(train, held, args.bits, args.draws, handle, handle.name if handle else "model", model_bits)
    result.update(train=train_what, heldout=held_what, command="python -m explorer.gaussian_baseline " + " ".join(
        argv if argv is not None else sys.argv[1:]))
    print(f"Stationary Gaussian (periodic boundary), fitted on {train_what}")
    print(f"Held out: {held_what}; d = {result['d']} values per patch")
    if note := data_note(args.heldout):
        print(f"note: {note}")
    print(format_table(result))
    if args.bits and len(result["quantities"]) == 1:
        print(f"\nno {args.bits}-bit likelihood: the held-out values are not on the {args.bits}-bit grid")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    if args.write_card:
        from .evaluate import write_card_metrics

        key = f"gaussian_baseline {args.heldout}"
        write_card_metrics(handle.card["_card_path"], key, card_entry(result))
        print(f"wrote metrics[{key!r}] of {handle.card['_card_path']}")
    return 0


def card_entry(result: dict[str, Any]) -> dict[str, Any]:
    """The comparison as a model card stores it: every mean ± s.e., the margin and the references, without the
    per-patch values (:func:`compare`'s ``nats_per_patch``)."""
    def means(column: dict[str, Any]) -> dict[str, Any]:
        return {u: {k: round(v, 5) for k, v in column[u].items()} for u in UNITS}

    blocks = []
    for q in result["quantities"]:
        block = {"quantity": q["description"], "bits": q["bits"], "gaussian": means(q["gaussian"]),
                 "gaussian_entropy": {u: round(v, 5) for u, v in q["gaussian_entropy"].items()},
                 "references": {name: {u: round(v, 5) for u, v in vals.items()} for name, vals in q["references"].items()}}
        if "model" in q:
            block["model"] = means(q["model"])
            block["margin"] = {u: {k: round(v, 5) for k, v in m.items()} for u, m in q["margin"].items()}
        if "model_skipped" in q:
            block["model_skipped"] = q["model_skipped"]
        blocks.append(block)
    return {"command": result["command"], "train": result["train"], "heldout": result["heldout"], "d": result["d"],
            "train_patches": result["train_patches"], "heldout_patches": result["heldout_patches"],
            "boundary": result["boundary"], "quantities": blocks}


if __name__ == "__main__":
    sys.exit(main())
