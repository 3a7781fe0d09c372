"""``fadepth synthetic write-kitti``: synthetic street sequences written in the KITTI raw layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from fadepth.cli import fail


EXAMPLES = """\
examples:
  fadepth synthetic write-kitti --out synth_kitti
  fadepth synthetic write-kitti --out small --sequences 1 --frames 5 --height 128 --width 416
  fadepth train data.dataset=kitti data.path=synth_kitti data.split=synth_kitti/splits train.out_dir=runs/sk
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXAMPLES
    sub = p.add_subparsers(dest="synthetic_command", metavar="ACTION")
    w = sub.add_parser(
        "write-kitti", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="render train / val / test sequences into a KITTI raw tree with LiDAR scans",
        description=(
            "Render synthetic sequences and write them as <out>/<date>/<date>_drive_<NNNN>_sync/{image_02,"
            "velodyne_points}/data, calib_*.txt and <out>/splits/{train,val,test}_files.txt. Train with "
            "data.dataset=kitti data.path=<out> data.split=<out>/splits; export GT with "
            "fadepth kitti export-gt --data-path <out> --split-file <out>/splits/test_files.txt."
        ),
    )
    w.add_argument("--out", required=True, help="output root folder (created)")
    w.add_argument("--sequences", type=int, default=2, help="train sequences; val gets 1 (default: %(default)s)")
    w.add_argument("--test-sequences", type=int, default=1, help="test sequences (default: %(default)s)")
    w.add_argument("--frames", type=int, default=20, help="frames per sequence (default: %(default)s)")
    w.add_argument("--height", type=int, default=375, help="image height (default: %(default)s)")
    w.add_argument("--width", type=int, default=1242, help="image width (default: %(default)s)")
    w.add_argument("--seed", type=int, default=0, help="scene seed (default: %(default)s)")
    w.add_argument("--lidar-fraction", type=float, default=0.05, help="fraction of valid pixels sampled as LiDAR points (default: %(default)s)")


def _error(message: str) -> int:
    return fail("fadepth synthetic", message)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "synthetic_command", None) != "write-kitti":
        return _error("choose an action: write-kitti (see fadepth synthetic --help)")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        return _error(f"--out {str(out)!r} exists and is not a folder")
    if min(args.sequences, args.test_sequences) < 1 or args.frames < 3 or min(args.height, args.width) < 8:
        return _error("need --sequences >= 1, --test-sequences >= 1, --frames >= 3, --height/--width >= 8")
    from fadepth.config import SyntheticConfig
    from fadepth.data.synthetic import SyntheticScenes, write_kitti_layout
    from fadepth.outputs import ensure_folder

    ensure_folder(out, "--out")  # says so when it creates it

    cfg = SyntheticConfig(seed=args.seed, train_sequences=args.sequences, val_sequences=1,
                          test_sequences=args.test_sequences, frames_per_sequence=args.frames, cache=False)
    drive = 1
    for split in ("train", "val", "test"):
        scenes = SyntheticScenes(cfg, args.height, args.width, split)
        path = write_kitti_layout(out, scenes, first_drive=drive, lidar_fraction=args.lidar_fraction,
                                  seed=args.seed * 1000 + drive)
        drive += scenes.num_sequences
        print(f"{split}: {scenes.num_sequences} x {scenes.frames_per_sequence} frames, split file {path}")
    return 0
