"""`fadepth predict (--checkpoint CKPT | --model FILE.onnx) INPUT... --out DIR`"""
from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="weights.pt (or checkpoint.pt) written by `fadepth train` (PyTorch, deployed net)")
    source.add_argument("--model", metavar="FILE",
                        help="file written by `fadepth export`: .onnx (ONNX Runtime, CUDA provider when present) "
                             "or TorchScript .pt/.ts")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--out", required=True, help="output folder for <name>_disp.png and <name>_depth.npy")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def run(args: argparse.Namespace) -> int:
    from fadepth.predict import predict, predict_exported

    if args.model:  # errors: fadepth.errors
        written = predict_exported(args.model, args.inputs, args.out, device=args.device)
    else:
        written = predict(args.checkpoint, args.inputs, args.out, device=args.device)
    print(f"wrote {len(written) // 2} depth maps to {args.out}")
    return 0
