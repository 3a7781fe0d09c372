"""Pre-flight: everything about a run that can be checked before a model is built or a store is written.

``check_config(cfg)`` is cheap (registry, model options, device): the trainer calls it first.
``check_run(cfg)`` adds the data: dataset paths and split files, the training set's size against the batch,
and a cheap look at *every file the run will read* (images: header decodable and not truncated; KITTI
calibration keys; velodyne scans a non-empty multiple of 16 bytes; DDAD point clouds and calibrations) for
the training split, the validation split (when ``train.val_every``) and the test split.  The CLIs and the
sweep launcher (``--dry-run`` too) call it.  Every problem raises :class:`PreflightError` with one line naming
the key, value or file and what was expected.

Decision: a velodyne scan of 0 bytes is an error (KITTI scans hold ~120k points; an empty one would give an
image without ground truth that the evaluation could only skip).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Iterable

from fadepth.config import ConfigError, ExperimentConfig

DEPTH_KINDS, POSE_KINDS = ("depth", "teacher"), ("pose",)
OPTION_KEYS = {"widths": "model.widths", "expansion": "model.expansion"}


class PreflightError(ConfigError):
    """A run cannot start: a model option, device, data path or data file is not what it needs."""


# ------------------------------------------------------------------------------------ config
def check_config(cfg: ExperimentConfig, files: bool = True) -> None:
    """Models and their options against the registry, the device string and (``files``) the checkpoint files
    the config names."""
    check_model_name("model.name", cfg.model.name, DEPTH_KINDS)
    check_model_name("model.pose", cfg.model.pose, POSE_KINDS)
    check_depth_options(cfg)
    if cfg.loss.apx.enabled:
        check_model_name("loss.apx.teacher", cfg.loss.apx.teacher, DEPTH_KINDS)
    check_device(cfg.train.device, "train.device")
    check_training_device(cfg)
    if files:
        check_checkpoint_files(cfg)


def check_precision(cfg: ExperimentConfig, device) -> None:
    """fp16 autocast is CUDA-only here (CPU fp16 kernels are slow and partial; bf16 is the CPU choice), and
    needs the trainer's own backward (GradScaler), which the per-level pyramid mode does inside the loss."""
    if cfg.train.precision != "fp16":
        return
    if device.type != "cuda":
        raise ConfigError(f"train.precision=fp16 needs a CUDA device (train.device resolved to {device}); "
                          "use train.precision=bf16 on CPU")
    if cfg.loss.pyramid.enabled and cfg.loss.pyramid.mode == "per_level":
        raise ConfigError("train.precision=fp16 does not combine with loss.pyramid.mode=per_level "
                          "(its backward passes run unscaled); use bf16")


def check_cuda_graphs(cfg: ExperimentConfig, device) -> None:
    """train.cuda_graphs captures a step with static shapes and no host reads: CUDA, fp32 / bf16, no disk cache."""
    if not cfg.train.cuda_graphs:
        return
    if device.type != "cuda":
        raise ConfigError(f"train.cuda_graphs=true needs a CUDA device (train.device resolved to {device})")
    if cfg.train.precision == "fp16":
        raise ConfigError("train.cuda_graphs=true does not combine with train.precision=fp16 (its GradScaler "
                          "reads the host every step); use bf16")
    if cfg.model.etm.enabled and cfg.model.etm.pb_schedule != "constant":
        raise ConfigError("train.cuda_graphs=true does not combine with model.etm.pb_schedule="
                          f"{cfg.model.etm.pb_schedule} (a captured step keeps the host's pb_t); use constant")
    if cfg.loss.apx.enabled and cfg.loss.apx.cache_dir:
        raise ConfigError("train.cuda_graphs=true does not combine with loss.apx.cache_dir (the teacher cache "
                          "reads files inside the step); set loss.apx.cache_dir=null")


def check_training_device(cfg: ExperimentConfig) -> None:
    """fp16 and CUDA graphs against the device ``train.device`` resolves to (what the trainer would refuse)."""
    from fadepth.utils import resolve_device

    device = resolve_device(cfg.train.device)
    check_precision(cfg, device)
    check_cuda_graphs(cfg, device)


def check_checkpoint_files(cfg: ExperimentConfig) -> None:
    teacher = cfg.loss.apx.teacher_checkpoint if cfg.loss.apx.enabled else None
    for key, value in (("model.init_checkpoint", cfg.model.init_checkpoint), ("loss.apx.teacher_checkpoint", teacher)):
        if value is not None and not Path(value).expanduser().is_file():
            raise PreflightError(f"{key}: checkpoint file {value!r} not found")


def check_model_name(key: str, name: str, kinds: tuple[str, ...]) -> None:
    from fadepth.models import available

    known = [n for k in kinds for n in available(k)]
    if name not in known:
        raise PreflightError(f"{key}: unknown model {name!r}; expected one of {', '.join(sorted(known))}")


def check_depth_options(cfg: ExperimentConfig) -> None:
    from fadepth.models import architecture_options, entry

    params = inspect.signature(entry(cfg.model.name).builder).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    for option in architecture_options(cfg.model):  # ETM applies to every model (models.create)
        if option not in params:
            key = OPTION_KEYS.get(option, option)
            raise PreflightError(f"{key}: model {cfg.model.name!r} takes no option {option!r} "
                                 f"(its options: {', '.join(params) or 'none'}); remove the key")


def check_device(spec: str, key: str = "--device") -> None:
    """`auto`, `cpu`, `cuda` or `cuda:N` with N a visible GPU."""
    import torch

    if spec in ("auto", "cpu"):
        return
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise PreflightError(f"{key}: {spec!r} is not a device; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PreflightError(f"{key}: {spec!r} requested but CUDA is not available on this machine "
                                 "(use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PreflightError(f"{key}: {spec!r}: this machine has {torch.cuda.device_count()} GPU(s) "
                                 f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")


# ------------------------------------------------------------------------------------ data
def check_run(cfg: ExperimentConfig, train: bool = True) -> None:
    """`check_config`, then the data of the training run (or, with ``train=False``, the test split only)."""
    check_config(cfg)
    if train:
        check_output_folder(cfg.train.out_dir, "train.out_dir")
    if train and cfg.train.iterations > 0:
        size = check_train_split(cfg)
        if size < cfg.train.batch_size:
            raise PreflightError(f"train.batch_size={cfg.train.batch_size}: the training split has only {size} "
                                 f"snippet(s) (frame_ids {cfg.data.frame_ids}); expected a batch size <= {size}")
        if cfg.train.val_every:
            check_test_split(cfg, "val")
    check_test_split(cfg, cfg.eval.split)


def _wrap(key: str, fn, *args, **kwargs):
    """Call a data constructor; a missing file or malformed split becomes one PreflightError line."""
    try:
        return fn(*args, **kwargs)
    except PreflightError:
        raise
    except (FileNotFoundError, NotADirectoryError, KeyError, ValueError, IndexError) as exc:
        raise PreflightError(f"{key}: {str(exc).strip(chr(39) + chr(34))}") from None


def check_train_split(cfg: ExperimentConfig) -> int:
    """Number of training snippets, after checking every file they read."""
    from fadepth.data import build_dataset

    data = cfg.data
    if data.dataset in ("kitti", "ddad"):
        _dataset_root(cfg)
    key = "data.frame_ids" if data.dataset == "synthetic" else "data.split" if data.dataset == "kitti" else "data.path"
    dataset = _wrap(key, build_dataset, data, "train", augment=False)
    if data.dataset == "kitti":
        from fadepth.data.kitti import image_path

        check_files(image_path(dataset.data_path, f, i + k, s, dataset.ext)
                    for f, i, s in dataset.entries for k in data.frame_ids)
    elif data.dataset == "ddad":
        samples = [sc[t + k] for s, t in dataset.index for sc in [dataset.scenes[s]] for k in data.frame_ids]
        check_files(sample["image"] for sample in samples)
        check_files({sample["calib"] for sample in samples})
    return len(dataset)


def check_test_split(cfg: ExperimentConfig, split: str) -> int:
    """Number of evaluation images of `split` ("test" or "val"), after checking every file they read."""
    from fadepth.data import build_test_set, resolve_protocol

    known = ("test", "val") + (("eigen", "eigen_benchmark") if cfg.data.dataset == "kitti" else ())
    if split not in known:  # an unknown name used to evaluate the default split without a word (issue 25)
        raise PreflightError(f"eval split {split!r} is not a split of {cfg.data.dataset}: expected "
                             f"{' or '.join(known)}")
    data, eval_cfg = cfg.data, cfg.eval.model_copy(update={"split": split})
    _wrap("eval.protocol", resolve_protocol, data, eval_cfg)
    if data.dataset in ("kitti", "ddad"):
        _dataset_root(cfg)
    test_set = _wrap("data.split" if data.dataset == "kitti" else "eval", build_test_set, data, eval_cfg)
    if len(test_set) == 0:
        what = "data.synthetic.test_sequences" if data.dataset == "synthetic" else "data.split"
        raise PreflightError(f"{what}: the {split} split has no image to evaluate")
    if data.dataset == "kitti":
        _check_kitti_test(test_set)
    elif data.dataset == "ddad":
        check_files(s["image"] for s in test_set.samples)
        check_files((s["lidar"] for s in test_set.samples), kind="npz")
        check_files({s["calib"] for s in test_set.samples})
    return len(test_set)


def _dataset_root(cfg: ExperimentConfig) -> Path:
    from fadepth.data import dataset_root

    try:
        return dataset_root(cfg.data)
    except FileNotFoundError as exc:  # the loaders' own check, as a pre-flight error
        raise PreflightError(str(exc)) from None


def _check_kitti_test(test_set) -> None:
    from fadepth.data.kitti import benchmark_gt_path, image_path, velo_path, velo_to_image_matrix

    entries = test_set.entries[: len(test_set)]
    root = test_set.data_path
    check_files(image_path(root, f, i, s, test_set.ext) for f, i, s in entries)
    if test_set.gt is not None:
        return
    if test_set.protocol == "eigen_benchmark":
        check_files(benchmark_gt_path(root, f, i) for f, i, _ in entries)
        return
    for date in sorted({f.split("/")[0] for f, _, _ in entries}):
        _wrap("data.path", velo_to_image_matrix, root / date, 2)
    check_files((velo_path(root, f, i) for f, i, _ in entries), kind="velodyne")


# ------------------------------------------------------------------------------------ files
def check_output_file(path: str | Path, flag: str) -> None:
    """An output file we will write later: its folder must exist (or be creatable) and be writable."""
    import os

    path = Path(path).expanduser()
    if path.is_dir():
        raise PreflightError(f"{flag} {str(path)!r} is a folder; expected a file path")
    check_output_folder(path.parent, flag, create=False)
    if path.exists() and not os.access(path, os.W_OK):
        raise PreflightError(f"{flag} {str(path)!r}: file is not writable")


def check_output_folder(path: str | Path, flag: str, create: bool = True) -> None:
    """A folder we will write into: no parent may be a file, the nearest existing one must be writable."""
    import os

    path = Path(path).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"{flag} {str(path)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PreflightError(f"{flag} {str(path)!r}: folder {str(existing)!r} is not writable")


def check_files(paths: Iterable[Path], kind: str = "auto") -> int:
    """Check each file once; raise on the first bad one, saying how many more are bad."""
    seen, bad = set(), []
    for path in paths:
        path = Path(path)
        if path in seen:
            continue
        seen.add(path)
        problem = file_problem(path, kind)
        if problem:
            bad.append(f"{path}: {problem}")
    if bad:
        more = f" (and {len(bad) - 1} more bad file(s) of {len(seen)})" if len(bad) > 1 else ""
        raise PreflightError(bad[0] + more)
    return len(seen)


def file_problem(path: Path, kind: str = "auto") -> str | None:
    """What is wrong with one input file (None if nothing a cheap look can see)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    suffix = path.suffix.lower()
    if kind == "velodyne" or suffix == ".bin":
        if size == 0:
            return "velodyne scan of 0 bytes (expected N x 4 float32 points)"
        if size % 16:
            return f"truncated velodyne scan: {size} bytes is not a multiple of 16 (4 float32 per point)"
        return None
    if size == 0:
        return "empty file (0 bytes)"
    if kind == "npz" or suffix == ".npz":
        import zipfile

        return None if zipfile.is_zipfile(path) else "not an .npz archive"
    if suffix == ".json":
        return None
    return image_problem(path)


def image_problem(path: Path) -> str | None:
    """Header decodable by Pillow, and (PNG / JPEG) the end-of-image marker present (not truncated)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt = img.format
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return f"not a readable image ({type(exc).__name__}: {exc})"
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 64))
        tail = fh.read()
    if fmt == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk at the end)"
    if fmt in ("JPEG", "MPO") and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    return None
