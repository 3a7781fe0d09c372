"""Models by name (timm-style): ``create(name, **options)`` and ``available()``.

Register a builder with ``@register("name", kind="depth"|"pose"|"teacher")``.  Builders take keyword
options only (their architecture); unknown options raise a TypeError that names the model and the option.
Cross-cutting options are applied here, once, for every model (as timm's ``build_model_with_cfg`` does):
``start_depth`` starts the disparity heads at an eq. (12) depth (``fadepth.models.disparity``), then ``etm``
converts every odd KxK conv to an ETM (Sec. III-B), keeping those biases.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Mapping

from torch import nn

from fadepth.models.disparity import set_start_depth
from fadepth.models.etm import ETMOptions, convert_to_etm


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


def create(name: str, etm: bool | ETMOptions | Mapping | None = None, start_depth: float | None = None,
           **options) -> nn.Module:
    """Build a registered model with random initialisation (no downloads).

    `etm`: None / False = plain convs; True = ETM with the `ETMOptions` defaults; an `ETMOptions` (or a
    mapping of its fields) = ETM with those settings. `start_depth`: None = PyTorch's initialisation
    (the disparity heads start near eq. 12 depth 0.2); a depth = their biases start there (decisions row 32).
    `options` go to the model's builder."""
    e = entry(name)
    try:
        inspect.signature(e.builder).bind(**options)
    except TypeError as exc:
        raise TypeError(f"model {name!r}: {exc}") from None
    etm_options = resolve_etm(name, etm)
    model = e.builder(**options)
    if start_depth is not None:
        set_start_depth(model, start_depth)
    return model if etm_options is None else convert_to_etm(model, etm_options)


def resolve_etm(name: str, etm: bool | ETMOptions | Mapping | None) -> ETMOptions | None:
    if etm is None or etm is False:
        return None
    if etm is True:
        return ETMOptions()
    if isinstance(etm, ETMOptions):
        return etm
    if isinstance(etm, Mapping):
        try:
            return ETMOptions(**etm)
        except TypeError as exc:
            raise TypeError(f"model {name!r}: etm options: {exc}") from None
    raise TypeError(f"model {name!r}: etm must be a bool, an ETMOptions or a mapping, got {type(etm).__name__}")
