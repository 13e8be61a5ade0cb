"""The published generalization pairs (issue #16): ``gen-mnist-N{n}-A`` / ``-B``, their verified subsets, summaries.

Each pair's cards record the subset it was trained on (``training.subset``: size, part, seed, sha256
of the indices, written by ``python -m explorer.train --subset N:A|B``); :func:`subset_from_record`
rebuilds it with :func:`~explorer.data.registry.mnist_subsets` and checks it. :func:`load_pair` loads
a pair with an :class:`~explorer.denoisers.exact.EmpiricalDenoiser` of subset A as the perfectly
memorizing reference; :func:`summarize` measures one N (pair similarity, nearest-training similarity,
memorization fraction, denoising gap; :mod:`explorer.generalization`) and :func:`markdown_table`
prints the table of ``scripts/generalization_table.py``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data.registry import indices_digest, mnist_held_out_digits, mnist_subsets, mnist_training_digits
from .denoisers.exact import EmpiricalDenoiser

from .generalization import (MEMORIZED, ArrayLike, Nearest, PsnrGap, as_handle, cosine_similarity, handle_name,
                             memorization_fraction, nearest_training, psnr_gap, same_noise_samples)

PAIR_NAME = "gen-mnist-N{n}-{part}"
_PAIR_RE = re.compile(r"^gen-mnist-N(\d+)-([AB])$")


class SubsetRecordError(ValueError):
    """A card's training-subset record that does not rebuild to the subset it claims."""


# --------------------------------------------------------------------------- subsets from cards
def subset_from_record(record: Mapping[str, Any]) -> np.ndarray:
    """The sorted training-digit indices a card's ``training.subset`` record describes, verified.

    The record (written by ``explorer.train --subset``) holds size, part ("A" | "B") and seed; the
    indices are rebuilt with ``mnist_subsets(size, seed)`` and their :func:`indices_digest` must equal
    the record's sha256 (and the rebuilt indices its ``indices`` list, when it has one). Raises
    :class:`SubsetRecordError` otherwise: the subset rule or the data changed since training, or the
    card was edited.
    """
    if not isinstance(record, Mapping):
        raise SubsetRecordError(f"a subset record must be a mapping, got {type(record).__name__}")
    missing = [k for k in ("size", "part", "seed", "sha256") if k not in record]
    if missing:
        raise SubsetRecordError(f"the subset record lacks {', '.join(missing)}: {dict(record)}")
    if record.get("data", "mnist") != "mnist":
        raise SubsetRecordError(f"subset records describe MNIST training digits, this one says data={record['data']!r}")
    size, part, seed = record["size"], record["part"], record["seed"]
    if part not in ("A", "B"):
        raise SubsetRecordError(f"subset part must be 'A' or 'B', got {part!r}")
    try:
        a, b = mnist_subsets(int(size), int(seed))
    except (TypeError, ValueError) as e:
        raise SubsetRecordError(f"the subset record cannot be rebuilt: {e}") from e
    indices = a if part == "A" else b
    digest = indices_digest(indices)
    if digest != record["sha256"]:
        raise SubsetRecordError(
            f"subset {part} of size {size} (seed {seed}) rebuilds to indices with sha256 {digest[:12]}…, but the "
            f"record says {str(record['sha256'])[:12]}…: the model was not trained on the subset mnist_subsets "
            "gives now (rule or data changed, or the card was edited)")
    if "indices" in record and [int(i) for i in record["indices"]] != [int(i) for i in indices]:
        raise SubsetRecordError(f"subset {part} of size {size}: the record's indices differ from the rebuilt ones")
    return indices


def card_subset(card: Mapping[str, Any]) -> np.ndarray:
    """:func:`subset_from_record` of a model card's ``training.subset``."""
    record = (card.get("training") or {}).get("subset")
    if record is None:
        raise SubsetRecordError(f"the card of {card.get('name', '?')!r} has no training.subset record")
    return subset_from_record(record)


# --------------------------------------------------------------------------- the published pairs
def _run_cards() -> list[dict[str, Any]]:
    """The readable cards ``RUN/NAME.json`` of the pair runs in the run folders (:func:`explorer.checkpoints.runs_dir`)."""
    from .checkpoints import CheckpointError, read_card, runs_dir

    cards = []
    root = runs_dir()
    for folder in sorted(root.glob("gen-mnist-N*-*")) if root.is_dir() else []:
        path = folder / f"{folder.name}.json"
        if _PAIR_RE.match(folder.name) and path.is_file():
            try:
                cards.append(read_card(path))
            except CheckpointError:
                continue
    return cards


def published_sizes(cards: Sequence[Mapping[str, Any]] | None = None, runs: bool = False) -> list[int]:
    """The N for which both ``gen-mnist-N{N}-A`` and ``-B`` exist, sorted: in the catalog (``pretrained/``
    and the user model folder), in ``cards`` when given, or with ``runs`` in the training run folders
    (models not yet published, possibly unfinished checkpoints)."""
    if cards is None:
        from .checkpoints import catalog

        cards = _run_cards() if runs else catalog()
    parts: dict[int, set[str]] = {}
    for card in cards:
        m = _PAIR_RE.match(str(card.get("name", "")))
        if m:
            parts.setdefault(int(m.group(1)), set()).add(m.group(2))
    return sorted(n for n, p in parts.items() if p == {"A", "B"})


@dataclass
class GeneralizationPair:
    """The two models of one N, their verified training subsets, and the memorizing reference.

    ``indices`` {"A", "B"}: sorted training-digit indices; ``training`` {"A", "B"}: (N, 32, 32) digits;
    ``reference``: a handle on the :class:`EmpiricalDenoiser` of subset A (the exact MMSE denoiser of
    those N digits, i.e. perfect memorization).
    """

    n: int
    models: dict[str, Any]
    indices: dict[str, np.ndarray]
    training: dict[str, np.ndarray]
    reference: Any

    def denoisers(self) -> list[Any]:
        """[A, B, reference], the order :func:`summarize` samples them in."""
        return [self.models["A"], self.models["B"], self.reference]


def pair_from_handles(n: int, model_a: Any, model_b: Any, device: torch.device | str | None = "cpu") -> GeneralizationPair:
    """A :class:`GeneralizationPair` from two loaded handles with cards: subsets rebuilt and verified.

    Checks that each card is of size ``n``, that A's card says part A and B's part B, that both used one
    seed, and that the subsets are disjoint.
    """
    indices, training = {}, {}
    digits = mnist_training_digits()
    for part, handle in (("A", model_a), ("B", model_b)):
        card = getattr(handle, "card", None) or {}
        record = (card.get("training") or {}).get("subset") or {}
        if record and (int(record.get("size", -1)) != n or record.get("part") != part):
            raise SubsetRecordError(f"{handle_name(handle, 0)}: its card records subset {record.get('part')!r} of size "
                                    f"{record.get('size')}, expected {part!r} of size {n}")
        indices[part] = card_subset(card)
        training[part] = digits[indices[part]]
    seeds = {((m.card.get("training") or {}).get("subset") or {}).get("seed") for m in (model_a, model_b)}
    if len(seeds) != 1:
        raise SubsetRecordError(f"the two models' subsets were cut with different seeds {sorted(map(str, seeds))}")
    if np.intersect1d(indices["A"], indices["B"]).size:
        raise SubsetRecordError("the subsets A and B share digits")
    reference = as_handle(EmpiricalDenoiser(torch.from_numpy(np.array(training["A"], dtype=np.float32))[:, None]),
                          device, name=f"empirical-N{n}-A")
    return GeneralizationPair(n=n, models={"A": model_a, "B": model_b}, indices=indices, training=training,
                              reference=reference)


def load_pair(n: int, device: torch.device | str | None = "cpu", dtype: torch.dtype = torch.float32,
              runs: bool = False) -> GeneralizationPair:
    """Load ``gen-mnist-N{n}-A`` / ``-B`` (:func:`explorer.checkpoints.load`: the published models, or with
    ``runs`` the cards ``RUN/NAME.json`` of the training run folders), verify their subsets against the
    cards (:func:`subset_from_record`) and build the empirical reference of A."""
    from .checkpoints import load, runs_dir

    def source(part: str) -> Any:
        name = PAIR_NAME.format(n=n, part=part)
        return runs_dir() / name / f"{name}.json" if runs else name

    a = load(source("A"), device=device, dtype=dtype)
    b = load(source("B"), device=device, dtype=dtype)
    return pair_from_handles(n, a, b, device)


# --------------------------------------------------------------------------- one N's summary
@dataclass
class Summary:
    """The statistics of one N over S seeds (one chain per seed; arrays are (S,)).

    ``pair`` cos(x_A, x_B); ``nearest`` {"A", "B", "reference"}: each sample's nearest-training cosine
    against its own model's training set (the reference's is A's); ``memorized`` the fraction of
    those ≥ 0.95; ``psnr`` {"A", "B"}: :class:`PsnrGap`; ``seconds`` {model: median seconds per seed};
    ``steps`` {model: (S,) iterations}; ``converged`` {model: fraction of chains that converged}.
    """

    n: int
    seeds: list[int]
    pair: np.ndarray
    nearest: dict[str, Nearest]
    memorized: dict[str, float]
    psnr: dict[str, PsnrGap]
    seconds: dict[str, float]
    steps: dict[str, np.ndarray]
    converged: dict[str, float]


def summarize(pair: GeneralizationPair, seeds: Sequence[int] = range(16), beta: float = 0.5, h0: float = 0.01,
              sigma_L: float = 0.01, psnr_sigma: float = 0.2, psnr_images: int | None = 200,
              held_out: ArrayLike | None = None, max_steps: int = 5000, threshold: float = MEMORIZED,
              psnr_seed: int = 0) -> Summary:
    """Sample A, B and the empirical reference from the same noise for every seed (one 32×32 chain each),
    and gather the pair and nearest-training cosines, memorization fractions and the PSNR gaps at
    ``psnr_sigma`` on at most ``psnr_images`` training and held-out digits (the first of each)."""
    keys = ("A", "B", "reference")
    seeds = [int(s) for s in seeds]
    images: dict[str, list[Tensor]] = {k: [] for k in keys}
    times: dict[str, list[float]] = {k: [] for k in keys}
    steps: dict[str, list[int]] = {k: [] for k in keys}
    conv: dict[str, list[bool]] = {k: [] for k in keys}
    for s in seeds:
        run = same_noise_samples(pair.denoisers(), (1, 1, 32, 32), seed=s, beta=beta, h0=h0, sigma_L=sigma_L,
                                 max_steps=max_steps)
        for m, k in enumerate(keys):
            images[k].append(run.images[m])
            times[k].append(run.seconds[m])
            steps[k].append(int(run.steps[m, 0]))
            conv[k].append(bool(run.converged[m, 0]))
    final = {k: torch.cat(v) for k, v in images.items()}
    own = {"A": pair.training["A"], "B": pair.training["B"], "reference": pair.training["A"]}
    nearest = {k: nearest_training(final[k], own[k]) for k in keys}
    held = mnist_held_out_digits() if held_out is None else held_out
    cap = slice(None) if psnr_images is None else slice(0, psnr_images)
    psnr = {k: psnr_gap(pair.models[k], pair.training[k][cap], held[cap], psnr_sigma, psnr_seed) for k in ("A", "B")}
    return Summary(
        n=pair.n, seeds=seeds, pair=cosine_similarity(final["A"], final["B"]), nearest=nearest,
        memorized={k: memorization_fraction(nearest[k].cosines, threshold) for k in keys}, psnr=psnr,
        seconds={k: float(np.median(v)) for k, v in times.items()},
        steps={k: np.array(v) for k, v in steps.items()},
        converged={k: float(np.mean(v)) for k, v in conv.items()},
    )


def markdown_table(summaries: Sequence[Summary]) -> str:
    """One Markdown row per N: median cosines, memorized fractions, PSNR gaps (dB), the fraction of chains
    that converged (σ_t ≤ σ_L; the others hit max_steps or diverged) and the median seconds per seed."""
    head = ["N", "seeds", "median cos(A, B)", "median nearest cos A", "median nearest cos B",
            "memorized A / B / emp. (≥ 0.95)", "PSNR A train / held-out / gap (dB)",
            "PSNR B train / held-out / gap (dB)", "converged A / B / emp.", "s per seed A / B / emp."]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        psnr = [f"{g.training:.2f} / {g.held_out:.2f} / {g.gap:+.2f}" for g in (s.psnr["A"], s.psnr["B"])]
        cells = [str(s.n), str(len(s.seeds)), f"{np.median(s.pair):.3f}", f"{np.median(s.nearest['A'].cosines):.3f}",
                 f"{np.median(s.nearest['B'].cosines):.3f}",
                 " / ".join(f"{s.memorized[k]:.2f}" for k in ("A", "B", "reference")), *psnr,
                 " / ".join(f"{s.converged[k]:.2f}" for k in ("A", "B", "reference")),
                 " / ".join(f"{s.seconds[k]:.2f}" for k in ("A", "B", "reference"))]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
