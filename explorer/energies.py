"""Energies (−log p) of every image of a data set under an energy model, cached on disk.

    python -m explorer.energies MODEL --data DIR|builtin|mnist|mnist:held-out|mnist:training|patches:DIR --out FILE.{npz,json}

Which quantity (:class:`explorer.energy.NLLQuantity`, printed by the CLI and shown by the tool):

- a model trained on dequantized b-bit data (its card says ``energy.dequantize_bits`` = b, e.g.
  ``energy-mnist``, b = 8) gets the **discrete b-bit likelihood** −log P(x), the uniform-dequantization
  bound E_u[−log p(x + u)] + b·d·ln 2 averaged over 8 seeded draws per image
  (:func:`explorer.energy.discrete_nll`; bits/dim of it are the usual "bits/dim" of 8-bit data);
- any other model (or ``--continuous``) gets the **continuous density** −log p(x) on [0,1]^d at the
  image itself, NLL(x) = U(x, t_min) + log Z (the model's :meth:`nll`).

A model not yet normalized gives the relative energy U(x, t_min), flagged ``normalized = False``.
Values are nats per image, also in nats/dim, bits/dim and dB/dim (:func:`explorer.energy.in_unit`).
Around them: summary statistics, a histogram with a maximum-likelihood Gumbel fit, the images at
chosen percentiles and the extremes, and reference energies of constant images at each gray level
and of uniform-noise images.

MNIST (:mod:`explorer.data.registry`): ``mnist:held-out`` are the last 500 digits (never trained on),
``mnist:training`` the first 9500 (which trained ``bf-mnist`` and ``energy-mnist``), ``mnist`` all
10 000 (labelled as one or the other). The digits are zero-padded to 32×32, so d = 1024 per image
(240 values always 0): bits/dim are per padded pixel, not comparable with 28×28 MNIST results.

The work is split by job: :mod:`explorer.energies_sources` (the data sets and their descriptions),
:mod:`explorer.energies_cache` (the cache; :func:`read_cache` lists what it holds),
:mod:`explorer.energies_compute` (:func:`compute_energies`), :mod:`explorer.energies_stats`
(summary, Gumbel fit, percentiles, references); this module re-exports their public names and holds
the CLI.

Cache: ``$EXPLORER_ENERGY_CACHE`` or ``~/.cache/denoiser-explorer/energies/<model sha>-<source hash>.npz``,
the model sha over its weights (log Z included), the source hash over the data description. Each
entry is keyed by its file's path, size and modification time (and index or patch position), so
re-running is instant and only changed or new files are recomputed. Unreadable or unusable files
are reported (message and stderr), never silently dropped.

Scale-out: ``--workers N`` (a local Dask cluster of N processes) or ``--scheduler ADDRESS`` (a running
Dask cluster) splits the uncached images into batches computed by the workers (each loads the model
once; see :mod:`explorer.distributed`, whose :class:`~explorer.distributed.DaskRunner` the CLI passes
as ``runner=``; the library itself takes any :mod:`explorer.runner` runner and never imports Dask); the energies come back to this process, which writes the same
cache as the single-machine path. Workers read the model and the images by path: on a remote
cluster both must be at the same (absolute) path on every worker.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .energies_cache import Energies, Target, _read_cache, _write_cache, cache_dir, cache_path, model_fingerprint, read_cache, write_cache  # noqa: F401
from .energies_compute import (  # noqa: F401
    EnergyReport, Failures, compute_energies, energies_and_spread, energies_of, energies_task, image_energies,
    is_normalized, nll_function,
)
from .energies_sources import (  # noqa: F401
    MNIST_SOURCES, PADDED_MNIST_NOTE, Item, absolute_source, builtin_items, data_note, folder_items, items_for,
    items_for_source, mnist_items, mnist_label, patch_items, quantity_of_source, source_spec,
)
from .energies_stats import (  # noqa: F401
    DEFAULT_PERCENTILES, EULER_GAMMA, analyse, gumbel_fit, gumbel_pdf, histogram, log10_probability_ratio, percentile_indices,
    reference_energies, summary,
)
from .likelihood import CONTINUOUS, DEFAULT_DRAWS, UNITS, NLLQuantity, in_unit, nll_quantity  # noqa: F401


def heldout_metrics(result: dict[str, Any], command: str) -> dict[str, Any]:
    """The card's held-out NLL entry from a CLI result (its mean in nats, bits/dim and dB/dim; for a b-bit
    likelihood also E_u[−log p(x + u)] per dim, the continuous density at the dequantized images: b bits/dim less)."""
    nats = np.asarray(result["nats"], dtype=np.float64)
    dims = np.asarray(result["dims"], dtype=np.int64)
    rep = EnergyReport(result["labels"], nats, dims, result["normalized"], quantity=NLLQuantity(**{
        k: result["quantity"][k] for k in ("bits", "draws", "seed")}), draw_sd=np.asarray(result["draw_sd"], dtype=np.float64))
    d = sorted(set(dims.tolist()))
    entry = {"command": command, "data": result["data"], "images": int(len(nats)), "dims": d[0] if len(d) == 1 else d,
             "quantity": result["quantity"]["description"], "draws": result["quantity"]["draws"],
             "seed": result["quantity"]["seed"], "mean_nats": round(float(nats.mean()), 3)}
    for unit, key in (("bits/dim", "bits_per_dim"), ("dB/dim", "db_per_dim")):
        entry[f"mean_{key}"] = round(float(rep.in_unit(unit).mean()), 5)
        entry[f"stderr_{key}_draws"] = round(rep.mean_stderr(unit), 6)
        entry[f"std_{key}_images"] = round(float(rep.in_unit(unit).std(ddof=1)), 5)
    if bits := int(result["quantity"].get("bits") or 0):  # the continuous density at the dequantized x + u
        entry["mean_bits_per_dim_continuous_dequantized"] = round(entry["mean_bits_per_dim"] - bits, 5)
        entry["mean_db_per_dim_continuous_dequantized"] = round(entry["mean_db_per_dim"] - 10 * bits * math.log10(2), 5)
    if result.get("note"):
        entry["note"] = result["note"]
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.energies", description=__doc__.splitlines()[0])
    p.add_argument("model", help="catalog name or path to a model card / .safetensors")
    p.add_argument("--data", required=True, help="image folder, builtin, mnist, mnist:held-out, mnist:training, or patches:DIR")
    p.add_argument("--out", required=True, help="FILE.json (report with every energy) or FILE.npz (arrays + percentile images + report)")
    p.add_argument("--unit", default="bits/dim", choices=UNITS)
    p.add_argument("--count", type=int, default=None, help="use the first N images of the data set")
    p.add_argument("--continuous", action="store_true",
                   help="the continuous density −log p(x) at the images even for a model trained on dequantized data")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS, help="dequantization draws per image (discrete likelihood)")
    p.add_argument("--size", type=int, default=None, help="builtin: resize to size×size")
    p.add_argument("--patch", type=int, default=32, help="patches: tile size")
    p.add_argument("--per-image", type=int, default=16, help="patches: tiles per image")
    p.add_argument("--percentiles", type=lambda s: [float(v) for v in s.split(",")], default=list(DEFAULT_PERCENTILES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--write-card", action="store_true",
                   help='store the mean in the model card: metrics["heldout_nll"] for --data mnist:held-out '
                        '(and the card\'s headline held-out bits/dim), else metrics["nll " + DATA] (+ " continuous" with --continuous for a dequantized model)')
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="compute on a running Dask cluster (e.g. tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N", help="compute on a local Dask cluster of N worker processes")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be ≥ 1")
    if args.draws < 1 or (args.count is not None and args.count < 1):
        p.error("--draws and --count must be ≥ 1")

    from .checkpoints import load

    handle = load(args.model, device="cpu")
    model = handle.model
    if not callable(getattr(model, "nll", None)):
        print(f"error: {handle.name} is not an energy model (no nll)", file=sys.stderr)
        return 2
    quantity = CONTINUOUS if args.continuous else nll_quantity(handle.card, draws=args.draws)
    gray = model.channels == 1
    items = items_for(args.data, gray=gray, size=args.size, patch=args.patch, per_image=args.per_image)[:args.count]
    if not items:
        print(f"error: no images found in {args.data}", file=sys.stderr)
        return 2
    source = source_spec(args.data, gray, args.size, args.patch, args.per_image, quantity)
    from .distributed import runner_for

    with runner_for(args.scheduler, args.workers) as runner:
        report = compute_energies(handle, items, source, args.batch, use_cache=not args.no_cache, progress=not args.quiet,
                                  runner=runner, model_ref=args.model)
    if len(report.values) == 0:
        print("error: every image failed", file=sys.stderr)
        return 1
    by_label = {it.label: it for it in items}
    first = np.asarray(by_label[report.labels[0]].load())
    result = analyse(report, handle, first.shape[:2], args.unit, args.percentiles)
    note = data_note(args.data)
    result.update(model=handle.name, data=args.data, labels=report.labels, nats=report.values.tolist(), dims=report.dims.tolist(),
                  draw_sd=report.draw_sd.tolist() if report.draw_sd is not None else None, note=note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        picks = result["percentiles"]
        imgs = [np.asarray(by_label[v["label"]].load(), dtype=np.float32) for v in picks.values()]
        same = len({im.shape for im in imgs}) == 1
        np.savez(out, labels=np.array(report.labels, dtype=str), nats=report.values, dims=report.dims,
                 percentile_names=np.array(list(picks), dtype=str),
                 percentile_images=np.stack(imgs) if same else np.zeros(0), report=np.array(json.dumps(result)))
    else:
        out.write_text(json.dumps(result, indent=1) + "\n")
    s, g = result["summary"], result["gumbel"]
    print(f"{handle.name} on {args.data}: {s['count']} images ({report.cached} cached, {len(report.failures)} skipped)"
          f"{'' if report.normalized else ' — model not normalized: relative energies U(x, t_min)'}")
    print(f"  quantity: {quantity.describe()}")
    se = result["mean_stderr_of_draws"]
    se_text = f" ± {se:.4f} (draws)" if math.isfinite(se) else ""
    print(f"  {quantity.short()} in {args.unit}: mean {s['mean']:.4f}{se_text}  std {s['std']:.4f}  min {s['min']:.4f}  "
          f"median {s['median']:.4f}  max {s['max']:.4f}")
    if g:
        print(f"  Gumbel ({g['side']}): loc {g['loc']:.4f}  scale {g['scale']:.4f}")
    if note:
        print(f"  note: {note}")
    if args.write_card:
        from .evaluate import write_card_metrics

        command = "python -m explorer.energies " + " ".join(argv if argv is not None else sys.argv[1:])
        entry = heldout_metrics(result, command)
        key = "heldout_nll" if args.data == "mnist:held-out" else f"nll {args.data}"
        if args.continuous and nll_quantity(handle.card).discrete:
            key += " continuous"  # beside the discrete likelihood, not in its place
        write_card_metrics(handle.card["_card_path"], key, entry)
        if key == "heldout_nll" and quantity.discrete:  # the card's headline figures are this measurement
            card_path = Path(handle.card["_card_path"])
            card = json.loads(card_path.read_text())
            m = card["metrics"]
            d = entry["dims"]
            m["heldout_nll_nats"] = round(entry["mean_nats"] - d * quantity.bits * math.log(2.0), 3)
            m["heldout_bits_per_dim"] = round(entry["mean_bits_per_dim"] - quantity.bits, 4)
            m[f"heldout_bits_per_dim_{quantity.bits}bit"] = round(entry["mean_bits_per_dim"], 4)
            card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"  wrote metrics[{key!r}] of {handle.card['_card_path']}")
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
