"""The MLflow UI shows a sweep's runs: 4 runs of two schemes in a sqlite store, ``mlflow ui`` on a free
loopback port (own process group, job execution off), headless Chromium via Playwright on the runs page and
the compare view.  Screenshots go to tests/artifacts/.  Skipped when Chromium or Playwright is absent.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
# (run name, scheme, seed, abs_rel): run names do not contain the scheme, so the scheme on the compare page
# can only come from the fadepth.scheme tag.
RUNS = [("cell-a", "sch1", 0, 0.1210), ("cell-b", "sch1", 1, 0.1230), ("cell-c", "sch3", 0, 0.1150),
        ("cell-d", "sch3", 1, 0.1170)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fill_store(uri: str, artifacts: Path) -> tuple[str, list[str]]:
    import mlflow

    from fadepth.report.runs import tracking

    with tracking(uri):
        experiment_id = mlflow.create_experiment("table_v", artifact_location=artifacts.as_uri())
        run_ids = []
        for run_name, scheme, seed, abs_rel in RUNS:
            tags = {"fadepth.role": "run", "fadepth.table": "table_v", "fadepth.scheme": scheme,
                    "fadepth.seed": str(seed), "fadepth.spec_hash": "abc123def456", "fadepth.profile": "smoke"}
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
                mlflow.log_params({"model.pb_dsr": 0.9 if scheme == "sch3" else 0.0, "train.seed": seed})
                mlflow.log_metrics({"abs_rel": abs_rel, "a1": 1 - abs_rel})
            run_ids.append(run.info.run_id)
    return experiment_id, run_ids


def _wait_healthy(port: int, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow ui exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow ui not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def mlflow_ui(tmp_path):
    """(base URL, experiment id, run ids) of an ``mlflow ui`` serving a freshly filled store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, run_ids = _fill_store(uri, tmp_path / "artifacts")
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = tmp_path / "mlflow-ui.log"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    with log.open("w") as sink:
        server = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path,
                                  start_new_session=True)  # its own process group: the server forks helpers
    try:
        _wait_healthy(port, server, log)
        yield f"http://127.0.0.1:{port}", experiment_id, run_ids
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def test_runs_page_and_compare_view_show_the_schemes(mlflow_ui, browser):
    base, experiment_id, run_ids = mlflow_ui
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(90_000)

    page.goto(f"{base}/#/experiments/{experiment_id}/runs", wait_until="domcontentloaded")
    for run_name, *_ in RUNS:  # never wait for networkidle: the UI keeps polling
        page.get_by_text(run_name, exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_runs.png"), full_page=True)

    runs = quote(json.dumps(run_ids))
    experiments = quote(json.dumps([experiment_id]))
    page.goto(f"{base}/#/compare-runs?runs={runs}&experiments={experiments}", wait_until="domcontentloaded")
    page.get_by_text("Comparing 4 Runs").first.wait_for()
    page.get_by_text("fadepth.scheme").first.wait_for()
    text = page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_compare.png"), full_page=True)
    scheme_rows = [line for line in text.splitlines() if line.startswith("fadepth.scheme")]
    assert scheme_rows, "no fadepth.scheme row on the compare page"
    assert scheme_rows[0].split()[1:] == [scheme for _, scheme, _, _ in RUNS]  # one column per run, in order
    assert all(run_name in text for run_name, *_ in RUNS)
    assert "abs_rel" in text
