"""Checkpoints: one file per run holding everything needed to resume exactly or to deploy.

Keys: ``model`` (depth net state), ``pose`` (pose net state), ``objective`` (training-only modules such as
APX adapters), ``optimizer``, ``scheduler``, ``iteration``, ``rng`` (torch / numpy / python states),
``config`` (the resolved ExperimentConfig as a plain dict) and ``fadepth_version``.  Files are written
atomically (temporary file + rename), so a crash never leaves a truncated checkpoint behind.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from fadepth import __version__
from fadepth.config import ExperimentConfig
from fadepth.utils import atomic_torch_save, resolve_device


class CheckpointError(RuntimeError):
    """A checkpoint file is missing or does not hold what fadepth writes."""


REQUIRED_KEYS = ("model", "config")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    state = dict(state, fadepth_version=__version__)
    atomic_torch_save(state, path)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a fadepth checkpoint (missing keys: {', '.join(missing)})")
    return state


def config_of(state: dict[str, Any]) -> ExperimentConfig:
    return ExperimentConfig.model_validate(state["config"])


def load_model(path: str | Path, device: str | torch.device = "cpu", with_pose: bool = False):
    """Rebuild the depth net (and optionally the pose net) of a checkpoint, in eval mode.

    Returns ``(depth_net, cfg)`` or ``(depth_net, pose_net, cfg)`` when ``with_pose``.
    """
    from fadepth.models import build_depth_model, build_pose_model

    device = resolve_device(device)
    state = load_checkpoint(path)
    cfg = config_of(state)
    depth_net = build_depth_model(cfg.model)
    depth_net.load_state_dict(state["model"])
    depth_net.to(device).eval()
    if not with_pose:
        return depth_net, cfg
    pose_net = build_pose_model(cfg.model)
    if "pose" in state:
        pose_net.load_state_dict(state["pose"])
    return depth_net, pose_net.to(device).eval(), cfg


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
