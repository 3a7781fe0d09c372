"""`fadepth train [--config FILE.yaml] [key=value ...]`"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"

EPILOG = """examples:
  fadepth train                                        # the built-in recipe: ~13 min on 2 CPU cores
  fadepth train train.iterations=300 train.out_dir=runs/short
  fadepth train --config ablations/base/kitti.yaml data.path=/data/kitti_raw
  fadepth train model.etm.enabled=true optim.lr=2e-4 train.out_dir=runs/etm

Without --config the built-in recipe runs (fadepth/configs/default.yaml, the `synthetic` profile of the
ablation specs): SmallDepth on the embedded synthetic street scenes at 64x208, batch 4, 900 iterations,
LR 4e-4, validation every 100 iterations, device auto. --config FILE starts from config.py's defaults
(the paper's 128x416, batch 8, 2000 iterations) instead.

Overrides are dotted keys of the typed config (see fadepth/config.py); values are parsed as YAML.
A run whose train.out_dir holds a checkpoint of the same config resumes where it stopped.

Tracking: every run is logged to a local MLflow store (default sqlite:///$PWD/runs/mlflow.db, experiment
fadepth-train): params, train/* and val/* curves (val every train.val_every iterations), depth panels and the
final metrics. Browse with the command in docs/mlflow-ui.md; --no-track logs nothing."""


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--config", help="YAML config (with optional `base:` inheritance); default: the built-in recipe "
                                    "(64x208 synthetic scenes, CPU minutes; see below)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.pb_dsr=0.5")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    p.add_argument("--json", metavar="FILE", help="also write the final metrics as JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config and every data file the run would read, print the config, train nothing")
    p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///$PWD/runs/mlflow.db)")
    p.add_argument("--experiment", default="fadepth-train", help="MLflow experiment (default fadepth-train)")


def run(args: argparse.Namespace) -> int:
    from fadepth.cli import write_json
    from fadepth.config import load_config
    from fadepth.preflight import check_output_file, check_run

    cfg = load_config(args.config or DEFAULT_RECIPE, args.overrides)
    if args.json:
        check_output_file(args.json, "--json")
    check_run(cfg)  # models, device, data paths and files: before any model is built or file written
    if not args.no_track:
        _check_store(args)
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
        print("fadepth train: configuration and data files OK (dry run: nothing trained or written)")
        return 0
    from pathlib import Path

    from fadepth.checkpoint import STATE_NAME
    from fadepth.evaluation import format_row
    from fadepth.outputs import ensure_folder
    from fadepth.train import resumable_state, train

    if not args.no_resume:  # a checkpoint this config cannot resume: refused before the MLflow store is written
        resumable_state(cfg, Path(cfg.train.out_dir) / STATE_NAME, mmap=True)  # config only: cheap
    tracked = None if args.no_track else _start_tracking(cfg, args)
    print(banner(cfg, args, tracked[1] if tracked else None), flush=True)
    try:
        ensure_folder(cfg.train.out_dir, "train.out_dir")
        result = train(cfg, callbacks=tracked[2] if tracked else (), resume=not args.no_resume)
    except BaseException as exc:
        if tracked:
            from fadepth.sweep.tracking import fail_run

            fail_run(tracked[0], tracked[1], exc, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    if tracked:
        client, run_id, _ = tracked
        from fadepth.sweep.tracking import log_final_metrics

        log_final_metrics(client, run_id, result.metrics, step=result.iterations)
        client.set_terminated(run_id, status="FINISHED")
        print(f"MLflow run {run_id} at {args.tracking_uri or _default_uri()} (experiment {args.experiment})")
    print(f"weights: {result.weights} (eval, predict, export); training state: {result.checkpoint}")
    print(format_row(result.metrics, header=True))
    if args.json:
        write_json(args.json, {"metrics": result.metrics, "checkpoint": str(result.checkpoint)})
    return 0


def banner(cfg, args: argparse.Namespace, run_id: str | None) -> str:
    """What is about to run and where it goes (tqdm's bar then shows the ETA)."""
    from fadepth.utils import resolve_device

    recipe = args.config or "the built-in recipe (fadepth/configs/default.yaml)"
    val = f", validation every {cfg.train.val_every}" if cfg.train.val_every else ""
    lines = [f"fadepth train: {cfg.model.name} on {cfg.data.dataset} {cfg.data.height}x{cfg.data.width}, batch "
             f"{cfg.train.batch_size}, {cfg.train.iterations} iterations{val}, device {resolve_device(cfg.train.device)}"
             f" ({cfg.train.device}); config: {recipe}",
             f"  out_dir {cfg.train.out_dir} (weights.pt, checkpoint.pt; an interrupted run resumes from it)"]
    if run_id:
        lines.append(f"  MLflow run {run_id} in {args.tracking_uri or _default_uri()} (experiment {args.experiment})")
    return "\n".join(lines)


def _default_uri() -> str:
    from pathlib import Path

    return f"sqlite:///{(Path.cwd() / 'runs' / 'mlflow.db').resolve()}"


def _start_tracking(cfg, args: argparse.Namespace):
    """(client, run id, trainer callbacks) of a new MLflow run for this training.  The store is created under
    the lock a sweep takes (:func:`fadepth.sweep.stores.tracking_lock`): two trainings started together in a
    fresh folder would both run MLflow's schema migration, and one would die in it (issue 25)."""
    from fadepth.outputs import ensure_folder
    from fadepth.sweep import tracking as tr  # (quiets MLflow's INFO logging)
    from fadepth.sweep.stores import local_store_file, tracking_lock

    uri = args.tracking_uri or _default_uri()
    if uri.startswith("sqlite:///"):
        ensure_folder(local_store_file(uri).parent, _store_name(args))
    with tracking_lock(uri):
        client, run_id = tr.start_train_run(uri, cfg, args.experiment)
    return client, run_id, [tr.CurveLogger(client, run_id), tr.PanelLogger(client, run_id, cfg)]


def _store_name(args: argparse.Namespace) -> str:
    return "--tracking-uri" if args.tracking_uri else "the MLflow store"


def _check_store(args: argparse.Namespace) -> None:
    """The local MLflow store this run would track to, checked before anything is written (and by --dry-run)."""
    from fadepth.sweep.stores import check_sqlite_store, check_uri_safe

    uri = args.tracking_uri or _default_uri()
    if uri.startswith("sqlite:///"):
        check_uri_safe(uri[len("sqlite:///"):], _store_name(args))  # a '?' or '#' would cut the path: another store
        check_sqlite_store(uri, "MLflow store", "--tracking-uri")  # a damaged file: one line naming it, left as it is
