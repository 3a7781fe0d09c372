"""The validated request of a sweep (``sweeps/run.py`` arguments): spec, profile, schemes x seeds, extra
overrides, each run's config and data files checked by the pre-flight.  No side effects: nothing is written.
Used by the launcher (:mod:`fadepth.sweep.launcher`) and, through :class:`fadepth.sweep.session.Sweep`, by the
SLURM launcher (:mod:`fadepth.sweep.slurm`).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from fadepth.config import ConfigError, check_key, parse_override
from fadepth.sweep import checks
from fadepth.sweep.estimate import estimate
from fadepth.sweep.spec import SweepSpec, dry_run_values, load_spec


class Plan:
    """The validated request: spec, profile, cells, extra overrides (no side effects)."""

    def __init__(self, args: argparse.Namespace):
        self.spec: SweepSpec = load_spec(args.spec)
        self.profile = args.profile
        self.spec.profile(self.profile)
        self.extra = parse_sets(args.sets)
        checks.check_owned_keys(self.extra)
        checks.check_gpus(getattr(args, "gpus", None), getattr(args, "launcher", "local"))
        self.seeds = parse_ints(args.seeds, "--seeds") if args.seeds is not None else self.spec.seeds_for(self.profile)
        self.schemes = self.spec.scheme_names
        if args.only is not None:
            wanted = [s.strip() for s in args.only.split(",") if s.strip()]
            if not wanted:
                raise ConfigError(f"--only {args.only!r}: expected comma-separated scheme names; "
                                  f"schemes: {', '.join(self.schemes)}")
            unknown = [s for s in wanted if s not in self.schemes]
            if unknown:
                raise ConfigError(f"{self.spec.path}: --only: unknown scheme(s) {', '.join(unknown)}; "
                                  f"schemes: {', '.join(self.schemes)}")
            self.schemes = [s for s in self.schemes if s in wanted]
        checks.check_size(len(self.schemes), len(self.seeds), getattr(args, "yes", False),
                          lambda: estimate(self, args).text(), dry_run=getattr(args, "dry_run", False))
        self.data_check = getattr(args, "data_check", True)
        # Pairs of schemes whose configs are equal under this profile (and --set): the same run twice.
        self.duplicates = self.spec.duplicate_schemes(self.profile, self.extra, self.schemes)
        self.keep_training_state = bool(getattr(args, "keep_training_state", False))  # finished runs' checkpoint.pt
        checked: set[str] = set()
        for scheme in self.schemes:  # every config and data file must validate before anything is written
            for seed in self.seeds:
                self.preflight(self.spec.resolve(scheme, seed, self.profile, self.extra), scheme, checked)

    def preflight(self, cfg, scheme: str, checked: set[str]) -> None:
        """Models, device and (for training sweeps) every data file, once per distinct data setup."""
        from fadepth.preflight import PreflightError, check_config, check_run

        keys = ("data", "eval", "train.batch_size", "train.val_every", "train.iterations")
        flat = cfg.to_flat_dict()
        key = json.dumps({k: v for k, v in flat.items() if k.split(".")[0] in keys or k in keys}, sort_keys=True,
                         default=str)
        try:
            checks.check_device_settings(cfg)  # what fadepth train refuses up front (fp16 / CUDA graphs on CPU)
            if not self.data_check:
                check_config(cfg, files=False)
            elif self.spec.kind != "train" or key in checked:
                check_config(cfg)
            else:
                check_run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"out_dir": "."})}))
        except (PreflightError, ConfigError) as exc:
            raise ConfigError(f"{self.spec.path}: scheme {scheme!r}, profile {self.profile!r}: {exc}") from None
        checked.add(key)

    @property
    def cells(self):
        from fadepth.sweep.study import cells_of

        return [] if self.spec.search else cells_of(self.spec, self.schemes, self.seeds)


def parse_ints(text: str, flag: str) -> list[int]:
    """Distinct comma-separated integers or inclusive ranges (``0,1,2``, ``0-99``, ``0-9,20``), at least one (each
    seed is one run folder: a repeat would share it)."""
    try:
        values = [v for item in text.split(",") if item.strip() for v in _int_or_range(item)]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers or ranges like 0-9") from None
    if not values:
        raise ConfigError(f"{flag} {text!r}: expected at least one integer, e.g. {flag} 0,1,2")
    repeated = sorted(v for v, n in Counter(values).items() if n > 1)
    if repeated:
        raise ConfigError(f"{flag} {text!r}: repeats {', '.join(map(str, repeated))}; expected distinct integers")
    return values


MAX_RANGE = 100_000  # seeds in one range: more is a typo, not a study


def _int_or_range(item: str) -> range:
    """``7`` -> [7]; ``0-9`` -> 0..9 (inclusive; ValueError when empty or malformed)."""
    low, dash, high = item.strip().partition("-")
    if not dash or not low:  # a plain (possibly negative) integer
        return range(int(item), int(item) + 1)
    if not 0 <= int(high) - int(low) < MAX_RANGE:
        raise ValueError(item)
    return range(int(low), int(high) + 1)


def parse_sets(items: list[str]) -> dict[str, Any]:
    extra = {}
    for item in items:
        key, value = parse_override(item)
        check_key(key)
        extra[key] = value
    return extra


def print_dry_run(plan: Plan) -> None:
    """Scheme x seed table: the recipe columns (iterations, LR, ETM, L_py mode, ...) and every overridden key."""
    spec = plan.spec
    keys = spec.dry_run_keys(plan.schemes, plan.profile)
    keys += [k for k in plan.extra if k not in keys]
    header = ["scheme", "seed", *keys]
    table = []
    for scheme in plan.schemes:
        for seed in plan.seeds:
            flat = dry_run_values(spec.resolve(scheme, seed, plan.profile, plan.extra))
            table.append([scheme, str(seed), *[_fmt(flat.get(k)) for k in keys]])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print(f"{spec.name}: {spec.title}")
    print(f"spec {spec.path} (hash {spec.spec_hash}), profile {plan.profile}, kind {spec.kind}, "
          f"{len(plan.schemes)} schemes x {len(plan.seeds)} seeds = {len(table)} runs"
          + (f", search: {spec.search.n_trials} trials over {', '.join(spec.search.space)}" if spec.search else ""))
    if plan.extra:
        print("--set " + " ".join(f"{k}={v}" for k, v in plan.extra.items()))
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print("\n".join(duplicate_lines(plan)) or "duplicate schemes: none (every scheme resolves to its own config)")


def duplicate_lines(plan: Plan) -> list[str]:
    """One line per scheme whose config equals an earlier scheme's under the plan's profile and --set."""
    return [f"duplicate scheme: {name!r} resolves to the same config as {twin!r} under profile {plan.profile!r} "
            f"(the same run twice)" for name, twin in plan.duplicates]


def _fmt(value: Any) -> str:
    return "null" if value is None else str(value)
