"""Pick the compute device: cuda, then mps, then cpu (``EXPLORER_DEVICE`` overrides)."""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The first available of cuda, mps, cpu; the ``EXPLORER_DEVICE`` variable overrides."""
    forced = os.environ.get("EXPLORER_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
