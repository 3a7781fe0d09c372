"""Scale-out storage: a real PostgreSQL server on loopback as the Optuna RDB storage (heartbeat + retry),
a launcher plus a ``--worker-only`` launcher sharing it, no duplicate cell.

The server is started by the test with ``initdb`` + ``pg_ctl`` (as the ``nobody`` user when running as
root) in a temporary directory, on a free port.  Skipped, with the reason, when PostgreSQL binaries are
not installed (``apt-get install -y postgresql``).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").is_file() and Path(candidate, "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install -y postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install psycopg2-binary)")
    root = tmp_path_factory.mktemp("pg")
    data, port = root / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        as_user = ["runuser", "-u", "nobody", "--"]
        os.chmod(root, 0o777)
        for parent in list(root.parents)[:3]:  # the temp dirs must be reachable by nobody
            os.chmod(parent, os.stat(parent).st_mode | 0o755)
    subprocess.run([*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "fadepth", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True)
    log = root / "pg.log"
    subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                    f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "fadepth", "optuna"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg2://fadepth@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)


def test_launcher_and_worker_only_share_a_postgres_storage(postgres_url, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny_pg
        base: {REPO / 'ablations' / 'base' / 'smoke.yaml'}
        seeds: [0, 1]
        profiles:
          smoke:
            overrides: {{data.height: 32, data.width: 96, train.iterations: 2, train.batch_size: 2,
                        eval.max_images: 2}}
          paper: {{}}
        schemes:
          - name: a
            overrides: {{model.pb_dsr: 0.1}}
          - name: b
            overrides: {{model.pb_dsr: 0.5}}
        """))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [str(spec), "--profile", "smoke", "--no-progress", "--storage", postgres_url, "--tracking-uri", tracking,
              "--workers", "1"]  # one worker per "machine", so each launcher has cells of its own to finish
    env = dict(os.environ, OMP_NUM_THREADS="1", FADEPTH_SWEEP_HEARTBEAT_S="5")
    main = subprocess.Popen([*RUN, *common], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    # the second "machine" attaches once the study exists (never creates or enqueues)
    import optuna

    storage = optuna.storages.RDBStorage(postgres_url)
    t0 = time.monotonic()
    while not optuna.get_all_study_summaries(storage) or not _has_sweep_run(tracking):
        assert time.monotonic() - t0 < 120 and main.poll() is None, "the launcher did not create the study"
        time.sleep(0.5)
    other = subprocess.run([*RUN, *common, "--worker-only"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    out, _ = main.communicate(timeout=600)
    assert main.returncode == 0, out
    assert other.returncode in (0, 1), other.stdout + other.stderr  # 1: the main launcher's cells were unfinished
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    complete = [t.user_attrs["cell"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(complete) == ["a|seed=0", "a|seed=1", "b|seed=0", "b|seed=1"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("tiny_pg")
    runs = client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run'")
    assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 4})
    # a second launch finds everything done: nothing is queued or duplicated
    again = subprocess.run([*RUN, *common], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 done, 0 queued now" in again.stdout, again.stdout + again.stderr


def _has_sweep_run(tracking: str) -> bool:
    from mlflow import MlflowClient

    try:
        exp = MlflowClient(tracking).get_experiment_by_name("tiny_pg")
        return exp is not None and bool(MlflowClient(tracking).search_runs(
            [exp.experiment_id], "tags.`fadepth.role` = 'sweep'"))
    except Exception:  # noqa: BLE001 - the database may be mid-creation
        return False
