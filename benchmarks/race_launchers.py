#!/usr/bin/env python
"""Two sweep launchers started together on one store, N times, on fresh and on existing stores (issue 13).

    python benchmarks/race_launchers.py [--repeats 10]

Each repeat uses a new folder: (1) fresh stores -- both launchers find no MLflow database and no Optuna
journal; (2) existing stores -- the same two launchers again with a new ``--set`` (a new study in stores that
now exist).  The trainer is the stub of tests/test_bad_inputs_race.py (the race is in the stores).  Prints
per repeat and in total: duplicates (a cell with two trials, two COMPLETE trials or two child runs; a study
with two parent runs), missing cells and crashes (a launcher exiting non-zero or printing a traceback).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_bad_inputs_race import race_once  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    totals = {"fresh": [0, 0, 0], "existing": [0, 0, 0]}
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="race-") as tmp:
            for kind, extra in (("fresh", ()), ("existing", ("--set", "train.log_every=7"))):
                t0 = time.perf_counter()
                r = race_once(Path(tmp), extra)
                totals[kind] = [a + b for a, b in zip(totals[kind], (r["duplicates"], r["missing"], r["crashes"]))]
                print(f"repeat {i + 1} {kind:8s}: rcs {r['rcs']}, duplicates {r['duplicates']}, missing "
                      f"{r['missing']}, crashes {r['crashes']} ({time.perf_counter() - t0:.0f} s)", flush=True)
                if r["crashes"] or r["duplicates"] or r["missing"]:
                    print("\n".join(o[-2000:] for o in r["outputs"]), flush=True)
    for kind, (dup, miss, crash) in totals.items():
        print(f"total {kind}: {args.repeats} races, {dup} duplicates, {miss} missing, {crash} crashes")
    return 0 if not any(sum(v) for v in totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
