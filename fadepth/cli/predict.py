"""`fadepth predict (--checkpoint CKPT | --model FILE.onnx) INPUT... --out DIR`"""
from __future__ import annotations

import argparse

EPILOG = """\
Depth is up to scale: a monocular self-supervised network knows depth only up to an unknown factor, so
<name>_depth.npy holds eq. 12's depth 1 / (10 disp + 0.01) in the network's own units (relative depth; multiply
by a known scale, e.g. the median ratio to LiDAR, for metres). <name>_disp.png is the disparity, magma, near = bright.
Videos give one pair per frame (<stem>_000000, ...); a progress bar counts the frames. Maps of these inputs
already in --out are refused (nothing is loaded or written) unless --overwrite; each map is written whole.

examples:
  fadepth predict --checkpoint runs/train/weights.pt photo.jpg --out depth/
  fadepth predict --checkpoint runs/train/weights.pt my_folder/ drive.mp4 --out depth/ --device cpu
  fadepth predict --model smalldepth.onnx my_folder/ --out depth/      # a file written by fadepth export
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = "Colorized disparity and relative depth (up to scale) for images, folders or videos."
    p.epilog = EPILOG
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="weights.pt (or checkpoint.pt) written by `fadepth train` (PyTorch, deployed net)")
    source.add_argument("--model", metavar="FILE",
                        help="file written by `fadepth export`: .onnx (ONNX Runtime, CUDA provider when present) "
                             "or TorchScript .pt/.ts")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--out", required=True, help="output folder for <name>_disp.png and <name>_depth.npy (depth up to scale)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--overwrite", action="store_true",
                   help="replace maps of these inputs already in --out (default: refuse, before any model is loaded)")


def run(args: argparse.Namespace) -> int:
    from fadepth.predict import predict, predict_exported

    if args.model:  # errors: fadepth.errors
        written = predict_exported(args.model, args.inputs, args.out, device=args.device, progress=True,
                                   overwrite=args.overwrite)
    else:
        written = predict(args.checkpoint, args.inputs, args.out, device=args.device, progress=True,
                          overwrite=args.overwrite)
    count = len(written) // 2
    print(f"wrote {count} depth map{'' if count == 1 else 's'} (depth up to scale) to {args.out}")
    return 0
