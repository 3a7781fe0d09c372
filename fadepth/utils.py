"""Small shared helpers: device choice, seeding, atomic writes."""
from __future__ import annotations

import errno
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fadepth.errors import DiskFullError


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


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# torch.save's zip writer reports a failed write (a full disk) as RuntimeError: "[enforce fail at
# inline_container.cc:...] unexpected pos ..." or "... file write failed".
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed")


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_WRITE_FAILED)


def _raise_disk_full(path: Path, exc: BaseException) -> None:
    if disk_full(exc):
        kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
        raise DiskFullError(f"disk full while writing {path} ({kept}): free some space or choose another "
                            "folder, then run again") from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _raise_disk_full(path, exc)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save that never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _raise_disk_full(path, exc)
        raise


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """NHWC layout for every 4-D parameter and buffer (`Module.to(memory_format=...)` rejects 5-D ones)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module
