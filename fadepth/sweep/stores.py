"""The local side of a sweep's stores: which files they are, whether they can be written, and one lock.

Two launchers started together on the same stores must create nothing twice (one MLflow schema, one study,
one sweep run, one trial per cell): :func:`store_lock` makes them initialise, create and enqueue one after
the other, with an exclusive ``fcntl`` lock on a file next to each local store.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from fadepth.config import ConfigError

# A local store's path ends up in a URI (MLflow's ``sqlite:///PATH``, artifact locations): ``?`` starts a query,
# ``#`` a fragment and ``%`` an escape, so ``runs?1`` and ``runs?2`` would both open a file named ``runs``.
URI_UNSAFE = {"?": "'?'", "#": "'#'", "%": "'%'"}


def check_uri_safe(path: str | Path, what: str) -> None:
    """Refuse, in one line, a path a URI cannot carry as it is (the characters are named)."""
    text = str(path)
    bad = [shown for ch, shown in URI_UNSAFE.items() if ch in text]
    bad += ["control characters"] if any(ord(ch) < 32 or ord(ch) == 127 for ch in text) else []
    if bad:
        raise ConfigError(f"{what} {text!r}: holds {', '.join(bad)}, which a store URI cannot carry "
                          "(sqlite:///... would cut the path there); choose a folder name without them")


def local_store_file(url: str) -> Path | None:
    """The on-disk file of one store (a journal path, an ``sqlite:///`` database); None for a server."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).expanduser().absolute()
    return None if "://" in url else Path(url).expanduser().absolute()


def local_store_files(*urls: str) -> list[Path]:
    """The on-disk files of the stores (Optuna storage, MLflow store) named by `urls`; remote stores have none."""
    return [f for f in map(local_store_file, urls) if f is not None]


def check_stores(storage_url: str, tracking_uri: str, runs_dir: Path) -> None:
    """Known store kinds and writable folders, before anything is opened (SQLite would retry for minutes)."""
    from fadepth.preflight import PreflightError, check_output_folder
    from fadepth.sweep.study import is_rdb

    if "://" in storage_url and not is_rdb(storage_url):
        raise ConfigError(f"--storage {storage_url!r}: expected a journal file path or an sqlite:///, "
                          "postgresql+psycopg2:// or mysql+pymysql:// URL")
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else "file"
    if scheme.split("+")[0] not in ("sqlite", "http", "https", "postgresql", "mysql", "databricks", "file"):
        raise ConfigError(f"--tracking-uri {tracking_uri!r}: expected sqlite:///FILE, http(s)://HOST or an "
                          "RDB URL")
    check_uri_safe(runs_dir, "--runs-dir")
    if tracking_uri.startswith("sqlite:///"):
        check_uri_safe(tracking_uri[len("sqlite:///"):], "--tracking-uri")
    if "://" not in storage_url:
        check_uri_safe(storage_url, "--storage")
    try:
        check_output_folder(runs_dir, "--runs-dir")
        for file in local_store_files(storage_url, tracking_uri):
            if file.is_dir():
                raise PreflightError(f"store {str(file)!r} is a folder; expected a file")
            check_output_folder(file.parent, f"store {str(file)!r}")
            if file.exists() and not os.access(file, os.R_OK | os.W_OK):
                raise PreflightError(f"store {str(file)!r}: file is not writable")
    except PreflightError as exc:
        raise ConfigError(str(exc)) from None
    check_store_contents(storage_url, tracking_uri)


SQLITE_MAGIC = b"SQLite format 3\x00"
MOVE_ASIDE = "it is left as it is: move it aside (or restore a copy) or use another {}"


def check_sqlite_store(url: str, what: str, elsewhere: str = "--runs-dir") -> None:
    """An ``sqlite:///`` URL whose file exists but is not an SQLite database: one line naming it (never repaired);
    `elsewhere`: the flag that picks another store."""
    file = local_store_file(url) if url.startswith("sqlite:///") else None
    if file is not None and file.is_file() and file.stat().st_size:
        with open(file, "rb") as fh:
            if fh.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise ConfigError(f"{file}: not an SQLite database (the {what}); {MOVE_ASIDE.format(elsewhere)}")


def check_store_contents(storage_url: str, tracking_uri: str) -> None:
    """Refuse, in one line naming the file, a local store that is not what its name says (issue 25): an SQLite
    URL whose file is not an SQLite database, a journal path whose file is not an Optuna journal.  Nothing is
    repaired.  A last line cut short (a writer killed mid-append) is refused too: Optuna appends the next record
    to it, and that record is lost."""
    check_sqlite_store(storage_url, "Optuna storage")
    check_sqlite_store(tracking_uri, "MLflow store")
    if "://" in storage_url or not Path(storage_url).is_file():
        return
    import json

    lines = _journal_lines(storage_url)
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            record = None
        cut_short = not line.endswith(b"\n") and (record is not None or line.startswith(b'{"op_code"'))
        if cut_short:
            keep = sum(map(len, lines[:-1]))
            raise ConfigError(f"{storage_url}: its last record (line {number}) is cut short (a writer stopped "
                              f"mid-write): the next record would be glued to it and lost; it is left as it is: "
                              f"drop that line (truncate -s {keep} {storage_url}) to keep the rest, or move it "
                              f"aside or use another --runs-dir")
        if not isinstance(record, dict) or "op_code" not in record:
            raise ConfigError(f"{storage_url}: not an Optuna journal (line {number} is not a journal record); "
                              f"{MOVE_ASIDE.format('--runs-dir')}")


def _journal_lines(path: str) -> list[bytes]:
    """The journal's lines; read again under Optuna's append lock when the last one has no newline (another
    launcher may be mid-append right now)."""
    with open(path, "rb") as fh:
        lines = fh.readlines()
    if not lines or lines[-1].endswith(b"\n"):
        return lines
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        with open(path, "rb") as fh:
            return fh.readlines()
    finally:
        lock.release()


@contextlib.contextmanager
def file_lock(*locks: Path):
    """Exclusive ``fcntl.flock`` on each file (created if missing), taken in sorted order, released at exit.
    flock belongs to the open file, so it also serialises threads of one process."""
    with contextlib.ExitStack() as stack:
        for lock in sorted(set(locks)):
            lock.parent.mkdir(parents=True, exist_ok=True)
            fh = stack.enter_context(open(lock, "a"))  # noqa: SIM115
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            stack.callback(fcntl.flock, fh.fileno(), fcntl.LOCK_UN)
        yield


@contextlib.contextmanager
def store_lock(storage_url: str, tracking_uri: str, runs_dir: Path):
    """Exclusive lock files next to the local stores (or in --runs-dir for remote ones): launchers started
    together initialise the stores, create the study / parent run and enqueue cells one after the other."""
    files = local_store_files(storage_url, tracking_uri) or [runs_dir / "sweep"]
    with file_lock(*init_locks(files)):
        yield


def init_locks(files: list[Path]) -> list[Path]:
    """The lock file of each store file (``<file>.fadepth-init.lock``): one name for sweeps and `fadepth train`."""
    return [f.with_name(f.name + ".fadepth-init.lock") for f in files]


def tracking_lock(tracking_uri: str):
    """:func:`store_lock` for an MLflow store alone (`fadepth train`): two trainings, or a training and a sweep,
    on one local store create its schema and experiment one after the other.  A remote store needs none."""
    return file_lock(*init_locks(local_store_files(tracking_uri)))


def guard_trial_takes(storage, storage_url: str, cells: "set[str] | None" = None):
    """Taking a queued trial (Optuna's ``set_trial_state_values(RUNNING)``) made safe, on this process's storage.

    * Atomic across processes on a local SQLite study (issue 25): on PostgreSQL / MySQL the read is
      ``SELECT ... FOR UPDATE``, which SQLite ignores, so two workers of two launchers could both take one trial
      (2 finished runs for one cell, then "Cannot tell a COMPLETE trial").  Here the take runs under a lock file
      next to the database.  A journal file needs nothing: its log replays two takes in order, the first wins.
    * Only the request's own cells (`cells`, the keys of ``Cell``): a trial queued by another request (say 1,000
      seeds) is declined as if another worker had taken it, so it stays queued for its own launcher."""
    from optuna.trial import TrialState

    from fadepth.sweep.study import ATTR_CELL

    lock = None
    if storage_url.startswith("sqlite:///"):
        db = local_store_file(storage_url)
        lock = db.with_name(db.name + ".fadepth-take.lock")
    if lock is None and cells is None:
        return storage
    inner = storage.set_trial_state_values

    def set_trial_state_values(trial_id, state, values=None):
        if state != TrialState.RUNNING:
            return inner(trial_id, state=state, values=values)
        if cells is not None and storage.get_trial(trial_id).user_attrs.get(ATTR_CELL, "") not in cells:
            return False  # another request's cell: leave it queued
        with file_lock(lock) if lock else contextlib.nullcontext():
            return inner(trial_id, state=state, values=values)

    storage.set_trial_state_values = set_trial_state_values
    return storage
