"""Known errors and the one error boundary of every command-line entry point (``fadepth <command>``,
``sweeps/run.py``, ``reports/build.py``).  Ground floor: imports nothing of fadepth, so every layer may use it.

Known errors -- bad user input (:class:`InputError`: configs, specs, checkpoints, pre-flight)
and file-system errors that name their file -- print one line ``<prog>: error: <message>`` and exit 2.
Anything else prints the same one line with the exception's type and ``run with --debug for the traceback``
and exits 1; ``--debug`` (or ``FADEPTH_DEBUG=1``) prints the traceback too.  Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable

HINT = "run with --debug for the traceback"
FILE_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


class InputError(ValueError):
    """Bad user input (a file, key or value): the CLIs print its message as one line, without a traceback."""


class DiskFullError(InputError):
    """A write ran out of space (ENOSPC / EDQUOT, or torch's zip writer failing mid-file); the file it would have
    replaced is kept."""


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="on an error, also print the Python traceback (env FADEPTH_DEBUG=1 does the same)")


def pop_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--debug`` from an argument list whose parser is not ours; returns (argv, debug)."""
    return [a for a in argv if a != "--debug"], "--debug" in argv


def is_known(exc: BaseException) -> bool:
    return isinstance(exc, InputError) or (isinstance(exc, FILE_ERRORS) and bool(exc.filename or str(exc)))


def message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return text or type(exc).__name__


def guarded(prog: str, fn: Callable[[], int | None], debug: bool = False) -> int:
    """Run `fn` (the command) and turn any exception into one line on stderr and an exit status."""
    debug = debug or os.environ.get("FADEPTH_DEBUG", "") not in ("", "0")
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        if debug:
            traceback.print_exc()
        if is_known(exc):
            print(f"{prog}: error: {message(exc)}", file=sys.stderr)
            return 2
        first = message(exc).splitlines()[0] if message(exc) else ""
        print(f"{prog}: error: {type(exc).__name__}: {first}" + ("" if debug else f" ({HINT})"), file=sys.stderr)
        return 1
