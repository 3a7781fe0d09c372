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


def fail(command: str, message: str) -> int:
    """Print a sub-command's error the way argparse does and return exit status 2."""
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fadepth",
        description="FA-Depth reimplementation: train, evaluate, predict and count complexity.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(p)
        add_debug_flag(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return guarded(f"fadepth {args.command}", lambda: args._run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
