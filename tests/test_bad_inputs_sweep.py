"""Issue 25, sweep and report cases: a large request says its size and an estimated time before it is refused
(rc 2, one line) or, with ``--yes``, queued; a spec without a baseline renders a report whose LaTeX holds no
raw Unicode (a raw Δ stopped pdflatex)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import test_report
from test_bad_inputs import TWO, one_error_line, tiny_spec

import fadepth.report as report
from fadepth.config import ConfigError
from fadepth.sweep.estimate import duration
from fadepth.sweep.launcher import main as sweep_main
from fadepth.sweep.plan import parse_ints

store = test_report.store  # the fixture: an MLflow store with known runs
SEEDS = ",".join(map(str, range(65)))  # more than BIG_SEEDS (64)


# ----------------------------------------------------------------------------------- report: no baseline
@pytest.fixture(scope="module")
def no_baseline(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("no_baseline")
    said: list[str] = []
    report.build_spec(test_report.make_spec(baseline=None), tracking_uri=store, out_dir=out, profile="paper",
                      log_artifacts=False, say=said.append)
    return out, said


def test_spec_without_baseline_writes_no_raw_delta(no_baseline):
    """No Δ column without a baseline; the sentence saying so writes $\\Delta$; every .tex is ASCII."""
    out, said = no_baseline
    tex = (out / "table_v.tex").read_text()
    assert "This table has no baseline scheme: no $\\Delta$ and no verdict." in tex
    assert "AbsRel ours" not in tex and "Verdict" not in tex  # the Δ and verdict columns are dropped
    for path in out.glob("*.tex"):
        raw = sorted(set(re.findall(r"[^\x00-\x7f]", path.read_text())))
        assert raw == [], (path.name, raw)
    assert "no Δ and no verdict" in (out / "table_v.md").read_text()  # Markdown keeps the character
    assert any("no baseline" in line for line in said)  # the Δ figure is skipped with its reason


def test_spec_without_baseline_report_compiles(no_baseline):
    out, _ = no_baseline
    assert test_report.compile_report(out).stat().st_size > 1000


# ----------------------------------------------------------------------------------- sweep: large requests
def large(spec, *extra: str) -> list[str]:
    return [str(spec), "--profile", "smoke", "--no-progress", "--gpus", "none", "--seeds", SEEDS, *extra]


def refused_line(capsys) -> str:
    """The refusal's 'this request is ...' part (what --yes prints again)."""
    err = one_error_line(capsys, "--yes")
    return err.split(": error: ", 1)[1].split("; more than", 1)[0]


def test_large_request_is_refused_with_its_count_and_a_rough_time(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep_main(large(tiny_spec(tmp_path, TWO), "--workers", "1")) == 2
    line = refused_line(capsys)  # 130 runs x 1 iteration x 1.3 s on one worker = 169 s
    assert line == ("this request is 2 schemes x 65 seeds = 130 runs; ~3 min at 1 worker(s) (rough: no finished "
                    "run of this study yet; 1 iterations x 1.3 s per iteration on CPU)")
    assert not (tmp_path / "runs").exists()


def test_with_yes_it_proceeds_and_prints_the_same_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, TWO)
    assert sweep_main(large(spec, "--workers", "2")) == 2
    line = refused_line(capsys)
    assert "130 runs" in line and "at 2 worker(s)" in line
    assert sweep_main(large(spec, "--workers", "2", "--yes", "--dry-run")) == 0
    captured = capsys.readouterr()
    assert f"note: {line} (--yes)" in captured.err.splitlines()
    assert "= 130 runs" in captured.out  # the dry run's table went ahead
    assert sweep_main(large(spec, "--workers", "2", "--dry-run")) == 0  # a dry run prints it, never refuses
    assert f"note: {line} (--dry-run; queueing it needs --yes)" in capsys.readouterr().err.splitlines()
    assert not (tmp_path / "runs").exists()


def test_estimate_comes_from_this_studys_finished_runs(tmp_path, capsys, monkeypatch):
    """Four finished runs of 10 min in the journal: 126 runs still to do at 2 workers = 10.5 h; nothing written."""
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import FrozenTrial, TrialState

    from fadepth.sweep import study as st
    from fadepth.sweep.spec import load_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its handler may hold an earlier test's stderr
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, TWO)
    journal = tmp_path / "runs" / "optuna.journal"
    journal.parent.mkdir()
    name = st.study_name(load_spec(spec), "smoke", {})
    study = optuna.create_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))
    start = datetime(2026, 1, 1, 12, 0, 0)
    for i, (scheme, seed) in enumerate([("a", 0), ("b", 0), ("a", 1), ("b", 1)]):
        study.add_trial(FrozenTrial(
            number=i, trial_id=i, state=TrialState.COMPLETE, value=0.5, datetime_start=start,
            datetime_complete=start + timedelta(minutes=10), params={"seed": seed},
            distributions={"seed": IntDistribution(*st.SEED_RANGE)}, user_attrs={st.ATTR_CELL: st.Cell(scheme, seed).key},
            system_attrs={}, intermediate_values={}))
    before = journal.read_bytes()
    assert sweep_main(large(spec, "--workers", "2")) == 2
    assert refused_line(capsys) == ("this request is 2 schemes x 65 seeds = 130 runs; 126 still to run, 4 finished: "
                                    "~10.5 h at 2 worker(s) (from 4 finished run(s) of this study, median 10 min "
                                    "each)")
    assert journal.read_bytes() == before and [p.name for p in journal.parent.iterdir()] == ["optuna.journal"]


@pytest.mark.parametrize("seconds, text", [(45, "45 s"), (720, "12 min"), (3.2 * 3600, "3.2 h"),
                                           (2.5 * 86400, "2.5 days")])
def test_duration_text(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("text, expected", [("0-3,7", [0, 1, 2, 3, 7]), ("5", [5]), ("-1,2", [-1, 2])])
def test_seeds_take_ranges(text, expected):
    assert parse_ints(text, "--seeds") == expected


@pytest.mark.parametrize("text, needle", [("3-1", "ranges like 0-9"), ("1-", "ranges like 0-9"),
                                          ("0-2,2", "repeats 2"), ("0-100000000", "ranges like 0-9")])
def test_bad_seed_ranges_are_one_line(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_ints(text, "--seeds")
