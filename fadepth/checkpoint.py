"""Checkpoints: a small weights file to deploy and the full training state to resume.

A run folder holds two files, both written atomically (temporary file + rename, so a crash never leaves a
truncated file; a temporary file left by a SIGKILL is removed by :func:`remove_stale_tmp` on the next start):

* ``weights.pt`` (:data:`WEIGHTS_NAME`): ``model`` (depth net state), ``config`` (the resolved ExperimentConfig as
  a plain dict), ``iteration``, ``kind="weights"`` and ``fadepth_version`` -- what eval / predict / export
  need (SmallDepth: ~10 MB).  This is the file a sweep logs to MLflow.
* ``checkpoint.pt`` (:data:`STATE_NAME`): the resumable training state -- the same keys plus ``pose`` (pose net
  state), ``objective`` (training-only modules such as APX adapters), ``optimizer``, ``scheduler``,
  ``history`` and ``rng`` (torch / numpy / python states).

This module is file I/O only (save, load, :func:`config_of`); rebuilding the networks of a checkpoint is
:func:`fadepth.models.load_model`, the one entry point for eval / predict / export, which accepts either file.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from fadepth import __version__
from fadepth.config import ExperimentConfig, format_validation_error
from fadepth.errors import InputError
from fadepth.utils import atomic_torch_save

log = logging.getLogger(__name__)
WEIGHTS_NAME, STATE_NAME = "weights.pt", "checkpoint.pt"
WEIGHTS_KEYS = ("model", "config", "iteration")


class CheckpointError(InputError, RuntimeError):
    """A checkpoint file is missing or does not hold what fadepth writes."""


REQUIRED_KEYS = ("model", "config")
# what torch.load says of a file cut short (a full disk, a killed copy): the zip's directory is at its end
TRUNCATED = ("central directory", "failed reading zip archive", "Ran out of input", "unexpected EOF")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    state = dict(state, fadepth_version=__version__)
    atomic_torch_save(state, path)
    return Path(path)


def save_weights(path: str | Path, state: dict[str, Any]) -> Path:
    """The deployable part of a training state: depth net weights + config (no optimizer, no pose net)."""
    weights = {k: state[k] for k in WEIGHTS_KEYS if k in state}
    return save_checkpoint(path, dict(weights, kind="weights"))


def remove_stale_tmp(folder: str | Path, names: tuple[str, ...] = (WEIGHTS_NAME, STATE_NAME)) -> list[Path]:
    """Delete the temporaries an interrupted atomic write of `names` left (:mod:`fadepth.outputs`: its process is
    gone), with a warning."""
    from fadepth.outputs import remove_stale_temps

    return [p for name in names for p in remove_stale_temps(folder, name, say=log.warning)]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The state saved at `path`, checked for fadepth's keys. `mmap`: tensors stay memory-mapped (read lazily):
    a cheap look at the config of a large checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected a checkpoint file such as {path / 'weights.pt'}")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as exc:  # torch raises several types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(s in reason for s in TRUNCATED):
            raise CheckpointError(f"{path}: truncated checkpoint ({reason[:160]}); it is left as it is: restore a "
                                  "copy, or move it aside to start that run again") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a fadepth checkpoint (holds a {type(state).__name__}, expected a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a fadepth checkpoint (missing keys: {', '.join(missing)})")
    return state


def config_of(state: dict[str, Any], path: str | Path = "<checkpoint>") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(state["config"])
    except ValidationError as exc:
        raise CheckpointError(format_validation_error(exc, f"{path}: stored config")) from None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
