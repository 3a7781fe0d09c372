"""Reading a sweep spec's YAML (duplicate keys refused) and explaining a config that fails validation."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from fadepth.config import ConfigError


class SpecError(ConfigError):
    """A sweep spec is malformed (bad YAML, unknown key, wrong type, duplicate scheme, ...)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_spec_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise SpecError(f"{path}: expected a mapping at the top level (name, base, schemes, ...), got {got}")
    for reserved in ("path", "spec_hash"):
        if reserved in data:
            raise SpecError(f"{path}: field {reserved!r} is computed by load_spec and must not be written")
    return data


def explain_validation(
    exc: ValidationError, prefix: str, spec: Any, scheme: str, profile: str, extra: Mapping[str, Any] | None
) -> str:
    """Name the override that set each bad key of ``spec`` (a ``SweepSpec``) (scheme, profile, spec or base file) and what was expected."""
    owners = [
        ("--set", extra or {}),
        (f"profile {profile!r} scheme_overrides", spec.profile(profile).scheme_overrides.get(scheme, {})),
        (f"profile {profile!r} overrides", spec.profile(profile).overrides),
        (f"scheme {scheme!r} overrides", spec.scheme(scheme).overrides),
        ("spec-level overrides", spec.overrides),
    ]
    lines = [f"{prefix}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        owner = next((o for o, ov in owners if any(key == k or key.startswith(k + ".") for k in ov)), "base file")
        got = err.get("input")
        if isinstance(got, float) and math.isnan(got):
            got = "nan"
        if err["type"] == "extra_forbidden":
            lines.append(f"  key {key!r} (from {owner}): unknown key")
        else:
            lines.append(f"  key {key!r} (from {owner}): expected {err['msg'][0].lower()}{err['msg'][1:]}; got {got!r}")
    return "\n".join(lines)
