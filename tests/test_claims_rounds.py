"""``sweeps/run.py --until-resolved --max-seeds N`` (issue 22) with the stub trainer (``FADEPTH_SWEEP_TRAIN_FN``)
on known effects: a large effect resolves at the first look and stops; a null effect runs to N and stays
"not resolved".  The stub's AbsRel per seed is fixed below, so each outcome is certain, not likely.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace


REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]
STUB = "tests.test_claims_rounds:stub_train"
SPREAD = [0.004, -0.003, 0.002, -0.005, 0.003, -0.001, 0.002, -0.002]  # scheme b - a per seed, without the effect


def stub_train(cfg, callbacks=(), resume=True):  # noqa: ARG001 - the trainer's contract
    """AbsRel 0.30 (+ a per-seed level) for scheme a; b adds SPREAD[seed] and FADEPTH_TEST_EFFECT."""
    seed = cfg.train.seed
    value = 0.30 + 0.01 * (seed % 3)
    if cfg.model.pb_dsr == 0.5:  # scheme b
        value += SPREAD[seed % len(SPREAD)] + float(os.environ.get("FADEPTH_TEST_EFFECT", "0"))
    for cb in callbacks:
        getattr(cb, "on_step", lambda *a: None)(1, {"loss": 1.0})
    weights = Path(cfg.train.out_dir) / "weights.pt"
    return SimpleNamespace(metrics={"abs_rel": value, "rmse": 1.0, "a1": 0.9}, checkpoint=weights, iterations=1,
                           weights=weights)


def claims_spec(folder: Path) -> Path:
    from spec_fixtures import write_tiny_spec  # here: sweep workers import this module for its stub trainer

    return write_tiny_spec(
        folder / "claims.yaml", "claims_test",
        ["{name: a, overrides: {model.pb_dsr: 0.1}, paper: {scheme: a1}}",
         "{name: b, overrides: {model.pb_dsr: 0.5}, paper: {scheme: a2}}"],
        seeds="[0, 1, 2]", header="paper_table: table08_pyramid_levels.csv\nbaseline: a\n"
                                  "metrics: {primary: abs_rel, columns: [abs_rel, rmse, a1]}",
        footer="claims:\n  - {scheme: b, reference: a, metric: abs_rel, kind: delta}")


def until_resolved(folder: Path, effect: float) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true", FADEPTH_SWEEP_TRAIN_FN=STUB,
               FADEPTH_TEST_EFFECT=str(effect),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([*RUN, str(claims_spec(folder)), "--profile", "smoke", "--no-progress", "--workers", "1",
                           "--until-resolved", "--max-seeds", "6"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def finished_seeds(folder: Path) -> dict[str, list[int]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("claims_test")
    runs = client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run' and attributes.status = 'FINISHED'",
                              max_results=100)
    out: dict[str, list[int]] = {}
    for r in runs:
        out.setdefault(r.data.tags["fadepth.scheme"], []).append(int(r.data.tags["fadepth.seed"]))
    return {k: sorted(v) for k, v in out.items()}


def rounds(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("round ")]


def test_a_large_effect_resolves_at_the_first_look_and_stops(tmp_path):
    out = until_resolved(tmp_path, effect=-0.05)  # the paper's sign (a2 - a1 = -0.009), far above the spread
    assert [line.split(":")[0] for line in rounds(out)] == ["round 1/2"], out  # looks at 3 and 6 seeds
    assert "claims reproduced=1 contradicted=0 unresolved=0" in rounds(out)[0]
    assert finished_seeds(tmp_path) == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert out.rstrip().splitlines()[-1] == "claims reproduced=1 contradicted=0 unresolved=0"
    assert any(line.startswith("best scheme b: abs_rel ") for line in out.splitlines()), out


def test_a_null_effect_runs_to_max_seeds_and_stays_not_resolved(tmp_path):
    out = until_resolved(tmp_path, effect=0.0)
    assert [line.split(":")[0] for line in rounds(out)] == ["round 1/2", "round 2/2"], out
    assert "seeds 3..5 for a, b (n=6" in rounds(out)[1]
    assert finished_seeds(tmp_path) == {"a": list(range(6)), "b": list(range(6))}
    assert out.rstrip().splitlines()[-1] == "claims reproduced=0 contradicted=0 unresolved=1"
