"""One writer per run folder: ``fadepth train`` (and each sweep cell) holds ``<out_dir>/.fadepth.lock`` while it
writes there.  Ground floor: imports only :mod:`fadepth.errors`.

Two runs on one ``train.out_dir`` would overwrite each other's checkpoint, weights and ``config.yaml`` (issue 25),
so the second refuses with one line naming the folder and the holder (host, pid, start time).  The lock is an
exclusive ``fcntl.flock`` on the file, which the kernel drops when its process dies: a lock file left by a
killed run is stale by construction and is taken over (the line it held is logged).  The file is removed
at exit.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from fadepth.errors import InputError

log = logging.getLogger(__name__)
LOCK_NAME = ".fadepth.lock"


class FolderBusyError(InputError):
    """Another live process holds the folder's lock."""


@contextlib.contextmanager
def run_lock(folder: str | Path, what: str = "train.out_dir"):
    """Hold ``folder/.fadepth.lock`` (host, pid, start time inside) for the block; refuse if a live run holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fh = open(path, "a+")  # noqa: SIM115 - closed below or at exit
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise FolderBusyError(f"{what} {str(folder)!r} is in use by {holder}: wait for that run to end or "
                                  f"choose another {what}") from None
        try:  # the file we locked may have been removed by its previous holder meanwhile: lock the new one
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
    fh.seek(0)
    previous = fh.read().strip()
    if previous:
        log.warning("%s: taking over the lock of a run that is gone (%s)", path, previous)
    fh.seek(0)
    fh.truncate()
    fh.write(f"host {socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    fh.flush()
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fh.close()
