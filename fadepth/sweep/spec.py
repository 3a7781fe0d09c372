"""The sweep spec: one YAML file per paper table, validated completely before anything runs.

A spec names a base config (``base:``, relative to the spec file, with ``base:`` inheritance of its own),
named ``schemes`` (dotted-key overrides of :class:`fadepth.config.ExperimentConfig`), ``seeds``, run
``profiles`` (``smoke``: synthetic scenes in CPU minutes; ``paper``: the paper's settings) and the
``metrics`` to report.  ``load_spec`` checks every override of every scheme and profile against the typed
config and raises :class:`SpecError` (a :class:`ConfigError`) naming the file, the scheme, the key and
what was expected.  It reads files only: it never creates a store or starts a run.

How one run's config is built (:meth:`SweepSpec.resolve`), later layers winning:

1. the full defaults of ``ExperimentConfig``, then the ``base`` file (with its own ``base:`` chain);
2. the profile's ``base`` file, if any (e.g. ``base/smoke.yaml``: synthetic data, small size);
3. the spec's common ``overrides``;
4. the scheme's ``overrides``;
5. the profile's ``overrides`` (a profile fixes the *scale* of a run -- size, iterations, test frames --
   whatever a scheme says, so ``--profile smoke`` stays small for every table);
5b. the profile's ``scheme_overrides`` of this scheme (a profile's own scale for one scheme, e.g. Table II's
   192x640 rows at a larger synthetic size than its 128x416 rows, so that the two stay different runs);
6. ``extra`` overrides given by the caller (``sweeps/run.py --set key=value``);
7. ``train.seed`` = the seed.

Two schemes that resolve to the same config under a profile would run the same experiment twice:
:meth:`SweepSpec.duplicate_schemes` finds them, ``sweeps/run.py --dry-run`` lists them (and a real run warns).
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fadepth import contracts
from fadepth.sweep.claims import Claim, ClaimError, parse_claims, resolve_claims
from fadepth.sweep.names import spec_name_problems
from fadepth.sweep.spec_yaml import SpecError, explain_validation, read_spec_yaml
from fadepth.config import (
    ConfigError,
    ExperimentConfig,
    check_key,
    deep_merge,
    load_tree,
    set_dotted,
)


def default_tree() -> dict[str, Any]:
    """Every default of ``ExperimentConfig`` as plain data (hashed into the spec's identity)."""
    return ExperimentConfig().model_dump(mode="json")


# Shown for every scheme by `--dry-run`: how long, how fast, on what, and the paper's switches (ETM, L_py mode, APX).
RECIPE_KEYS = ("data.dataset", "data.split", "train.iterations", "optim.lr", "train.val_every", "model.name",
               "model.etm.enabled", "loss.pyramid.enabled", "loss.pyramid.mode", "loss.apx.enabled")
METRIC_NAMES = contracts.DEPTH_METRICS
COMPLEXITY_METRICS = contracts.COMPLEXITY_METRICS
VALIDATIONS_PER_RUN = 20  # default for profiles other than smoke (Profile.val_every)


def dry_run_values(cfg: ExperimentConfig) -> dict[str, Any]:
    """A run's flat config for the dry-run table, with the settings of a switched-off part (ETM, L_py, L_apx)
    shown as "-" so that a row reads as the recipe that actually runs."""
    flat = cfg.to_flat_dict()
    for section, on in (("model.etm.", cfg.model.etm.enabled), ("loss.pyramid.", cfg.loss.pyramid.enabled),
                        ("loss.apx.", cfg.loss.apx.enabled)):
        if not on:
            flat.update({k: "-" for k in flat if k.startswith(section) and k != section + "enabled"})
    return flat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Overrides = dict[str, Any]


class Scheme(_Strict):
    """One named row of the table: dotted config overrides plus the paper rows it reproduces."""

    name: str = Field(min_length=1)
    overrides: Overrides = {}
    paper: dict[str, Any] | None = None  # {csv column: value} selecting the paper's row(s)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        if v != v.strip() or any(c in v for c in "\n\t,"):
            raise ValueError("a scheme name must not contain commas, tabs, newlines or surrounding spaces")
        # It names a run folder (runs/train/<study>/<scheme>/seed<k>): '.' and '..' would leave the study's.
        # Slashes stay allowed (the paper's rows say 'w/o ...'): the worker's run_dir_name replaces them.
        if v in (".", "..") or not v.isprintable():
            raise ValueError("a scheme name must be usable as a folder name: not '.' or '..', no control character")
        return v


class Profile(_Strict):
    """How big a run is: ``base`` (a config overlay file, relative to the spec) + dotted overrides."""

    description: str | None = None
    base: str | None = None
    overrides: Overrides = {}
    # {scheme: overrides} applied after `overrides`: this profile's scale for one scheme (layer 5b)
    scheme_overrides: dict[str, Overrides] = {}
    seeds: list[int] | None = None  # replaces the spec's seeds under this profile
    # Iterations between validations (val/* curves) and depth panels in MLflow; sets train.val_every.
    # None: the config's value (smoke: always; others: if 0 < it < iterations, else 20 per run).
    val_every: int | None = Field(None, ge=0)


class Metrics(_Strict):
    primary: str = "abs_rel"
    direction: Literal["minimize", "maximize"] = "minimize"
    columns: list[str] = list(METRIC_NAMES)


class SearchParam(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "SearchParam":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} parameter needs 'low' < 'high'")
        return self


class Search(_Strict):
    """Search mode: Optuna proposes values of ``space`` on top of ``scheme`` (default: the baseline)."""

    space: dict[str, SearchParam] = Field(min_length=1)
    n_trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random", "cmaes", "gp", "qmc"] = "tpe"
    pruner: Literal["none", "median", "percentile", "hyperband", "successive_halving"] = "none"
    scheme: str | None = None


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = ""
    paper_table: str | None = None  # a CSV file name under reports/paper/
    kind: Literal["train", "complexity"] = "train"
    base: str
    baseline: str | None = None
    seeds: list[int] = Field(default=[0], min_length=1)
    overrides: Overrides = {}
    profiles: dict[str, Profile]
    metrics: Metrics = Metrics()
    schemes: list[Scheme] = Field(min_length=1)
    search: Search | None = None
    figures: list[Literal[contracts.FIGURES]] = []  # drawn by reports/build.py (fadepth.report.figures)
    notes: str | None = None
    claims: list[Claim] = []  # the paper's claims this table makes (fadepth.sweep.claims); not hashed
    path: Path = Path("<spec>")  # set by load_spec, not read from the YAML
    spec_hash: str = ""  # set by load_spec

    # ------------------------------------------------------------------------------- accessors
    def scheme(self, name: str) -> Scheme:
        for s in self.schemes:
            if s.name == name:
                return s
        raise SpecError(f"{self.path}: no scheme {name!r}; schemes: {', '.join(self.scheme_names)}")

    @property
    def scheme_names(self) -> list[str]:
        return [s.name for s in self.schemes]

    def seeds_for(self, profile: str) -> list[int]:
        prof = self.profile(profile)
        return list(prof.seeds) if prof.seeds is not None else list(self.seeds)

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise SpecError(f"{self.path}: no profile {name!r}; profiles: {', '.join(self.profiles)}")
        return self.profiles[name]

    @cached_property
    def base_tree(self) -> dict[str, Any]:
        return load_tree(self._relative(self.base))

    def _relative(self, file: str) -> Path:
        p = Path(file)
        return p if p.is_absolute() else self.path.parent / p

    # ------------------------------------------------------------------------------- resolving
    def resolve_tree(
        self, scheme_name: str, seed: int, profile: str, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        prof = self.profile(profile)
        # Start from the full defaults: a partial section in a YAML file or an override such as
        # `loss.pyramid.color.beta` must keep that level's own defaults (color: phi=l1, ...), which
        # pydantic would otherwise replace by the level class's generic defaults.
        tree = deep_merge(ExperimentConfig().model_dump(mode="json"), self.base_tree)
        if prof.base:
            tree = deep_merge(tree, load_tree(self._relative(prof.base)))
        layers = [self.overrides, self.scheme(scheme_name).overrides, prof.overrides,
                  prof.scheme_overrides.get(scheme_name, {}), extra or {}]
        for layer in layers:
            for key, value in layer.items():
                set_dotted(tree, key, value)
        set_dotted(tree, "train.seed", int(seed))
        if not any("train.val_every" in layer for layer in layers[2:]):
            _set_val_every(tree, profile, prof)
        return tree

    def resolve(
        self, scheme_name: str, seed: int, profile: str, extra: Mapping[str, Any] | None = None
    ) -> ExperimentConfig:
        """The complete, validated config of one scheme x seed under one profile."""
        tree = self.resolve_tree(scheme_name, seed, profile, extra)
        try:
            return ExperimentConfig.model_validate(tree)
        except ValidationError as exc:
            raise SpecError(
                explain_validation(exc, f"{self.path}: scheme {scheme_name!r}, profile {profile!r}", self, scheme_name, profile, extra)
            ) from None

    def duplicate_schemes(
        self, profile: str, extra: Mapping[str, Any] | None = None, scheme_names: list[str] | None = None
    ) -> list[tuple[str, str]]:
        """(scheme, earlier scheme) for every scheme whose config under ``profile`` (same seed, same ``extra``)
        equals an earlier scheme's: the two cells would run one experiment twice."""
        seed = self.seeds_for(profile)[0]
        first: dict[str, str] = {}
        pairs = []
        for name in scheme_names if scheme_names is not None else self.scheme_names:
            digest = self.resolve(name, seed, profile, extra).digest()
            if digest in first:
                pairs.append((name, first[digest]))
            else:
                first[digest] = name
        return pairs

    def dry_run_keys(self, scheme_names: list[str], profile: str) -> list[str]:
        """The dry-run table's columns: the recipe every table states (RECIPE_KEYS), then every key a scheme or
        the profile overrides (the profile sets iterations and validation of the paper runs)."""
        keys = list(RECIPE_KEYS)
        for scheme in scheme_names:
            keys += [k for k in self.overridden_keys(scheme) if k not in keys]
        prof = self.profile(profile)
        for layer in [prof.overrides, *(prof.scheme_overrides.get(s, {}) for s in scheme_names)]:
            keys += [k for k in layer if k not in keys]
        return keys

    def overridden_keys(self, scheme_name: str) -> list[str]:
        """Keys a scheme changes (spec-level overrides included), in order: the dry-run table's columns."""
        keys = list(self.overrides) + [k for k in self.scheme(scheme_name).overrides if k not in self.overrides]
        return keys


def _set_val_every(tree: dict[str, Any], name: str, prof: Profile) -> None:
    """Validation (and depth panels) every N iterations: the profile's ``val_every``; else, outside the smoke
    profile (whose runs are too short for curves), the config's value if it gives a curve (0 < N < iterations)
    and 20 validations per run if it does not."""
    if prof.val_every is not None:
        set_dotted(tree, "train.val_every", prof.val_every)
    elif name != "smoke":
        iterations = int(tree.get("train", {}).get("iterations") or 0)
        every = int(tree.get("train", {}).get("val_every") or 0)
        if iterations and not 0 < every < iterations:  # no curve at all otherwise
            set_dotted(tree, "train.val_every", max(1, iterations // VALIDATIONS_PER_RUN))


# ------------------------------------------------------------------------------------ loading
def load_spec(path: str | Path) -> SweepSpec:
    """Read, validate and hash a sweep spec.  Raises :class:`SpecError`; never writes anything."""
    path = Path(path).resolve()
    data = read_spec_yaml(path)
    try:  # claims (issue 22, fadepth.sweep.claims): typed first, so a bad entry is one line naming claims[i]
        claims = parse_claims(data.get("claims"))
    except ClaimError as exc:
        raise SpecError(f"{path}: {exc}") from None
    try:
        spec = SweepSpec.model_validate({**data, "path": path, "claims": []})
    except ValidationError as exc:
        raise SpecError(_format_spec_error(exc, path, data)) from None
    for problem in spec_name_problems(spec.name, spec.profiles)[:1]:  # names that become folders (issue 25)
        raise SpecError(f"{path}: {problem}")
    _check_semantics(spec)
    try:  # each claim checked against the schemes and metrics; the paper's values read from the paper CSV
        claims = resolve_claims(claims, spec.paper_table, {s.name: s for s in spec.schemes}, spec.metrics.columns)
    except ClaimError as exc:
        raise SpecError(f"{path}: {exc}") from None
    spec = spec.model_copy(update={"claims": claims})
    # The code's defaults are part of every run's config: a fadepth upgrade that changes one (e.g. a loss
    # weight) starts a new study instead of mixing old and new results under one name.
    normalised = {"spec": spec.model_dump(mode="json", exclude={"path", "spec_hash", "claims"}),
                  "base": spec.base_tree, "defaults": default_tree()}
    for name, prof in spec.profiles.items():
        if prof.base:
            normalised[f"profile_base:{name}"] = load_tree(spec._relative(prof.base))
    digest = hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return spec.model_copy(update={"spec_hash": digest})


def _format_spec_error(exc: ValidationError, path: Path, data: Mapping[str, Any]) -> str:
    lines = [f"{path}: invalid sweep spec"]
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "<top level>"
        if loc[:1] == ["schemes"] and len(loc) > 1 and isinstance(loc[1], int):
            schemes = data.get("schemes") or []
            item = schemes[loc[1]] if loc[1] < len(schemes) else None
            name = item.get("name") if isinstance(item, dict) else None
            where = f"scheme {name or '#' + str(loc[1])!r}: field {'.'.join(map(str, loc[2:])) or '<scheme>'}"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown field")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _check_semantics(spec: SweepSpec) -> None:
    where = spec.path
    names = spec.scheme_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: duplicate scheme name(s): {', '.join(dupes)}; every scheme needs its own name")
    if spec.baseline is not None and spec.baseline not in names:
        raise SpecError(f"{where}: baseline {spec.baseline!r} is not a scheme; schemes: {', '.join(names)}")
    missing = [p for p in ("smoke", "paper") if p not in spec.profiles]
    if missing:
        raise SpecError(f"{where}: profiles must include 'smoke' and 'paper'; missing: {', '.join(missing)}")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise SpecError(f"{where}: field 'seeds' repeats a seed: {spec.seeds}")
    for name, prof in spec.profiles.items():
        if prof.seeds is not None and (not prof.seeds or len(set(prof.seeds)) != len(prof.seeds)):
            raise SpecError(f"{where}: profile {name!r}: field 'seeds' {prof.seeds}: expected distinct seeds, "
                            "at least one (each seed is one run folder)")
    valid_metrics = METRIC_NAMES + COMPLEXITY_METRICS
    for m in [spec.metrics.primary, *spec.metrics.columns]:
        if m not in valid_metrics:
            raise SpecError(f"{where}: metrics: unknown metric {m!r}; expected one of {', '.join(valid_metrics)}")
    try:
        base_tree = spec.base_tree
    except ConfigError as exc:
        raise SpecError(f"{where}: field 'base': {exc}") from None
    del base_tree
    for name, prof in spec.profiles.items():
        if prof.base and not spec._relative(prof.base).is_file():
            raise SpecError(f"{where}: profile {name!r}: field 'base': file {prof.base!r} not found "
                            f"(looked at {spec._relative(prof.base)})")
    _check_keys(where, "spec-level 'overrides'", spec.overrides)
    for name, prof in spec.profiles.items():
        _check_keys(where, f"profile {name!r}", prof.overrides)
        for scheme, overrides in prof.scheme_overrides.items():
            if scheme not in names:
                raise SpecError(f"{where}: profile {name!r}: scheme_overrides: {scheme!r} is not a scheme; "
                                f"schemes: {', '.join(names)}")
            _check_keys(where, f"profile {name!r} scheme_overrides {scheme!r}", overrides)
    for s in spec.schemes:
        _check_keys(where, f"scheme {s.name!r}", s.overrides)
    if spec.search is not None:
        _check_keys(where, "search space", spec.search.space)
        if spec.search.scheme is not None and spec.search.scheme not in names:
            raise SpecError(f"{where}: search.scheme {spec.search.scheme!r} is not a scheme")
    # Types: build every scheme under every profile (cheap: no I/O beyond the base files).
    for s in spec.schemes:
        for prof in spec.profiles:
            spec.resolve(s.name, spec.seeds_for(prof)[0], prof)


def _check_keys(where: Path, owner: str, overrides: Mapping[str, Any]) -> None:
    for key in overrides:
        try:
            check_key(str(key))
        except ConfigError as exc:
            raise SpecError(f"{where}: {owner}: {exc}") from None
