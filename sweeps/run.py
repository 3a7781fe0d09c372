#!/usr/bin/env python
"""Rerun one table of the FA-Depth paper: ``python sweeps/run.py ablations/table_v.yaml --profile smoke``.

Thin entry point; the logic lives in :mod:`fadepth.sweep.launcher` (see ``--help`` and docs/scale-out.md); when the
sweep ends, :func:`fadepth.report.rounds.after_sweep` prints the best scheme and the claims line (and runs the
``--until-resolved`` rounds, docs/claims.md).
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from fadepth.sweep.launcher import main  # noqa: E402


def after_sweep(args, rc: int) -> int:
    """The verdict and the --until-resolved rounds (the report layer, imported only once the sweep ends)."""
    from fadepth.report.rounds import after_sweep as verdict

    return verdict(args, rc)


if __name__ == "__main__":
    sys.exit(main(after=after_sweep))
