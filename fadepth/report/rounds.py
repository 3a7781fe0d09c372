"""Seeds until resolved, and the verdict a sweep ends on.

:func:`run_rounds` judges a table's claims, adds seeds -- only to the schemes of the claims still open -- and
judges again, at the seed counts :func:`fadepth.report.stats.planned_looks` fixes before the first run
(``n0``, doubling, capped at ``--max-seeds``).  Stopping rule: Bonferroni over the planned looks -- each look
tests at ``ALPHA / looks`` (Holm over the table's claims within a look), so the chance of any wrong verdict
over all looks, however early the rounds stop, stays under ``ALPHA`` (docs/claims.md).  A claim keeps the
first verdict it reaches; the rest stay *not resolved* at ``--max-seeds``.  One line per round.

:func:`after_sweep` is what ``sweeps/run.py`` runs when its sweep ends: the rounds when ``--until-resolved``
is given, then the best scheme with its interval and ``claims reproduced=… contradicted=… unresolved=…``.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from fadepth.report import claims as cl
from fadepth.report import runs, stats

RESOLVED = (stats.REPRODUCED, stats.CONTRADICTED)


def next_seeds(used: Sequence[int], count: int) -> list[int]:
    """``count`` new seeds after the largest one used (seeds stay 0..n-1 when they started so)."""
    start = max(used) + 1 if used else 0
    return list(range(start, start + count))


def run_rounds(spec, seeds: Sequence[int], max_seeds: int, launch: Callable[[list[int], list[str]], int],
               judge: Callable[[int], pd.DataFrame], first_done: bool = True,
               say: Callable[[str], None] = print) -> pd.DataFrame:
    """Rounds of seeds until every claim of ``spec`` resolves or ``max_seeds`` is reached; the final table.

    ``launch(seeds, schemes)`` runs one round of the sweep (returns its exit status; 130 stops the rounds);
    ``judge(looks)`` reads the store and returns :func:`fadepth.report.claims.claims_frame` at ``looks``.
    ``first_done``: the first round (``seeds`` x every claim scheme) already ran."""
    looks = stats.planned_looks(len(seeds), max_seeds)
    used = list(seeds)
    frozen: dict[str, pd.Series] = {}
    frame = pd.DataFrame(columns=cl.COLUMNS)
    for index, n in enumerate(looks):
        if index == 0:
            added, schemes = list(seeds), [s for s in spec.scheme_names
                                          if any(s in (c.scheme, c.reference) for c in spec.claims)]
            if not first_done and launch(added, schemes) == 130:
                break
        else:
            schemes = cl.unresolved_schemes(spec, frame)
            added = next_seeds(used, n - len(used))
            used += added
            if launch(added, schemes) == 130:
                say(f"round {index + 1}/{len(looks)}: interrupted")
                break
        frame = judge(len(looks))
        for i, row in frame.iterrows():  # the first verdict a claim reaches stands (Bonferroni over the looks)
            if row["claim"] in frozen:
                frame.loc[i] = frozen[row["claim"]]
            elif row["verdict"] in RESOLVED:
                frozen[row["claim"]] = row
        seeds_text = f"seeds {added[0]}..{added[-1]}" if added else "no seeds"
        say(f"round {index + 1}/{len(looks)}: {seeds_text} for {', '.join(schemes) or '-'} (n={n}, "
            f"α per look {stats.ALPHA / len(looks):.3g}); {cl.claims_line(frame)}")
        if cl.counts(frame)["unresolved"] == 0:
            break
    return frame


def after_sweep(args: argparse.Namespace, rc: int) -> int:
    """``sweeps/run.py``'s end: the ``--until-resolved`` rounds, then the best scheme and the claims line."""
    if rc == 130 or args.dry_run or args.worker_only or (args.launcher == "slurm" and not getattr(args, "wait", 0)):
        return rc
    from fadepth.sweep import launcher
    from fadepth.sweep.plan import parse_ints, parse_sets
    from fadepth.sweep.spec import load_spec
    from fadepth.sweep.study import study_name
    from fadepth.sweep.tracking import default_tracking_uri

    spec = load_spec(args.spec)
    if spec.search is not None:
        return rc
    extra = parse_sets(args.sets)
    study = study_name(spec, args.profile, extra)
    tracking_uri = args.tracking_uri or default_tracking_uri(Path(args.runs_dir).resolve())
    seeds = parse_ints(args.seeds, "--seeds") if args.seeds is not None else spec.seeds_for(args.profile)

    def judge(looks: int) -> pd.DataFrame:
        summary = runs.load_summary(spec, tracking_uri, args.profile, cl.metrics_needed(spec), study)
        return cl.claims_frame(spec, summary, args.profile, looks, extra)

    def launch(new_seeds: list[int], schemes: list[str]) -> int:
        round_args = copy.copy(args)
        round_args.seeds, round_args.only = ",".join(map(str, new_seeds)), ",".join(schemes)
        return launcher.run(round_args)

    frame = run_rounds(spec, seeds, args.max_seeds, launch, judge) if args.until_resolved and spec.claims \
        else judge(1)
    if len(frame):
        print(cl.display_frame(frame).drop(columns=["note"]).to_string(index=False))
    summary = runs.load_summary(spec, tracking_uri, args.profile, cl.metrics_needed(spec), study)
    for line in cl.summary_lines(spec, summary, frame):
        print(line)
    return rc

