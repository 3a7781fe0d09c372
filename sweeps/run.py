#!/usr/bin/env python
"""Rerun one table of the FA-Depth paper: ``python sweeps/run.py ablations/table_v.yaml --profile smoke``.

Thin entry point; the logic lives in :mod:`fadepth.sweep.launcher` (see ``--help`` and docs/scale-out.md).
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from fadepth.sweep.launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
