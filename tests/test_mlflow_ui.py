"""The MLflow UI shows a sweep's runs: a table_v sweep (parent run + 4 child runs of two schemes, named
``scheme/seed`` as the sweep names them, with final metrics and ``val/`` curves) in a sqlite store,
``mlflow ui`` on a free loopback port (own process group, job execution off), headless Chromium via
Playwright: the first open by the link the main job prints (the runs page in the model-training view, not
MLflow's default GenAI one), the experiment's description (the verdict summary and claims table that
reports/build.py writes there), the runs page with the sweep expanded, the chart view filtered to the primary
metric (as docs/mlflow-ui.md says) and to the sweep run's per-scheme metrics (``abs_rel/<scheme>``), and the
compare view.  Screenshots go to tests/artifacts/.  The browser test is skipped (with the reason) when Chromium
or Playwright is absent; the store it browses is checked without a browser too.
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
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from fadepth import contracts as c
from fadepth.sweep import tracking as tr

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PRIMARY = "abs_rel"  # table_v's primary metric
# (run name, scheme, seed, abs_rel): run names as the sweep worker writes them (fadepth.contracts.run_name).
RUNS = [(c.run_name(scheme, seed), scheme, seed, value)
        for scheme, seed, value in (("sch1", 0, 0.1210), ("sch1", 1, 0.1230), ("sch3", 0, 0.1150), ("sch3", 1, 0.1170))]


SWEEP_RUN = "table_v-smoke-abc123def456"
# The fields of fadepth.sweep.spec.SweepSpec the report reads (as in tests/test_report.py), for the runs above.
REPORT_SPEC = SimpleNamespace(
    name="table_v", title="Table V: drop rates pb_dsr and pb_sd", paper_table="table05_drop.csv", kind="train",
    baseline="sch3", seeds=[0, 1], profiles={"smoke": None}, figures=[], overrides={}, spec_hash="abc123def456",
    metrics=SimpleNamespace(primary=PRIMARY, direction="minimize", columns=[PRIMARY, "a1"]),
    schemes=[SimpleNamespace(name="sch1", overrides={"model.pb_dsr": 0.0}, paper={"scheme": "sch1"}),
             SimpleNamespace(name="sch3", overrides={"model.pb_dsr": 0.9}, paper={"scheme": "sch3"})],
    path=Path("ablations/table_v.yaml"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fill_store(uri: str, artifacts: Path) -> tuple[str, list[str]]:
    import mlflow

    from fadepth.report.runs import tracking

    experiment_id = tr.get_or_create_experiment(mlflow.MlflowClient(uri), "table_v", artifacts)  # as the sweep does
    with tracking(uri):
        identity = {c.TABLE: "table_v", c.SPEC_HASH: "abc123def456", c.PROFILE: "smoke",
                    c.STUDY: "table_v-abc123def456-smoke"}
        with mlflow.start_run(experiment_id=experiment_id, run_name=SWEEP_RUN,
                              tags={c.ROLE: c.ROLE_SWEEP, c.PRIMARY_METRIC: PRIMARY, **identity}) as parent:
            run_ids = []
            for run_name, scheme, seed, abs_rel in RUNS:
                tags = {c.ROLE: c.ROLE_RUN, c.SCHEME: scheme, c.SEED: str(seed), **identity}
                with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, nested=True) as run:
                    mlflow.log_params({"model.pb_dsr": 0.9 if scheme == "sch3" else 0.0, "train.seed": seed})
                    for step in (20, 40, 60):
                        mlflow.log_metric(c.VAL_CURVE.format(PRIMARY), abs_rel + 1.0 / step, step=step)
                        mlflow.log_metric(c.TRAIN_CURVE.format("cr/photometric"), 0.2 - step / 1000, step=step)
                    mlflow.log_metrics({PRIMARY: abs_rel, "a1": 1 - abs_rel}, step=60)
                run_ids.append(run.info.run_id)
    # What the sweep and the report add: <metric>/<scheme> on the sweep run, the verdicts in the description.
    from fadepth import report

    tr.log_scheme_metrics(mlflow.MlflowClient(uri), experiment_id, identity[c.STUDY], parent.info.run_id,
                          [PRIMARY, "a1"])
    report.build_spec(REPORT_SPEC, tracking_uri=uri, out_dir=artifacts.parent / "report", profile="smoke")
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


def test_store_has_the_verdicts_in_the_description_and_per_scheme_metrics(tmp_path, capsys):
    """The store the browser test opens, checked without a browser: what the UI will render, and the link the
    main job's last lines print (the runs page in the model-training view)."""
    import mlflow

    from fadepth.report import print_next_steps
    from fadepth.report.runs import NOTE_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _fill_store(uri, tmp_path / "artifacts")
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("table_v")
    note = experiment.tags[NOTE_TAG]
    assert "| Scheme" in note and "Verdict" in note.split("| Scheme", 1)[1].splitlines()[0]
    assert experiment.tags[tr.EXPERIMENT_KIND] == tr.MODEL_TRAINING
    (sweep,) = client.search_runs([experiment.experiment_id], f"tags.`{c.ROLE}` = '{c.ROLE_SWEEP}'")
    assert sweep.data.metrics[f"{PRIMARY}/sch1"] == pytest.approx(0.1220)
    assert sweep.data.metrics[f"{PRIMARY}/sch3"] == pytest.approx(0.1160)

    print_next_steps(tmp_path / "report", uri, ["table_v"])
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    link = f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert last.split() == ["then", "open", link, "(table_v)"]


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


def test_runs_named_scheme_seed_chart_of_the_primary_metric_and_compare_view(browser, mlflow_ui):
    base, experiment_id, run_ids = mlflow_ui  # (browser first: without Chromium, skip before starting the server)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(90_000)

    # First open, by the link the main job prints: the runs page in the model-training view (MLflow's default
    # is GenAI, whose sidebar has traces, sessions and judges but no model registry), with the experiment's
    # description (its Markdown note) holding the verdict table.
    runs_page = tr.runs_page_url(experiment_id, base)
    page.goto(runs_page, wait_until="domcontentloaded")
    page.get_by_text(SWEEP_RUN, exact=True).first.wait_for()
    sidebar = page.locator("aside").first.inner_text().splitlines()
    assert "Model registry" in sidebar and "Judges" not in sidebar, f"not the model-training view: {sidebar}"
    expand = page.locator("[data-component-id='mlflow.experiment.metadata_editor.expand_button']")
    if expand.count():
        expand.first.click()
    page.locator("th", has_text="Verdict").first.wait_for()  # rendered as a table, not raw Markdown
    page.get_by_text("Verdict on", exact=False).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_description.png"), full_page=True)
    collapse = page.locator("[data-component-id='mlflow.experiment.metadata_editor.collapse_button']")
    if collapse.count():  # fold it again: expanded, it pushes the charts below out of the (virtualised) view
        collapse.first.click()

    # Runs page (docs/mlflow-ui.md, "Compare the schemes of one table"): the sweep run, expanded (+) -> its runs.
    page.goto(runs_page, wait_until="domcontentloaded")
    page.get_by_text(SWEEP_RUN, exact=True).first.wait_for()  # never wait for networkidle: the UI keeps polling
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()  # the + beside the sweep run
    for run_name, *_ in RUNS:
        page.get_by_text(run_name, exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_runs.png"), full_page=True)

    # Chart view, filtered to the primary metric: its final value (bar per run) and its validation curve.
    page.locator("label:has(input[value='CHART'])").first.click()
    page.get_by_placeholder("Search metric charts").fill(PRIMARY)
    page.get_by_text(c.VAL_CURVE.format(PRIMARY), exact=True).first.wait_for()
    page.get_by_text(PRIMARY, exact=True).first.wait_for()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_chart_primary.png"), full_page=True)
    text = page.inner_text("body")
    assert c.TRAIN_CURVE.format("cr/photometric") not in text  # the search keeps only the primary metric's charts
    assert all(f"{run_name} ({c.VAL_CURVE.format(PRIMARY)})" in text for run_name, *_ in RUNS)  # curve legend

    # The sweep run's per-scheme metrics: one chart per scheme side by side, from the sweep run alone.
    page.get_by_placeholder("Search metric charts").fill(f"{PRIMARY}/")
    for scheme in ("sch1", "sch3"):
        page.get_by_text(f"{PRIMARY}/{scheme}", exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "mlflow_ui_chart_schemes.png"), full_page=True)

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
    assert PRIMARY in text
