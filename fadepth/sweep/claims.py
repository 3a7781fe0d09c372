"""A spec's ``claims:``: the paper's statements one table makes, as data (issue 22).

Each entry names a scheme, its reference (another scheme of the same spec), the metric and the kind:

* ``delta``    the paired difference ``scheme - reference`` over the seeds both ran;
* ``collapse`` the rate of runs that end at the constant prediction
  (:func:`fadepth.evaluation.constant_depth_metrics`), scheme against reference: the paper's Δ gives the
  direction (the worse scheme collapses more often).

An entry may carry a ``note`` (why the claim may not transfer to synthetic scenes).  The paper's Δ is never
written by hand: :func:`resolve_claims` reads it from the spec's ``paper_table`` CSV (``reports/paper/``),
through the two schemes' ``paper:`` row mappings, when the spec is loaded.  Any bad entry is one
:class:`ClaimError` line naming ``claims[i]`` and the key; :mod:`fadepth.sweep.spec` prefixes the file.

The verdict (tests, family-wise rule, stopping rule) is :mod:`fadepth.report.stats` and docs/claims.md.
Claims are excluded from the spec hash: they say how results are judged, not how any run is made, so adding
one re-runs nothing.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fadepth import contracts

PAPER_DIR = Path(__file__).resolve().parents[2] / "reports" / "paper"
KINDS = ("delta", "collapse")


class ClaimError(ValueError):
    """A ``claims:`` entry is malformed; the message is one line (the spec loader adds the file)."""


class Claim(BaseModel):
    """One declared claim; ``paper_*`` are filled from the paper CSV by :func:`resolve_claims`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    metric: str = "abs_rel"
    kind: Literal["delta", "collapse"] = "delta"
    note: str | None = None
    paper_scheme: float = math.nan  # read from the paper CSV, never from the YAML
    paper_reference: float = math.nan

    @property
    def paper_delta(self) -> float:
        return self.paper_scheme - self.paper_reference

    @property
    def label(self) -> str:
        what = "collapse rate" if self.kind == "collapse" else self.metric
        return f"{self.scheme} − {self.reference} ({what})"


COMPUTED = ("paper_scheme", "paper_reference", "paper_delta")


def parse_claims(raw: Any) -> list[Claim]:
    """The YAML ``claims:`` value -> typed entries; the first bad one raises a one-line :class:`ClaimError`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ClaimError(f"field 'claims': expected a list of entries, got {type(raw).__name__}")
    out = []
    for i, entry in enumerate(raw):
        where = f"claims[{i}]"
        if not isinstance(entry, Mapping):
            raise ClaimError(f"{where}: expected a mapping with scheme, reference, metric, kind, got {entry!r}")
        typed = [k for k in COMPUTED if k in entry]
        if typed:
            raise ClaimError(f"{where}: key {typed[0]!r} is read from the paper CSV; do not write it")
        try:
            out.append(Claim.model_validate(dict(entry)))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "<entry>"
            what = "unknown key" if err["type"] == "extra_forbidden" else f"{err['msg']} (got {err.get('input')!r})"
            raise ClaimError(f"{where}: key {key!r}: {what}; keys: scheme, reference, metric, kind "
                             f"({' | '.join(KINDS)}), note") from None
    return out


def paper_row(table: list[dict[str, str]], mapping: Mapping[str, Any] | None, file: str) -> dict[str, str]:
    """The one row of the paper CSV a scheme's ``paper:`` mapping selects."""
    if not mapping:
        raise ClaimError("has no 'paper:' mapping, so the paper's value cannot be read")
    unknown = [k for k in mapping if table and k not in table[0]]
    if unknown:
        raise ClaimError(f"'paper:' names column(s) {unknown} absent from {file}")
    rows = [row for row in table if all(same(row.get(k, ""), v) for k, v in mapping.items())]
    if len(rows) != 1:
        raise ClaimError(f"'paper:' {dict(mapping)} selects {len(rows)} rows of {file}; expected exactly one")
    return rows[0]


def same(cell: str, value: Any) -> bool:
    """A CSV cell equals a YAML value: as numbers when both are, else as lower-case text."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell.lower() == str(value).lower()
    try:
        return math.isclose(float(cell), float(value), rel_tol=1e-9)
    except (TypeError, ValueError):
        return cell.strip().lower() == str(value).strip().lower()


def resolve_claims(claims: Sequence[Claim], paper_table: str | None, schemes: Mapping[str, Any],
                   metrics: Sequence[str], paper_dir: Path = PAPER_DIR) -> list[Claim]:
    """Check each claim against the spec (schemes, metric, paper rows) and fill in the paper's values."""
    if not claims:
        return []
    if not paper_table:
        raise ClaimError("claims need the spec's 'paper_table' (the paper's Δ is read from it)")
    path = paper_dir / paper_table
    if not path.is_file():
        raise ClaimError(f"claims: paper table {path} not found")
    with path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    out, seen = [], set()
    for i, claim in enumerate(claims):
        where = f"claims[{i}] ({claim.scheme} vs {claim.reference})"
        for key in ("scheme", "reference"):
            name = getattr(claim, key)
            if name not in schemes:
                raise ClaimError(f"{where}: {key} {name!r} is not a scheme; schemes: {', '.join(schemes)}")
        if claim.scheme == claim.reference:
            raise ClaimError(f"{where}: scheme and reference are the same scheme")
        if claim.metric not in contracts.DEPTH_METRICS or claim.metric not in metrics:
            raise ClaimError(f"{where}: metric {claim.metric!r} is not one of the spec's metrics.columns "
                             f"({', '.join(metrics)})")
        identity = (claim.scheme, claim.reference, claim.metric, claim.kind)
        if identity in seen:
            raise ClaimError(f"{where}: declared twice")
        seen.add(identity)
        values = {}
        for key in ("scheme", "reference"):
            name = getattr(claim, key)
            try:
                row = paper_row(table, getattr(schemes[name], "paper", None), paper_table)
            except ClaimError as exc:
                raise ClaimError(f"{where}: {key} {name!r} {exc}") from None
            try:
                values[key] = float(row.get(claim.metric, ""))
            except ValueError:
                raise ClaimError(f"{where}: {paper_table} has no {claim.metric} for {key} {name!r}") from None
        if values["scheme"] == values["reference"]:
            raise ClaimError(f"{where}: the paper's Δ is 0: there is no direction to reproduce")
        out.append(claim.model_copy(update={"paper_scheme": values["scheme"], "paper_reference": values["reference"]}))
    return out
