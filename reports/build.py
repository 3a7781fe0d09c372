"""Build the paper's tables, figures and report.tex from a sweep's MLflow runs.

    python reports/build.py ablations/table_v.yaml [--profile smoke|paper] [--tracking-uri URL] [--out reports/out]
    python reports/build.py --all

The logic lives in :mod:`fadepth.report`; see docs/mlflow-ui.md for browsing the same runs in the MLflow UI.
"""
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from fadepth.errors import guarded, pop_debug  # noqa: E402
from fadepth.report import main  # noqa: E402

if __name__ == "__main__":
    argv, debug = pop_debug(sys.argv[1:])  # --debug: show the traceback of an error
    sys.exit(guarded("reports/build.py", lambda: main(argv), debug=debug))
