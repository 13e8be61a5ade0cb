"""Tensor files split into shards no larger than a size limit, so that a run folder can be committed.

A repository that keeps a run between working sessions limits each file's size (here 20 MB); Adam's
state of a 3 M-parameter network (two float32 moments) is 24 MB. :func:`save_sharded` writes
``STEM.safetensors`` when the tensors fit in ``max_bytes``, else ``STEM-00001-of-0000N.safetensors`` …,
each shard holding whole tensors (a tensor larger than the limit gets a shard of its own);
:func:`load_sharded` reads either layout. Saving removes the files of the other layout, so a folder
never holds two versions of the same tensors.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MAX_SHARD_BYTES = 16 * 2**20  # below the repository's 20 MB limit per file, with room for the header


def _shard_paths(directory: Path, stem: str) -> list[Path]:
    pattern = re.compile(rf"{re.escape(stem)}-(\d{{5}})-of-(\d{{5}})\.safetensors")
    return sorted(p for p in directory.glob(f"{stem}-*-of-*.safetensors") if pattern.fullmatch(p.name))


def _groups(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Whole tensors in key order, a new group whenever the next one would pass ``max_bytes``."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        n = tensors[key].numel() * tensors[key].element_size()
        if groups[-1] and size + n > max_bytes:
            groups.append({})
            size = 0
        groups[-1][key] = tensors[key]
        size += n
    return groups


def save_sharded(tensors: dict[str, torch.Tensor], directory: Path | str, stem: str,
                 max_bytes: int | None = None) -> list[Path]:
    """Write ``tensors`` as one file or as shards of at most ``max_bytes`` (default :data:`MAX_SHARD_BYTES`)
    of tensor data; return the paths."""
    max_bytes = MAX_SHARD_BYTES if max_bytes is None else max_bytes
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    groups = _groups({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, max_bytes)
    single = directory / f"{stem}.safetensors"
    if len(groups) == 1:
        paths = [single]
    else:
        paths = [directory / f"{stem}-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    for path, group in zip(paths, groups):
        save_file(group, str(path))
    for stale in ([single] if len(groups) > 1 else []) + _shard_paths(directory, stem):
        if stale not in paths:
            stale.unlink(missing_ok=True)
    return paths


def load_sharded(directory: Path | str, stem: str) -> dict[str, torch.Tensor]:
    """What :func:`save_sharded` wrote: ``STEM.safetensors``, or every ``STEM-i-of-N`` shard (all N present)."""
    directory = Path(directory)
    single = directory / f"{stem}.safetensors"
    if single.is_file():
        return load_file(str(single))
    shards = _shard_paths(directory, stem)
    if not shards:
        raise FileNotFoundError(f"{single}: missing (and no {stem}-*-of-*.safetensors shards)")
    totals = {int(p.stem.rsplit("-of-", 1)[1]) for p in shards}
    if len(totals) != 1 or len(shards) != max(totals):
        raise FileNotFoundError(f"{directory}: {stem} has {len(shards)} shard files, expected {max(totals)}")
    out: dict[str, torch.Tensor] = {}
    for path in shards:
        out.update(load_file(str(path)))
    return out
