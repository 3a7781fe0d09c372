"""Names that cross modules, with one owner: MLflow tags, metric names and their directions, the complexity row.

The sweep (``fadepth.sweep``) writes through these names and the report (``fadepth.report``) reads through
them; a rename here is a rename everywhere.  docs/architecture.md describes the MLflow layout they form.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

# ----------------------------------------------------------------------------------- MLflow tags
ROLE = "fadepth.role"  # "sweep" (the parent run of one Optuna study) | "run" (one scheme x seed) | "train"
ROLE_SWEEP, ROLE_RUN, ROLE_TRAIN = "sweep", "run", "train"
TABLE = "fadepth.table"
SCHEME = "fadepth.scheme"
SEED = "fadepth.seed"
SPEC_HASH = "fadepth.spec_hash"
PROFILE = "fadepth.profile"
STUDY = "fadepth.study"  # the full identity of a sweep: table, spec hash, profile and the --set overrides
EXTRA = "fadepth.extra"  # the --set overrides of a sweep, as text
GIT = "fadepth.git_commit"
DEVICE = "fadepth.device"
VERSIONS = "fadepth.versions"
TRIAL = "fadepth.trial"
WORKER = "fadepth.worker"
ERROR = "fadepth.error"
GPU = "fadepth.gpu"
CELL = "fadepth.cell"
PRUNED = "fadepth.pruned"
RESUMABLE = "fadepth.resumable"  # a pre-empted run that the next worker on its cell reopens
PREEMPTED_AT = "fadepth.preempted_at"
TITLE = "fadepth.title"
BASELINE = "fadepth.baseline"
PAPER_TABLE = "fadepth.paper_table"
KIND = "fadepth.kind"
PRIMARY_METRIC = "fadepth.primary_metric"
DIRECTION = "fadepth.direction"
PARENT = "mlflow.parentRunId"


def run_name(scheme: str, seed: int) -> str:
    """A child run's name in the MLflow UI: ``scheme/seed<seed>`` (e.g. ``sch3/seed0``)."""
    return f"{scheme}/seed{seed}"


# ----------------------------------------------------------------------------------- metrics
DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")  # monodepth2's order
COMPLEXITY_METRICS = ("params_m", "gflops", "fps")
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "rmse_log": True, "a1": False, "a2": False,
                   "a3": False, "params_m": True, "gflops": True, "fps": False}
TRAIN_CURVE = "train/{}"  # training scalars, step = iteration
VAL_CURVE = "val/{}"  # validation metrics, step = iteration
VAL_CONSTANT = "abs_rel_constant"  # in the validation metrics: abs_rel of the best constant depth (collapse level)
FPS_METRIC = "fps/{}"  # on the sweep run: FPS of one architecture, measured once per sweep
PANELS_DIR = "panels"  # depth panels (input | prediction | ground truth | error), one image per step


def lower_is_better(metric: str) -> bool:
    """The direction of a metric (unknown names: lower is better, like an error)."""
    return LOWER_IS_BETTER.get(metric, True)


# ----------------------------------------------------------------------------------- complexity
@dataclass(frozen=True)
class ComplexityRow:
    """One architecture's counts at one resolution, in the units the paper prints and MLflow holds."""

    params_m: float | None = None  # parameters, millions
    gflops: float | None = None
    fps: float | None = None
    params_enc_m: float | None = None
    params_dec_m: float | None = None
    gflops_enc: float | None = None
    gflops_dec: float | None = None
    mac_enc_m: float | None = None
    mac_dec_m: float | None = None

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> "ComplexityRow":
        """From ``fadepth.complexity.count_complexity`` (parameters as counts, ``params`` / ``params_enc``)."""
        def millions(key: str) -> float | None:
            value = counts.get(key)
            return None if value is None else float(value) / 1e6

        def number(key: str) -> float | None:
            value = counts.get(key)
            return None if value is None else float(value)

        return cls(params_m=millions("params"), gflops=number("gflops"), fps=number("fps"),
                   params_enc_m=millions("params_enc"), params_dec_m=millions("params_dec"),
                   gflops_enc=number("gflops_enc"), gflops_dec=number("gflops_dec"),
                   mac_enc_m=number("mac_enc_m"), mac_dec_m=number("mac_dec_m"))

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> "ComplexityRow":
        """From logged MLflow metrics (the names of this class's fields)."""
        return cls(**{f.name: (None if metrics.get(f.name) is None else float(metrics[f.name]))
                      for f in fields(cls)})

    def metrics(self) -> dict[str, float]:
        """The numeric fields, for ``log_batch`` (absent ones left out)."""
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


# Paper CSV column -> ComplexityRow field (the paper spells parameters param_*).
PAPER_COMPLEXITY = {"param_m": "params_m", "gflops": "gflops", "fps": "fps", "param_enc_m": "params_enc_m",
                    "param_dec_m": "params_dec_m", "gflops_enc": "gflops_enc", "gflops_dec": "gflops_dec",
                    "mac_enc_m": "mac_enc_m", "mac_dec_m": "mac_dec_m"}


# ----------------------------------------------------------------------------------- figures
# The figures a spec may ask for (spec field ``figures``); fadepth.report.figures draws them.
FIGURES = ("lr_robustness", "drop_rates", "etm_drop", "pyramid_weights", "speed_accuracy")
