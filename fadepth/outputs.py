"""Writing the files a user names (``export --out``, ``predict --out``; issue 25).  Ground floor: imports only
:mod:`fadepth.errors`.

* A file is written to a temporary beside it, then published in one step, so a crash never leaves a half-written
  file.  Without ``overwrite`` the publishing step cannot replace a file (a hard link, which fails on an existing
  name): two processes writing one ``--out`` get one file and one line, never a silent replacement.
* Temporaries are named ``.<name>.fadepth-tmp-<host>-<pid>-<random><suffix>``: fadepth's, and whose.  Those of a
  process that is gone (same host, pid not alive) are removed before the next write, and a line says so.
* Folders created for an output say so in one line, ``creating FOLDER (for FLAG)``, or refuse in one line.
"""
from __future__ import annotations

import errno
import glob
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Callable

from fadepth.errors import DiskFullError, InputError

log = logging.getLogger(__name__)
TMP_MARK = ".fadepth-tmp-"
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# torch.save's zip writer reports a failed write (a full disk) as RuntimeError: "[enforce fail at
# inline_container.cc:...] unexpected pos ..." or "... file write failed".
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed")


class OutputExistsError(InputError):
    """The output file exists and ``--overwrite`` was not given."""


def _host() -> str:
    return socket.gethostname().replace(os.sep, "_") or "localhost"


def temp_path(out: Path) -> Path:
    """A fresh temporary for `out`, in its folder, named after it, this host and this process."""
    return out.with_name(f".{out.name}{TMP_MARK}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{out.suffix}")


def _owner(temp: Path) -> tuple[str, int] | None:
    """(host, pid) of a temporary named by :func:`temp_path`; None for any other name."""
    host, _, rest = temp.name.rpartition(TMP_MARK)[2].rpartition("-")[0].rpartition("-")
    return (host, int(rest)) if host and rest.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """fadepth temporaries in `folder` (of the file `name`, or of any file) left by a process of this host that
    is gone.  Another host's, or a live process's, are not stale."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{glob.escape(name) if name else '*'}{TMP_MARK}*"
    stale = []
    for temp in sorted(folder.glob(pattern)):
        owner = _owner(temp)
        if owner is not None and owner[0] == _host() and not _alive(owner[1]):
            stale.append(temp)
    return stale


def remove_stale_temps(folder: str | Path, name: str | None = None,
                       say: Callable[[str], None] | None = None) -> list[Path]:
    """Remove :func:`stale_temps` and say so in one line (`say`, else a log warning)."""
    removed = []
    for temp in stale_temps(folder, name):
        try:
            temp.unlink()
        except FileNotFoundError:  # another process cleaned it meanwhile
            continue
        removed.append(temp)
    if removed:
        names = ", ".join(p.name for p in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        (say or log.warning)(f"removed {len(removed)} stale temporary file(s) in {folder} left by a process that is "
                             f"gone: {names}")
    return removed


def ensure_folder(folder: str | Path, flag: str, say: Callable[[str], None] = print) -> Path:
    """`folder` for the output named by `flag`: created (with its parents) when missing, which `say` announces
    as ``creating FOLDER (for FLAG)``; a folder that cannot be created is one line."""
    folder = Path(folder).expanduser()
    if folder.is_dir():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{flag} {str(folder)!r}: cannot create the folder ({exc.strerror or exc})") from None
    say(f"creating {folder} (for {flag})")
    return folder


def publish(temp: Path, out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Move the finished `temp` to `out` in one step: ``os.replace`` with `overwrite`, else a step that fails on
    an existing `out` (a hard link, or an exclusive create where the file system has no hard links)."""
    if overwrite:
        os.replace(temp, out)
        return
    try:
        try:
            os.link(temp, out)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or exc.errno not in NO_HARD_LINKS:
                raise
            os.close(os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            os.replace(temp, out)
    except FileExistsError:
        raise OutputExistsError(f"{flag} {out}: file exists (written meanwhile by another process?); pass "
                                "--overwrite to replace it") from None
    temp.unlink(missing_ok=True)


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_WRITE_FAILED)


def disk_full_error(out: Path, exc: BaseException) -> DiskFullError:
    kept = f"the previous {out.name} is kept" if out.exists() else f"no {out.name} was written"
    return DiskFullError(f"disk full while writing {out} ({kept}): free some space or choose another folder, "
                         "then run again")


def write_atomic(out: str | Path, write: Callable[[str], None], overwrite: bool = False,
                 flag: str = "--out", sync: bool = False) -> Path:
    """``write(temporary path)`` (then fsync it when `sync`), then :func:`publish` it as `out`; the temporary never
    outlives the call, and a full disk is :class:`DiskFullError` naming `out` (which keeps its previous content)."""
    out = Path(out)
    temp = temp_path(out)
    try:
        write(str(temp))
        if sync:
            with open(temp, "rb") as fh:
                os.fsync(fh.fileno())
        publish(temp, out, overwrite, flag)
    except BaseException as exc:
        if disk_full(exc):
            raise disk_full_error(out, exc) from exc
        raise
    finally:
        temp.unlink(missing_ok=True)
    return out
