"""The report's statistics, end to end: an MLflow store filled with known metrics (3 seeds; a known effect, a
null effect, a contradicted claim, a one-seed scheme, a failed scheme) -> means, 95 % Student-t intervals,
paired Δ intervals and verdicts, pinned against ``scipy.stats.t`` and against hand-computed numbers; the
.md / .tex carry the verdict summary on top and list the failed scheme; sweeps with different ``--set``
overrides are never mixed; Unicode scheme names give a report.tex that pdflatex accepts.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as sps  # noqa: E402

import fadepth.report as report  # noqa: E402
from fadepth import contracts as c  # noqa: E402
from fadepth.report import runs, stats  # noqa: E402

HASH = "0123456789ab"
STUDY = f"table_v-{HASH}-paper"
METRICS = ["abs_rel", "a1"]
# abs_rel per seed 0, 1, 2.  Paper (table05_drop.csv): sch1 0.1241, sch2 (0.1) 0.1231, sch2 (0.5) 0.1221, sch3 0.1216.
BASE = [0.120, 0.124, 0.122]  # sch3, the baseline
EFFECT = [0.1305, 0.1338, 0.1327]  # sch1: +0.0105, +0.0098, +0.0107 -> CI excludes 0, paper Δ +0.0025: reproduced
NULL = [0.118, 0.127, 0.121]  # sch2a: -0.002, +0.003, -0.001 -> CI includes 0: not resolved
OPPOSITE = [0.115, 0.1195, 0.1165]  # sch2b: -0.005, -0.0045, -0.0055 -> paper Δ +0.0005: contradicted
VALUES = {"sch3": BASE, "sch1": EFFECT, "sch2a": NULL, "sch2b": OPPOSITE, "no_auto_mask": [0.130]}


def make_spec(schemes=None, **changes) -> SimpleNamespace:
    schemes = schemes or [
        SimpleNamespace(name="sch1", overrides={"model.pb_dsr": 0.0}, paper={"scheme": "sch1"}),
        SimpleNamespace(name="sch2a", overrides={"model.pb_dsr": 0.1}, paper={"scheme": "sch2", "pb_dsr": 0.1}),
        SimpleNamespace(name="sch2b", overrides={"model.pb_dsr": 0.5}, paper={"scheme": "sch2", "pb_dsr": 0.5}),
        SimpleNamespace(name="sch3", overrides={"model.pb_dsr": 0.9}, paper={"scheme": "sch3"}),
        SimpleNamespace(name="sch4*", overrides={"model.drop_schedule": "constant"}, paper={"scheme": "sch4*"}),
        SimpleNamespace(name="no_auto_mask", overrides={"model.pb_dsr": 0.5}, paper=None),
    ]
    fields = dict(name="table_v", title="Table V: drop rates pb_dsr and pb_sd", paper_table="table05_drop.csv",
                  kind="train", baseline="sch3", seeds=[0, 1, 2], profiles={"smoke": None, "paper": None},
                  metrics=SimpleNamespace(primary="abs_rel", direction="minimize", columns=METRICS),
                  schemes=schemes, overrides={"optim.lr": 1e-4}, path=Path("ablations/table_v.yaml"),
                  spec_hash=HASH, figures=["drop_rates"])
    fields.update(changes)
    return SimpleNamespace(**fields)


def fill(uri: str, root: Path, values: dict, study: str = STUDY, extra: str = "", failed=("sch4*",)) -> None:
    with runs.tracking(uri):
        experiment = mlflow.get_experiment_by_name("table_v")
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
            "table_v", artifact_location=(root / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=experiment_id)
        tags = {c.ROLE: c.ROLE_SWEEP, c.SPEC_HASH: HASH, c.PROFILE: "paper", c.STUDY: study, c.EXTRA: extra}
        with mlflow.start_run(run_name="sweep", tags=tags) as parent:
            pass
        for scheme, per_seed in values.items():
            for seed, abs_rel in enumerate(per_seed):
                tags = {c.ROLE: c.ROLE_RUN, c.SCHEME: scheme, c.SEED: str(seed), c.SPEC_HASH: HASH,
                        c.PROFILE: "paper", c.STUDY: study}
                with mlflow.start_run(run_name=c.run_name(scheme, seed), parent_run_id=parent.info.run_id, tags=tags):
                    mlflow.log_metrics({"abs_rel": abs_rel, "a1": 1 - abs_rel})
        for scheme in failed:
            tags = {c.ROLE: c.ROLE_RUN, c.SCHEME: scheme, c.SEED: "0", c.SPEC_HASH: HASH, c.PROFILE: "paper",
                    c.STUDY: study, c.ERROR: "RuntimeError: out of memory"}
            with mlflow.start_run(run_name=c.run_name(scheme, 0), parent_run_id=parent.info.run_id, tags=tags):
                pass
            mlflow.MlflowClient().set_terminated(mlflow.last_active_run().info.run_id, status="FAILED")


def t_interval(x):
    x = np.asarray(x, float)
    half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    fill(uri, root, VALUES)
    out = root / "out"
    result = report.build_spec(make_spec(), tracking_uri=uri, out_dir=out, profile="paper", say=lambda _: None)
    return result, out, uri


def test_mean_ci_and_paired_delta_match_scipy():
    est = stats.mean_ci(BASE)
    assert (est.mean, est.low, est.high) == pytest.approx(t_interval(BASE))
    assert est.half_width == pytest.approx(0.0049683, abs=1e-7)  # t_{0.975,2}=4.302653 · 0.002 / √3
    delta = stats.paired_delta(dict(enumerate(EFFECT)), dict(enumerate(BASE)))
    assert (delta.mean, delta.low, delta.high) == pytest.approx(t_interval(np.subtract(EFFECT, BASE)))
    assert delta.mean == pytest.approx(0.0103333, abs=1e-7)
    shared = stats.paired_delta({0: 0.2, 1: 0.3, 7: 9.9}, {0: 0.1, 1: 0.1, 2: 5.0})  # seeds 0, 1 only
    assert shared.n == 2 and shared.mean == pytest.approx(0.15)
    one = stats.mean_ci([0.13])
    assert one.n == 1 and not one.has_interval and math.isnan(one.low)


def test_verdict_rules():
    up, down, around = (stats.mean_ci(v) for v in ([1.0, 1.1, 0.9], [-1.0, -1.1, -0.9], [-1.0, 1.0, 0.1]))
    assert stats.verdict(0.5, up) == stats.REPRODUCED
    assert stats.verdict(-0.5, up) == stats.CONTRADICTED
    assert stats.verdict(-0.5, down) == stats.REPRODUCED
    assert stats.verdict(0.5, around) == stats.UNRESOLVED
    assert stats.verdict(0.5, stats.mean_ci([1.0])) == stats.NO_INTERVAL
    assert stats.verdict(math.nan, up) == stats.NO_PAPER_ROW


def test_one_seed_with_a_collapsed_run_is_judged_without_a_test():
    """The README's main job (smoke: one seed) can collapse a run: no test, no crash (scipy needs two values)."""
    claim = stats.ClaimData("delta", -0.01, scheme={0: 0.74}, reference={0: 0.40}, constant=0.74)
    judged = stats.judge_one(claim, 0.95)
    assert judged.test == "" and math.isnan(judged.p)
    assert stats.sign_flip_p([0.3]) == 1.0 and math.isnan(stats.sign_flip_p([]))


def test_seeds_to_resolve_matches_the_t_interval():
    diffs = [0.010, -0.004, 0.006]  # mean 0.004, s = 0.00721
    ours = stats.mean_ci(diffs)
    s = np.std(diffs, ddof=1)
    n = stats.seeds_to_resolve(ours, -0.009)
    half = lambda k: sps.t.ppf(0.975, k - 1) * s / math.sqrt(k)  # noqa: E731
    assert half(n) < 0.009 <= half(n - 1)
    assert n == 5
    assert stats.seeds_to_resolve(stats.mean_ci([0.01]), 0.009) is None  # one seed: no spread known
    assert stats.seeds_to_resolve(ours, 0.0) is None
    assert stats.seeds_to_resolve(ours, 1e-9, limit=50) is None


def test_claims_table_numbers_and_verdicts(built):
    _, out, _ = built
    claims = pd.read_csv(out / "table_v.csv").set_index("scheme")
    for scheme, values in VALUES.items():
        if len(values) > 1:
            assert claims.loc[scheme, ["ours", "ours_low", "ours_high"]].tolist() == pytest.approx(t_interval(values))
    for scheme, values in (("sch1", EFFECT), ("sch2a", NULL), ("sch2b", OPPOSITE)):
        expected = t_interval(np.subtract(values, BASE))
        assert claims.loc[scheme, ["delta_ours", "delta_low", "delta_high"]].tolist() == pytest.approx(expected)
    assert claims.loc["sch1", "delta_paper"] == pytest.approx(0.1241 - 0.1216)
    assert claims.loc["sch2b", "delta_paper"] == pytest.approx(0.1221 - 0.1216)
    assert claims["verdict"].to_dict() == {
        "sch1": "reproduced", "sch2a": "not resolved", "sch2b": "contradicted", "sch3": "baseline",
        "sch4*": np.nan, "no_auto_mask": "no paper row"}
    assert claims.loc["no_auto_mask", "n"] == 1 and math.isnan(claims.loc["no_auto_mask", "ours_low"])
    assert claims.loc["sch4*", "status"].startswith("FAILED: RuntimeError: out of memory")


def test_markdown_summary_on_top_failed_listed_bold_only_ours(built):
    _, out, _ = built
    md = (out / "table_v.md").read_text()
    first = md.splitlines()[0]
    assert first.startswith("Verdict on 3 paper claim(s)") and "1 reproduced, 1 contradicted, 1 not resolved" in first
    assert "1 of 6 schemes have no finished run" in first
    assert "Not in the table (no finished run): sch4\\* (FAILED: RuntimeError: out of memory)" in md
    assert "0.1300 (1 seed: no interval)" in md  # one seed: the cell says so
    hw = t_interval(NULL)[2] - np.mean(NULL)
    assert f"{np.mean(NULL):.4f} ± {hw:.4f}" in md
    assert "−0.0050 [−0.0062, −0.0038]" in md  # real minus; paired CI of sch2b
    claims_table = md.split("\n\n")[1]
    # bold: ours only, and only what a paired Δ resolves: the best scheme (it beats the baseline, interval < 0)
    # and the two resolved Δs (reproduced, contradicted); never the unresolved ones
    assert claims_table.count("**") == 6 and f"**{np.mean(OPPOSITE):.4f} ±" in claims_table
    for line in claims_table.splitlines():
        assert ("**" in line.split("|")[-3]) == ("reproduced" in line or "contradicted" in line), line


def test_latex_table_caption_minus_and_document(built):
    result, out, _ = built
    tex = (out / "table_v.tex").read_text()
    assert tex.lstrip().startswith("\\noindent{\\large Verdict on 3 paper claim(s)")  # the largest text after the title
    assert "$-$0.0050 [$-$0.0062, $-$0.0038]" in tex and "-0.0050" not in tex
    assert "Profile paper, seeds 0, 1, 2" in tex and "95 \\% Student-t" in tex
    assert "sch4*" in tex.split("\\end{table}")[1]  # failed scheme listed under the table
    doc = (out / "report.tex").read_text()
    body = doc.split("\\begin{document}")[1]
    assert "\\maketitle" not in doc and body.index("\\input{table_v.tex}") < body.index("\\end{document}")
    assert "\\footnotetext{" in body and "\\renewcommand{\\thetable}{V\\ifnum\\value{table}>1 .\\arabic{table}\\fi}" in body
    assert [f.name for f in result.figures] == ["table_v_drop_rates"]


def test_parent_run_carries_table_and_figure(built):
    result, _, uri = built
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(result.logged_to, "report")}
    assert {"report/table_v.md", "report/table_v.tex", "report/table_v_claims.json"} <= logged
    assert {a.path for a in client.list_artifacts(result.logged_to, "report/figures")} >= {
        "report/figures/table_v_drop_rates.png"}


def test_sweeps_with_different_set_overrides_are_not_mixed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fill(uri, tmp_path, {"sch3": BASE, "sch1": EFFECT})
    other = STUDY + "-x1a2b3c"
    fill(uri, tmp_path, {"sch3": [0.5, 0.5, 0.5], "sch1": [0.6, 0.6, 0.6]}, study=other,
         extra="{'model.pb_sd': 0.5}")
    spec = make_spec()
    with pytest.raises(runs.ReportError) as why:
        report.build_spec(spec, tracking_uri=uri, out_dir=tmp_path / "out", profile="paper", say=lambda _: None)
    message = str(why.value)
    assert "2 sweeps" in message and other in message and "model.pb_sd" in message and "--study" in message
    assert "\n" not in message
    assert not (tmp_path / "out" / "table_v.md").exists()
    result = report.build_spec(spec, tracking_uri=uri, out_dir=tmp_path / "out", profile="paper", study=other,
                               say=lambda _: None)
    claims = pd.read_csv(tmp_path / "out" / "table_v.csv").set_index("scheme")
    assert result.study == other and claims.loc["sch1", "ours"] == pytest.approx(0.6)


def test_unicode_and_latex_special_names_compile(tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed")
    names = ["α-drop & 50%", "sch_ü#1", "日本"]
    schemes = [SimpleNamespace(name=n, overrides={}, paper=None) for n in names]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fill(uri, tmp_path, {n: [0.12, 0.13, 0.125] for n in names}, failed=())
    said = []
    report.build_spec(make_spec(schemes=schemes, baseline=names[0], figures=[]), tracking_uri=uri,
                      out_dir=tmp_path / "out", profile="paper", say=said.append)
    assert any("日本" in line and "warning" in line for line in said)
    tex = (tmp_path / "out" / "table_v.tex").read_text()
    assert "$\\alpha$-drop \\& 50\\%" in tex and "sch\\_u\\#1" in tex
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                          cwd=tmp_path / "out", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_report_ends_on_the_best_scheme_and_the_claims_line(built, capsys):
    """reports/build.py's last lines (the README's main job ends on them): the best scheme with its interval,
    then the claims line, as a sweep ends."""
    result = built[0]
    report.print_summaries([result])
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last[0].startswith("best scheme ") and "abs_rel" in last[0] and "[" in last[0], last
    assert last[1].startswith("claims"), last
