"""``fadepth complexity``: params / GFLOPs / MAC / FPS per model, split encoder / decoder (Table IV)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
units and conventions:
  Param(M)  parameters used by the eval forward of the deployed model (ETM / BN folded;
            training-only heads excluded), in millions (JSON: plain counts)
  GFLOPs    1e9 multiply-adds, as the paper prints them; fvcore per submodule, ptflops (aten)
            as a cross-check; --ops conv counts conv / convT / linear / matmul only
  MAC(M)    eq. (1c) over conv layers, 4*(HiWiCi + KhKwCiCo/g + HoWoCo) x 1e-6; the paper's MAC
            column is not reproducible (its tool is unknown)
  FPS       batch 1, eval, no_grad, warm-up, CUDA-synchronised, median of --reps runs

examples:
  fadepth complexity --models smalldepth,rn18,mobilenetv3 --height 128 --width 416
  fadepth complexity --models hqdecv2 --no-fps --json /tmp/hqdecv2.json
  fadepth complexity --list
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--models", default="smalldepth,rn18,mobilenetv3", metavar="NAMES",
                   help="comma-separated registered model names (default: %(default)s; see --list)")
    p.add_argument("--list", action="store_true", help="print the registered model names and exit")
    p.add_argument("--height", type=int, default=128, help="input height in pixels (default: %(default)s)")
    p.add_argument("--width", type=int, default=416, help="input width in pixels (default: %(default)s)")
    p.add_argument("--device", default="auto", help="FPS device: auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as a JSON list to FILE")
    p.add_argument("--no-fps", dest="fps", action="store_false", help="count only, do not time the models")
    p.add_argument("--reps", type=int, default=50, help="timed runs per model (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--convt", choices=("output", "input"), default="output",
                   help="count ConvTranspose at output (thop, matches Table I for HQDec) or input resolution")
    p.add_argument("--ops", choices=("conv", "all"), default="conv",
                   help="conv: conv/convT/linear/matmul only (paper); all: also fvcore's norm/upsample/pool")


def run(args: argparse.Namespace) -> int:
    from fadepth.models import available

    known = available()
    if args.list:
        print("\n".join(known))
        return 0
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        print(f"fadepth complexity: unknown model(s): {', '.join(unknown) or '(none given)'}; "
              f"known models: {', '.join(known)}", file=sys.stderr)
        return 2

    from fadepth.preflight import check_device, check_output_file

    if min(args.height, args.width, args.reps) < 1 or args.warmup < 0:
        print("fadepth complexity: error: --height, --width and --reps must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    check_device(args.device)
    if args.json:
        check_output_file(args.json, "--json")
    from fadepth.complexity import complexity_rows
    from fadepth.complexity_table import format_table

    rows = complexity_rows(names, args.height, args.width, device=args.device, fps=args.fps,
                           reps=args.reps, warmup=args.warmup, convt=args.convt, ops=args.ops, progress=True)
    print(format_table(rows), end="")
    if args.json:
        from fadepth.cli import write_json

        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m fadepth.cli.complexity``), same as ``fadepth complexity``."""
    from fadepth.errors import add_debug_flag, guarded

    p = argparse.ArgumentParser(prog="fadepth complexity", description=__doc__)
    add_parser(p)
    add_debug_flag(p)
    args = p.parse_args(argv)
    return guarded("fadepth complexity", lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
