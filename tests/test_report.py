"""reports/build.py end to end: an MLflow store filled with known metrics -> table_x.tex/.md/.csv, figures,
report.tex, artifacts on the sweep run; and a clear failure when a spec has no finished runs.

The spec is a small stand-in with the fields of ``fadepth.sweep.spec.SweepSpec`` that the report reads, so
these tests do not depend on the YAMLs in ablations/.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import fadepth.report as report  # noqa: E402
from fadepth.report import runs, tables  # noqa: E402

METRICS = ["abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"]
HASH = "abc123def456"


def make_spec(**changes) -> SimpleNamespace:
    schemes = [
        SimpleNamespace(name="sch1", overrides={"model.pb_dsr": 0.0, "model.pb_sd": 0.0}, paper={"scheme": "sch1"}),
        SimpleNamespace(name="sch2a", overrides={"model.pb_dsr": 0.1, "model.pb_sd": 0.0},
                        paper={"scheme": "sch2", "pb_dsr": 0.1}),
        SimpleNamespace(name="sch3", overrides={"model.pb_dsr": 0.9, "model.pb_sd": 0.0}, paper={"scheme": "sch3"}),
        SimpleNamespace(name="no_auto_mask", overrides={"model.pb_dsr": 0.5, "model.pb_sd": 0.0}, paper=None),
    ]
    fields = dict(
        name="table_v", title="Table V: drop rates pb_dsr and pb_sd", paper_table="table05_drop.csv",
        kind="train", baseline="sch3", seeds=[0, 1], profiles={"smoke": None, "paper": None}, figures=["drop_rates"],
        metrics=SimpleNamespace(primary="abs_rel", direction="minimize", columns=METRICS),
        schemes=schemes, overrides={"optim.lr": 1e-4}, path=Path("ablations/table_v.yaml"), spec_hash=HASH,
    )
    fields.update(changes)
    return SimpleNamespace(**fields)


# (scheme, seed) -> abs_rel; the other metrics are derived from it so every column has known values.
ABS_REL = {("sch1", 0): 0.120, ("sch1", 1): 0.122, ("sch2a", 0): 0.115, ("sch2a", 1): 0.115,
           ("sch3", 0): 0.115, ("sch3", 1): 0.115, ("no_auto_mask", 0): 0.130}


def metrics_for(abs_rel: float) -> dict[str, float]:
    return {"abs_rel": abs_rel, "sq_rel": 8 * abs_rel, "rmse": 40 * abs_rel, "rmse_log": 1.6 * abs_rel,
            "a1": 1 - abs_rel, "a2": 0.95, "a3": 0.98}


def child(parent_id: str, scheme: str, seed: int, profile: str, values: dict, status: str = "FINISHED",
          spec_hash: str = HASH) -> None:
    tags = {"fadepth.role": "run", "fadepth.table": "table_v", "fadepth.scheme": scheme,
            "fadepth.seed": str(seed), "fadepth.spec_hash": spec_hash, "fadepth.profile": profile}
    with mlflow.start_run(run_name=f"{scheme}-s{seed}", parent_run_id=parent_id, tags=tags):
        mlflow.log_params({"model.name": "smalldepth", "train.seed": seed})
        mlflow.log_metrics(values)
    if status != "FINISHED":
        mlflow.MlflowClient().set_terminated(mlflow.last_active_run().info.run_id, status=status)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with runs.tracking(uri):
        experiment_id = mlflow.create_experiment("table_v", artifact_location=(root / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=experiment_id)
        sweep_tags = {"fadepth.role": "sweep", "fadepth.spec_hash": HASH, "fadepth.profile": "paper"}
        with mlflow.start_run(run_name="sweep", tags=sweep_tags) as parent:
            pass
        for (scheme, seed), abs_rel in ABS_REL.items():
            child(parent.info.run_id, scheme, seed, "paper", metrics_for(abs_rel))
        # None of these may reach the table: a failed run, another profile, another spec version.
        child(parent.info.run_id, "sch1", 2, "paper", metrics_for(0.001), status="FAILED")
        child(parent.info.run_id, "sch1", 0, "smoke", metrics_for(0.002))
        child(parent.info.run_id, "sch1", 0, "paper", metrics_for(0.003), spec_hash="000000000000")
    return uri


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = report.build_spec(make_spec(), tracking_uri=store, out_dir=out, profile="paper")
    return result, out


def test_summary_uses_finished_runs_of_one_profile_and_hash(store):
    summary = runs.load_summary(make_spec(), store, "paper", METRICS)
    assert summary.counts.to_dict() == {"sch1": 2, "sch2a": 2, "sch3": 2, "no_auto_mask": 1}
    assert summary.seeds_of("sch1", "abs_rel") == pytest.approx({0: 0.120, 1: 0.122})
    assert summary.seeds == [0, 1]


def test_latex_table_bold_only_ours_escaping_minus(built):
    result, out = built
    tex = (out / "table_v.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{" in tex and "\\label{tab:table_v}" in tex
    assert "0.1210 $\\pm$ 0.0127" in tex  # two seeds: mean ± half-width of the 95 % t-interval (12.706 · 0.001)
    assert "\\textbf" not in tex  # sch2a and sch3 tie, sch1's paired Δ includes 0: nothing resolved, nothing bold
    assert "\\textbf{0.1216}" not in tex  # the paper's rows are never bold
    assert "no\\_auto\\_mask" in tex and "no_auto_mask" not in tex.replace("no\\_auto\\_mask", "")
    assert "0.1300 (1 seed: no interval)" in tex and "0.1300 $\\pm$" not in tex
    assert "AbsRel $\\downarrow$" in tex and "$\\delta<1.25$ $\\uparrow$" in tex
    assert "$\\Delta$ AbsRel ours" in tex and "+0.0060 [" in tex


def test_paper_rows_beside_ours(built):
    _, out = built
    claims = pd.read_csv(out / "table_v.csv").set_index("scheme")
    assert claims["paper"].dropna().to_dict() == pytest.approx({"sch1": 0.1241, "sch2a": 0.1231, "sch3": 0.1216})
    assert claims.at["sch1", "delta_paper"] == pytest.approx(0.0025)
    assert claims.at["sch1", "n"] == 2 and claims.at["no_auto_mask", "pb_dsr"] == pytest.approx(0.5)
    frame = pd.read_csv(out / "table_v_all.csv")
    paper = frame[frame["source"] == "paper"].set_index("scheme")
    assert paper["abs_rel"].to_dict() == pytest.approx({"sch1": 0.1241, "sch2a": 0.1231, "sch3": 0.1216})


def test_markdown_table(built):
    _, out = built
    md = (out / "table_v.md").read_text()
    assert md.startswith("Verdict on 2 paper claim(s)")
    assert "Ours AbsRel ↓" in md and "Δ AbsRel ours" in md
    assert "**" not in md  # nothing resolved: nothing bold
    assert "pb_dsr 0.0 trails 0.9 · not resolved" in md  # the verdict states the paper's claim it judges
    assert "no\\_auto\\_mask" in md


def test_figures_document_and_artifacts(built, store):
    result, out = built
    assert [f.name for f in result.figures] == ["table_v_drop_rates"]
    assert (out / "figures" / "table_v_drop_rates.png").stat().st_size > 1000
    assert (out / "figures" / "table_v_drop_rates.pdf").is_file()
    doc = (out / "report.tex").read_text()
    for package in ("booktabs", "graphicx", "amssymb"):
        assert f"\\usepackage{{{package}}}" in doc
    assert "\\input{table_v.tex}" in doc and "figures/table_v_drop_rates.pdf" in doc
    assert result.logged_to is not None
    logged = mlflow.MlflowClient(tracking_uri=store).list_artifacts(result.logged_to, "report")
    assert {"report/table_v.tex", "report/table_v.md", "report/table_v.csv"} <= {a.path for a in logged}


def test_experiment_description_holds_the_verdicts_and_claims_table(built, store):
    """MLflow renders the experiment's note as Markdown when the experiment is opened: who wins, at first sight."""
    note = mlflow.MlflowClient(tracking_uri=store).get_experiment_by_name("table_v").tags[runs.NOTE_TAG]
    assert note.startswith("## Table V: drop rates") and "Verdict on 2 paper claim(s)" in note
    header = next(line for line in note.splitlines() if line.startswith("| Scheme"))
    assert "Verdict" in header and "Ours AbsRel ↓" in header
    assert "All metrics" not in note and "/tmp" not in note  # the claims table only; no absolute path


def test_no_finished_runs_is_a_clear_error(store, tmp_path, monkeypatch, capsys):
    spec = make_spec(spec_hash="ffffffffffff")
    monkeypatch.setattr(report, "load_spec", lambda path: spec)
    code = report.main(["ablations/table_v.yaml", "--profile", "paper", "--tracking-uri", store,
                        "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0
    assert "table_v" in err and "'paper'" in err and store in err and "no FINISHED runs" in err
    assert not (tmp_path / "out" / "table_v.tex").exists()


def test_missing_store_is_not_created(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "load_spec", lambda path: make_spec())
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    assert report.main(["x.yaml", "--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


def test_damaged_store_is_one_line_and_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "load_spec", lambda path: make_spec())
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"\x87 not a database" * 100)
    assert report.main(["x.yaml", "--tracking-uri", f"sqlite:///{damaged}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{damaged}: not an SQLite database" in err and "move it aside" in err
    assert damaged.read_bytes() == b"\x87 not a database" * 100


def test_complexity_table_reads_the_logged_counts(tmp_path):
    """Complexity tables read the counts the sweep logged (ComplexityRow metrics); nothing is measured again."""
    from fadepth import contracts

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    row = contracts.ComplexityRow.from_counts({"params_enc": 2.0e6, "params_dec": 0.3e6, "params": 2.3e6,
                                               "gflops_enc": 0.2, "gflops_dec": 0.15, "gflops": 0.35,
                                               "mac_enc_m": 40.0, "mac_dec_m": 50.0, "fps": 120.0})
    with runs.tracking(uri):
        experiment_id = mlflow.create_experiment("table_i", artifact_location=(tmp_path / "a").as_uri())
        tags = {"fadepth.role": "run", "fadepth.scheme": "SmallDepth", "fadepth.seed": "0",
                "fadepth.spec_hash": HASH, "fadepth.profile": "paper"}
        with mlflow.start_run(experiment_id=experiment_id, tags=tags):
            mlflow.log_params({"model.name": "smalldepth"})
            mlflow.log_metrics(row.metrics())
    spec = make_spec(
        name="table_i", title="Table I: complexity", paper_table="table01_complexity.csv", kind="complexity",
        baseline=None, metrics=SimpleNamespace(primary="gflops", direction="minimize", columns=["params_m", "gflops"]),
        schemes=[SimpleNamespace(name="SmallDepth", overrides={}, paper={"method": "SmallDepth"})],
        figures=["speed_accuracy"])
    result = report.build_spec(spec, tracking_uri=uri, out_dir=tmp_path, profile="paper", say=lambda _: None)
    frame = pd.read_csv(tmp_path / "table_i_all.csv").set_index("source")
    assert frame.at["ours", "param_m"] == pytest.approx(2.3) and frame.at["paper", "param_m"] == pytest.approx(2.35)
    assert frame.at["ours", "gflops"] == pytest.approx(0.35) and frame.at["paper", "gflops"] == pytest.approx(0.42)
    assert "Param (M) $\\downarrow$" in (tmp_path / "table_i.tex").read_text()
    assert result.figures == []  # no finished training runs -> the speed-accuracy scatter is skipped
    bottom = pd.read_csv(tmp_path / "table_iv_complexity_all.csv").set_index("source")  # Table IV, same counts
    assert bottom.at["ours", "param_enc_m"] == pytest.approx(2.0)
    assert bottom.at["paper", "param_enc_m"] == pytest.approx(2.07)
    assert "\\input{table_iv_complexity.tex}" in (tmp_path / "report.tex").read_text()


def test_paper_row_selection_matches_numbers_and_text():
    paper = tables.load_paper_table("table07_etm_drop.csv")
    rows = tables.select_paper_rows(paper, {"scheme": "+ETM", "pb_t": 0.1, "r1": 0.1, "r2": 1})
    assert len(rows) == 1 and rows.iloc[0]["a1"] == "0.7921"
    assert len(tables.select_paper_rows(paper, {"scheme": "+ETM*"})) == 8


def compile_report(out: Path) -> Path:
    """pdflatex report.tex in `out` (skips the test without pdflatex; .ci/run installs texlive); the PDF."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=out,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    return out / "report.pdf"


def test_report_tex_compiles_with_pdflatex(built):
    _, out = built
    assert compile_report(out).stat().st_size > 10_000
    if shutil.which("pdftotext"):  # what a reader sees: distinct table numbers, no absolute path
        text = subprocess.run(["pdftotext", "-layout", "report.pdf", "-"], cwd=out, capture_output=True,
                              text=True, check=True).stdout
        assert text.count("Table V: Drop rates") == 1 and text.count("Table V.2:") == 1  # heading aside
        assert str(out.parent) not in text and "mlflow.db" in text


def test_pdf_text_rules(built, store):
    """No absolute path, --seeds verbatim (no en dash), check marks for booleans, the verdict states its claim."""
    from fadepth.report import text as render
    from fadepth.report.document import shown_store

    _, out = built
    doc = (out / "report.tex").read_text()
    assert runs.sqlite_path(store).as_posix() not in doc and "\\texttt{mlflow.db}" in doc
    assert shown_store("http://host:5000") == "http://host:5000"
    assert render.latex_text("e.g. --seeds 0,1,2") == "e.g. -{}-seeds 0,1,2"
    assert render.Style(latex=True).setting(False) == "$\\times$" and render.Style(latex=True).setting("true") == \
        "$\\checkmark$"
    assert render.Style(latex=False).setting(True) == "✓" and render.Style(latex=False).setting("0.5") == "0.5"
    tex = (out / "table_v.tex").read_text()
    assert "$pb_{dsr}$ 0.0 trails 0.9 $\\cdot$ not resolved" in tex
    assert tex.index("{\\large Verdict on") < tex.index("\\begin{table}")
