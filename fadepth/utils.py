"""Small shared helpers: device choice, seeding, atomic writes."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fadepth.outputs import write_atomic


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` are taken as given."""
    if isinstance(spec, torch.device):
        return spec
    if spec in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary beside `path`, fsync, then rename over `path` (:func:`fadepth.outputs.write_atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temp: str) -> None:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as fh:
            fh.write(data)

    write_atomic(path, write, overwrite=True, sync=True)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save that never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda temp: torch.save(obj, temp), overwrite=True, sync=True)


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """NHWC layout for every 4-D parameter and buffer (`Module.to(memory_format=...)` rejects 5-D ones)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module
