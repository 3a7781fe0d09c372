"""`fadepth train --config FILE.yaml [key=value ...]`"""
from __future__ import annotations

import argparse

EPILOG = """examples:
  fadepth train                                        # SmallDepth on synthetic scenes (CPU minutes)
  fadepth train --config ablations/base/kitti.yaml data.path=/data/kitti_raw
  fadepth train train.iterations=500 model.etm.enabled=true optim.lr=4e-4 train.out_dir=runs/etm

Overrides are dotted keys of the typed config (see fadepth/config.py); values are parsed as YAML.
A run whose train.out_dir holds a checkpoint of the same config resumes where it stopped."""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--config", help="YAML config (with optional `base:` inheritance); default: built-in defaults")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.pb_dsr=0.5")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    p.add_argument("--json", metavar="FILE", help="also write the final metrics as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from fadepth.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"fadepth train: {exc}")
        return 2
    from fadepth.evaluation import format_row
    from fadepth.train import train

    try:
        result = train(cfg, resume=not args.no_resume)
    except ConfigError as exc:  # checks that need the resolved device (train.precision=fp16 on CPU)
        print(f"fadepth train: {exc}")
        return 2
    print(f"checkpoint: {result.checkpoint}")
    print(format_row(result.metrics, header=True))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"metrics": result.metrics, "checkpoint": str(result.checkpoint)}, fh, indent=2)
    return 0
