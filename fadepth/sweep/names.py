"""Names that become folder names, file names or MLflow filter values: the spec's ``name`` (MLflow experiment,
study name, ``runs/logs/<study>``), its profile names (part of the study name, so of every run folder) and a
report's ``--study``.  One rule, checked at spec load before anything is written: letters, digits and
``_ . - @ +`` only, and not a name made of dots alone (``.`` / ``..`` would step out of ``--runs-dir``).
Scheme names are freer (the paper's rows say ``w/o ...``): the worker maps them to safe folder names.
"""
from __future__ import annotations

import re
from typing import Iterable

SAFE = re.compile(r"[A-Za-z0-9_.@+-]+")


def name_problem(value: str, what: str) -> str | None:
    """Why `value` cannot name a folder (one line naming it and the offending characters), or None."""
    if not isinstance(value, str) or not value:
        return f"{what} {value!r}: must be a non-empty name"
    if set(value) == {"."}:
        return f"{what} {value!r}: '.' and '..' are not folder names (they would leave --runs-dir)"
    bad = sorted({ch for ch in value if not SAFE.fullmatch(ch)})
    if bad:
        shown = ", ".join("a path separator" if ch in "/\\" else repr(ch) for ch in bad)
        return (f"{what} {value!r}: holds {shown}; a name that becomes a folder may use only letters, digits "
                "and _ . - @ +")
    return None


def spec_name_problems(spec_name: str, profiles: Iterable[str]) -> list[str]:
    """Every unusable name of a spec: its ``name`` and each profile name."""
    found = [name_problem(spec_name, "name")]
    found += [name_problem(p, "profile") for p in profiles]
    return [p for p in found if p]
