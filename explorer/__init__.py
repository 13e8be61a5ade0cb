"""Denoiser Explorer: look inside image denoisers and the prior they carry implicitly.

Public API: :func:`load`, :func:`catalog`, :class:`ModelHandle`, and the subpackages
``explorer.denoisers``, ``explorer.data``.
"""
from .checkpoints import CheckpointError, catalog, load
from .handle import ModelHandle
from .sampling import Sampler, sample, solve_inverse

DEFAULT_MODEL = "bf-natural-gray"

__all__ = ["DEFAULT_MODEL", "CheckpointError", "ModelHandle", "catalog", "load", "Sampler", "sample", "solve_inverse"]
