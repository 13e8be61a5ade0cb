"""Per-session limits of a shared server, which its operator sets through the environment.

- ``EXPLORER_MAX_RUNS`` (default 4): background runs (sampler, Algorithm 2, sweeps) one page may have
  going at once;
- ``EXPLORER_MAX_CHAIN_PIXELS`` (default 8 · 256² = 524 288, the sampler's largest setting): chains × H × W
  of one sampler or Algorithm 2 run.

A refused request says which limit it met and how to raise it.
"""
from __future__ import annotations

import os


class SessionLimit(RuntimeError):
    """A request over one of this server's per-session limits (the message names the limit)."""


def _limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={value}: a limit must be at least 1")
    return value


def max_runs() -> int:
    """Background runs one session may have going at once."""
    return _limit("EXPLORER_MAX_RUNS", 4)


def max_chain_pixels() -> int:
    """Chains × pixels one run may have."""
    return _limit("EXPLORER_MAX_CHAIN_PIXELS", 8 * 256 * 256)


def check_chain_pixels(chains: int, height: int, width: int) -> None:
    """Raise :class:`SessionLimit` when ``chains`` images of height × width exceed the server's limit."""
    pixels, limit = chains * height * width, max_chain_pixels()
    if pixels > limit:
        raise SessionLimit(f"{chains} chain(s) of {height}×{width} = {pixels:,} pixels exceed this server's limit of "
                           f"{limit:,} pixels per run (EXPLORER_MAX_CHAIN_PIXELS): use fewer chains or a smaller size")


def check_runs(running: int) -> None:
    """Raise :class:`SessionLimit` when a session that has ``running`` background runs may not start another."""
    limit = max_runs()
    if running >= limit:
        raise SessionLimit(f"this page already has {running} background run(s) going, this server's limit per session "
                           f"(EXPLORER_MAX_RUNS={limit}): pause or finish one first")
