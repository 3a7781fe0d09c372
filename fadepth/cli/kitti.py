"""``fadepth kitti export-gt``: monodepth2-format gt_depths.npz from a KITTI raw tree."""
from __future__ import annotations

import argparse
from pathlib import Path

from fadepth.cli import fail

SPLITS_DIR = Path(__file__).resolve().parent.parent / "data" / "splits"


EXAMPLES = """\
examples:
  fadepth kitti export-gt --data-path /data/kitti_raw --split eigen --out gt_depths.npz
  fadepth kitti export-gt --data-path /data/kitti_raw --split eigen_benchmark --out gt_benchmark.npz
  fadepth kitti export-gt --data-path synth_kitti --split-file synth_kitti/splits/test_files.txt --out gt.npz
  fadepth eval --checkpoint runs/train/weights.pt --data kitti --data-path /data/kitti_raw --gt-path gt_depths.npz
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXAMPLES
    sub = p.add_subparsers(dest="kitti_command", metavar="ACTION")
    e = sub.add_parser(
        "export-gt", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write gt_depths.npz (key 'data', object array of float32 maps) for a split",
        description=(
            "Export ground-truth depth exactly as monodepth2's export_gt_depth.py does: eigen = LiDAR "
            "projected into camera 2 (Eigen protocol, LiDAR forward coordinate as depth); --benchmark = "
            "the annotated KITTI depth-benchmark PNGs (<drive>/proj_depth/groundtruth/image_02, /256)."
        ),
    )
    e.add_argument("--data-path", required=True, help="KITTI raw root (holds <date>/calib_*.txt and drives)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--split-file", help="split file with lines '<date>/<drive> <frame> <l|r>'")
    src.add_argument("--split", choices=["eigen", "eigen_benchmark"], help="a test split shipped with fadepth")
    e.add_argument("--out", required=True, help="output .npz path")
    e.add_argument("--benchmark", action="store_true",
                   help="read annotated depth PNGs (eigen_benchmark GT) instead of projecting LiDAR; implied by "
                        "--split eigen_benchmark")


def _error(message: str) -> int:
    return fail("fadepth kitti", message)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "kitti_command", None) != "export-gt":
        return _error("choose an action: export-gt (see fadepth kitti --help)")
    data_path = Path(args.data_path).expanduser()
    if not data_path.is_dir():
        return _error(f"--data-path {str(data_path)!r} is not a folder (expected the KITTI raw root)")
    split_file = Path(args.split_file).expanduser() if args.split_file else SPLITS_DIR / args.split / "test_files.txt"
    if not split_file.is_file():
        return _error(f"split file not found: {split_file}")
    benchmark = args.benchmark or args.split == "eigen_benchmark"
    from fadepth.data.kitti import export_gt_depths, read_split
    from fadepth.outputs import ensure_folder

    ensure_folder(Path(args.out).expanduser().parent, "--out")  # says so when it creates it

    try:
        n = len(read_split(split_file))
        out = export_gt_depths(data_path, split_file, args.out, benchmark=benchmark)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        return _error(str(exc).strip("'\""))
    print(f"wrote {n} {'benchmark' if benchmark else 'eigen'} GT maps to {out}")
    return 0
