"""Models by name (timm-style): ``create(name, **options)`` and ``available()``.

Register a builder with ``@register("name", kind="depth"|"pose"|"teacher")``.  Builders take keyword
options only; unknown options raise a TypeError that names the model and the option.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    builder: Callable[..., nn.Module]
    doc: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, kind: str = "depth") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = ModelEntry(name, kind, fn, doc)
        return fn

    return wrap


def _ensure_loaded() -> None:
    # Importing the model modules registers their builders.
    from fadepth.models import baselines, hqdecv2, posenet, smalldepth  # noqa: F401


def available(kind: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one kind ('depth', 'pose', 'teacher')."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, **options) -> nn.Module:
    """Build a registered model with random initialisation (no downloads)."""
    e = entry(name)
    try:
        inspect.signature(e.builder).bind(**options)
    except TypeError as exc:
        raise TypeError(f"model {name!r}: {exc}") from None
    return e.builder(**options)
