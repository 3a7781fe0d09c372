"""`fadepth predict --checkpoint CKPT INPUT... --out DIR`"""
from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `fadepth train`")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--out", required=True, help="output folder for <name>_disp.png and <name>_depth.npy")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def run(args: argparse.Namespace) -> int:
    from fadepth.predict import predict

    written = predict(args.checkpoint, args.inputs, args.out, device=args.device)  # errors: fadepth.cli.boundary
    print(f"wrote {len(written) // 2} depth maps to {args.out}")
    return 0
