"""`fadepth export --checkpoint CKPT --format onnx|torchscript --out FILE [--height H --width W]`"""
from __future__ import annotations

import argparse

EPILOG = """\
The exported model is the deployed one (ETM and BatchNorm folded into single convs): input `image`
(B, 3, H, W) float32 RGB in [0, 1]; output `disp` (B, 1, H, W), the finest disparity at the input's
resolution, and with --depth a second output `depth` = 1 / (10 disp + 0.01) (eq. 12, up to scale).
ONNX uses opset 18 (torch.onnx dynamo exporter); TorchScript is traced and loads with torch.jit.load
without fadepth. After writing, the file is reloaded in its runtime and compared with PyTorch.
Size: the training size by default; when that is not a multiple of 32, SmallDepth still exports at it (it
resizes its skips), other nets at the nearest multiple of 32 (one line says which). --height/--width: multiples of 32.

examples:
  fadepth export --checkpoint runs/train/weights.pt --format onnx --out smalldepth.onnx
  fadepth export --checkpoint runs/train/weights.pt --format torchscript --height 192 --width 640 --out sd.pt --depth
  fadepth predict --model smalldepth.onnx images/ --out depth/
"""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--checkpoint", required=True, help="checkpoint written by `fadepth train`")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="file format")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.onnx, or .pt/.ts for TorchScript)")
    p.add_argument("--height", type=int, help="input height, a multiple of 32 (default: the training height, see below)")
    p.add_argument("--width", type=int, help="input width, a multiple of 32 (default: the training width)")
    p.add_argument("--dynamic-batch", action="store_true", help="batch dimension free (default: fixed batch 1)")
    p.add_argument("--depth", action="store_true", help="add a `depth` output (eq. 12) beside `disp`")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def run(args: argparse.Namespace) -> int:
    from fadepth.cli import fail
    from fadepth.export import export_checkpoint

    if (args.height is None) != (args.width is None):
        return fail("fadepth export", "give both --height and --width, or neither (the training size)")
    out, record, diff = export_checkpoint(args.checkpoint, args.format, args.out, args.height, args.width,
                                          args.dynamic_batch, args.depth, args.overwrite, say=print)  # errors: fadepth.errors
    opset = f", opset {record.opset}" if record.opset else ""
    batch = "dynamic" if record.dynamic_batch else "1"
    print(f"wrote {out}: {record.model} deployed ({args.format}{opset}), input image {batch}x3x{record.height}x"
          f"{record.width}, outputs {', '.join(record.outputs)}; max |{args.format} - PyTorch| = {diff:.2e}")
    return 0
