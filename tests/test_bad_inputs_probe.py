"""Hostile inputs found by re-probing issue 25 on the landed code: each is one line naming the file (exit status
2), and the file is left as it was."""
from __future__ import annotations

import pytest

from fadepth.cli import main as fadepth
from fadepth.sweep.launcher import main as sweep_main
from test_bad_inputs import TINY, TWO, one_error_line, tiny_spec

RECORDS = b'{"op_code": 0, "worker_id": "a"}\n{"op_code": 1, "worker_id": "a"}\n'


@pytest.mark.parametrize("content, needles", [
    # a writer killed mid-append: Optuna would glue the next record to this line, and lose it
    (RECORDS + b'{"op_code": 4, "worker_id": "a", "trial', ["line 3", "cut short", f"truncate -s {len(RECORDS)}"]),
    (RECORDS + b'{"op_code": 4, "worker_id": "a"}', ["line 3", "cut short"]),  # a whole record, no newline
    # random bytes without a newline: Optuna appended its record to them, then died in a UnicodeDecodeError
    (b"\xf3\x20\x05\x2e\xca\x93 garbage", ["line 1", "not an Optuna journal", "move it aside"]),
], ids=["partial-record", "record-without-newline", "garbage-without-newline"])
def test_journal_whose_last_line_is_cut_short_is_refused(content, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    journal = tmp_path / "runs" / "optuna.journal"
    journal.write_bytes(content)
    assert sweep_main([str(tiny_spec(tmp_path, TWO)), "--profile", "smoke", "--no-progress"]) == 2
    one_error_line(capsys, "optuna.journal", *needles)
    assert journal.read_bytes() == content
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["optuna.journal"]


def test_train_on_a_damaged_store_names_its_own_flag(tmp_path, capsys):
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"not a database" * 64)
    assert fadepth(["train", "--tracking-uri", f"sqlite:///{damaged}", *TINY, "train.iterations=1",
                    f"train.out_dir={tmp_path / 'run'}"]) == 2
    err = one_error_line(capsys, "not an SQLite database", "another --tracking-uri")
    assert "--runs-dir" not in err  # fadepth train has no --runs-dir


def test_empty_config_is_refused_not_the_default_recipe(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    assert fadepth(["train", "--config", str(tmp_path / "empty.yaml"), *TINY, "train.iterations=1",
                    f"train.out_dir={tmp_path / 'run'}", "--no-track"]) == 2
    one_error_line(capsys, "empty.yaml", "got an empty file")
    assert not (tmp_path / "run").exists()


def test_empty_spec_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert sweep_main([str(tmp_path / "empty.yaml"), "--profile", "smoke"]) == 2
    one_error_line(capsys, "empty.yaml", "got an empty file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]


def test_checkpoint_that_is_a_folder_says_so(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert fadepth(["eval", "--checkpoint", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "run: is a folder", "weights.pt")


def test_train_dry_run_checks_the_store_the_run_would_use(tmp_path, capsys, monkeypatch):
    """The dry run used to pass in a folder whose default store a URI cannot carry; the run then refused."""
    folder = tmp_path / "q?dir"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert fadepth(["train", *TINY, "train.iterations=1", "--dry-run"]) == 2
    one_error_line(capsys, "the MLflow store", "'?'")
    assert fadepth(["train", *TINY, "train.iterations=1", "--dry-run", "--no-track"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == []
