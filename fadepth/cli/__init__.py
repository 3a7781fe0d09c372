"""The ``fadepth`` command: one sub-command module per user action.

Each module in ``SUBCOMMANDS`` defines ``add_parser(subparsers)`` (cheap: no torch import) and
``run(args) -> int``.  Every sub-command runs inside one error boundary (:mod:`fadepth.errors`): a
user error is one line and exit status 2, anything else one line plus a ``--debug`` hint.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from fadepth.errors import add_debug_flag, guarded

SUBCOMMANDS = {
    "train": ("fadepth.cli.train", "train a depth network (self-supervised) from a YAML config"),
    "eval": ("fadepth.cli.evaluate", "evaluate a checkpoint with the KITTI / DDAD / synthetic protocol"),
    "predict": ("fadepth.cli.predict", "colorized depth and .npy for images, folders or videos"),
    "export": ("fadepth.cli.export", "the deployed depth net (ETM / BN folded) as ONNX or TorchScript"),
    "complexity": ("fadepth.cli.complexity", "params / GFLOPs / MAC / FPS, split encoder / decoder"),
    "kitti": ("fadepth.cli.kitti", "KITTI tools: export-gt"),
    "synthetic": ("fadepth.cli.synthetic", "write synthetic scenes to disk in the KITTI raw layout"),
}
# Sub-commands that are other entry points, whole: `fadepth sweep ARGS` = `python sweeps/run.py ARGS`,
# `fadepth report ARGS` = `python reports/build.py ARGS` (their own parsers; see --help).
DELEGATED = {
    "sweep": "rerun a paper table: one run per scheme x seed (= python sweeps/run.py)",
    "report": "tables, figures and report.tex from a sweep's runs (= python reports/build.py)",
}


def fail(command: str, message: str) -> int:
    """Print a sub-command's error the way argparse does and return exit status 2."""
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2


def write_json(path: str, obj, flag: str = "--json") -> None:
    """A JSON file the user named (--json): its folder created when missing (one line says so), written whole."""
    import json
    from pathlib import Path

    from fadepth.outputs import ensure_folder
    from fadepth.utils import atomic_write_bytes

    path = Path(path).expanduser()
    ensure_folder(path.parent, flag)
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fadepth",
        description="FA-Depth reimplementation: train, evaluate, predict and count complexity.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fadepth train                      # the built-in recipe, CPU minutes\n"
               "  fadepth eval --checkpoint runs/train/weights.pt\n"
               "  fadepth predict --checkpoint runs/train/weights.pt photo.jpg --out depth/\n"
               "  fadepth sweep ablations/table_v.yaml --profile smoke\n"
               "  fadepth COMMAND --help             # each command's options and examples",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(p)
        add_debug_flag(p)
        p.set_defaults(_run=mod.run)
    for name, help_text in DELEGATED.items():  # listed here; parsed by their own entry point (main)
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def version_text() -> str:
    import platform

    from fadepth import __version__

    return f"fadepth {__version__} (python {platform.python_version()})"


def run_delegated(name: str, argv: list[str]) -> int:
    """``fadepth sweep`` / ``fadepth report``: the same entry points as sweeps/run.py and reports/build.py."""
    if name == "sweep":
        from fadepth.report.rounds import after_sweep  # the verdict and --until-resolved rounds, as sweeps/run.py
        from fadepth.sweep.launcher import main as sweep_main

        return sweep_main(argv, after=after_sweep, prog="fadepth sweep")
    from fadepth.errors import pop_debug
    from fadepth.report import main as report_main

    argv, debug = pop_debug(argv)
    return guarded("fadepth report", lambda: report_main(argv, prog="fadepth report"), debug=debug)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return run_delegated(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return guarded(f"fadepth {args.command}", lambda: args._run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
