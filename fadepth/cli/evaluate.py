"""`fadepth eval --checkpoint CKPT [--data synthetic|kitti|ddad] ...`"""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (at least 1 image), got {value}")
    return value


EPILOG = """\
The protocol follows the data: the checkpoint's own data and protocol by default; --data kitti -> eigen (or
eigen_benchmark with --split eigen_benchmark), --data ddad -> ddad (200 m), --data synthetic -> synthetic,
unless --protocol says otherwise. Depth is median-aligned to the ground truth (monodepth2), as monocular
depth is up to scale.

examples:
  fadepth eval --checkpoint runs/train/weights.pt
  fadepth eval --checkpoint runs/train/weights.pt --max-images 50 --json metrics.json
  fadepth eval --checkpoint weights.pt --data kitti --data-path /data/kitti_raw --gt-path gt_depths.npz
  fadepth eval --checkpoint weights.pt --data kitti --data-path /data/kitti_raw --split eigen_benchmark
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--checkpoint", required=True,
                   help="weights.pt (or checkpoint.pt) written by `fadepth train` in its train.out_dir")
    p.add_argument("--data", choices=["synthetic", "kitti", "ddad"], help="dataset (default: the checkpoint's)")
    p.add_argument("--data-path", help="dataset root on disk (kitti / ddad)")
    p.add_argument("--gt-path", help="KITTI gt_depths.npz (from `fadepth kitti export-gt`)")
    p.add_argument("--split", help="eval split (kitti: eigen or eigen_benchmark; synthetic: test)")
    p.add_argument("--protocol", choices=["auto", "eigen", "eigen_benchmark", "ddad", "synthetic"],
                   help="evaluation protocol (default: the checkpoint's for its own data, else the data's)")
    p.add_argument("--align", choices=["median", "adasearch", "none"], help="scale alignment (default median)")
    p.add_argument("--max-images", type=positive_int, help="evaluate only the first N images")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from fadepth.cli import write_json
    from fadepth.models import load_model
    from fadepth.data import build_test_set
    from fadepth.evaluation import evaluate_model, format_row
    from fadepth.preflight import PreflightError, check_device, check_output_file, check_test_split
    from fadepth.utils import resolve_device

    check_device(args.device)
    if args.json:
        check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    depth_net, cfg = load_model(args.checkpoint, device)
    data = cfg.data.model_copy(update={k: v for k, v in (("dataset", args.data), ("path", args.data_path)) if v})
    updates = {"gt_path": args.gt_path, "split": args.split, "protocol": args.protocol,
               "align": args.align, "max_images": args.max_images}
    eval_cfg = cfg.eval.model_copy(update={k: v for k, v in updates.items() if v is not None})
    if args.data and args.data != cfg.data.dataset:  # other data: nothing of the checkpoint's evaluation applies
        other = {"protocol": "auto", "split": "eigen" if args.data == "kitti" else "test", "gt_path": None,
                 "max_images": None}
        eval_cfg = eval_cfg.model_copy(update={k: v for k, v in other.items() if updates.get(k) is None})
        if args.data == "kitti" and eval_cfg.split == "eigen_benchmark" and not args.protocol:
            eval_cfg = eval_cfg.model_copy(update={"protocol": "eigen_benchmark"})
    try:  # every test file, before the first forward pass
        check_test_split(cfg.model_copy(update={"data": data, "eval": eval_cfg}), eval_cfg.split)
    except PreflightError as exc:
        hint = " (the checkpoint's data; pass --data-path)" if str(exc).startswith("data.path") else ""
        raise PreflightError(f"{exc}{hint}") from None
    test_set = build_test_set(data, eval_cfg)
    metrics = evaluate_model(depth_net, test_set, align=eval_cfg.align, device=device, progress=True)
    skipped = int(metrics.get("num_without_gt", 0))
    print(f"{args.checkpoint}: {test_set.protocol} protocol, {int(metrics['num_images'])} images"
          + (f" ({skipped} of {len(test_set)} skipped: no valid ground-truth pixel)" if skipped else "")
          + f", align={eval_cfg.align}")
    print(format_row(metrics))
    if args.json:
        write_json(args.json, metrics)
    return 0
