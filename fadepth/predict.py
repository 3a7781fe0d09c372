"""Depth for images, folders and videos: colorized disparity (magma, as the paper's figures) + `.npy`.

For every input frame ``<name>`` the predictor writes ``<name>_disp.png`` (disparity colorized with
magma, clipped at the 95th percentile as monodepth2's test script does) and ``<name>_depth.npy``
(float32 depth of eq. 12, D = 1/(10 disp + 0.01), at the input's own resolution: up to scale, since
monocular self-supervision has no metric scale).  Video frames are named ``<stem>_<index:06d>``.  Inputs
whose stems collide (two KITTI drives' ``0000000001.png``; ``a.png`` beside ``a.jpg``) are named by enough of
their path to keep every output file distinct.  Each file is written whole (a temporary, then one rename); maps
already in the output folder are refused before a model is loaded, unless ``overwrite``.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fadepth.errors import InputError
from fadepth.models import disp_to_depth

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}


@dataclass
class Frame:
    name: str
    rgb: np.ndarray  # H x W x 3 uint8


def colorize(disp: np.ndarray, cmap: str = "magma", percentile: float = 95.0) -> np.ndarray:
    """Map a disparity map to an RGB uint8 image (near = bright)."""
    import matplotlib

    vmin = float(disp.min())
    vmax = float(np.percentile(disp, percentile))
    norm = np.clip((disp - vmin) / max(vmax - vmin, 1e-8), 0.0, 1.0)
    rgba = matplotlib.colormaps[cmap](norm)
    return (rgba[..., :3] * 255).astype(np.uint8)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def list_sources(inputs: Iterable[str | Path]) -> list[Path]:
    """The image and video files of `inputs` (folders expanded, sorted), each checked before anything runs."""
    sources: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})")
            sources += files
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        elif path.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
            sources.append(path)
        else:
            known = ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS))
            raise ValueError(f"{path}: unsupported input type {path.suffix!r}; expected one of {known}")
    for path in sources:
        _check_source(path)
    return sources


def _check_source(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in IMAGE_EXTS:
        from fadepth.preflight import image_problem

        problem = image_problem(path)
        if problem:
            raise InputError(f"{path}: {problem}")


def output_names(paths: Sequence[Path]) -> dict[Path, str]:
    """One output name per input file: its stem, or -- where stems collide (two drives' 0000000001.png,
    a.png beside a.jpg) -- enough of its path to tell it apart (``drive1_image_02_data_0000000001_png``)."""
    names = {p: p.stem for p in paths}
    for depth in range(1, 64):
        counts: dict[str, int] = {}
        for name in names.values():
            counts[name] = counts.get(name, 0) + 1
        clashing = [p for p, n in names.items() if counts[n] > 1]
        if not clashing:
            return names
        for p in clashing:
            parts = p.absolute().parts[1:]
            names[p] = "_".join(parts[-depth:]).replace(".", "_")
    raise InputError("cannot give the inputs unique output names")  # identical absolute paths are deduplicated


def iter_frames(inputs: Iterable[str | Path]) -> Iterator[Frame]:
    """Frames of image files, folders of images (sorted) and video files, in the order given; names unique."""
    sources = list(dict.fromkeys(list_sources(inputs)))
    names = output_names(sources)
    for path in sources:
        if path.suffix.lower() in IMAGE_EXTS:
            yield Frame(names[path], _read_image(path))
            continue
        import imageio.v3 as iio

        try:
            for i, frame in enumerate(iio.imiter(path)):
                yield Frame(f"{names[path]}_{i:06d}", np.asarray(frame)[..., :3])
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{path}: not a readable video ({reason})") from None


@torch.no_grad()
def predict_disparity(full_res_disp: Callable[[torch.Tensor], torch.Tensor], rgb: np.ndarray, height: int,
                      width: int, device: torch.device | str = "cpu") -> np.ndarray:
    """Disparity of one frame: resize to the network size, run `full_res_disp` (image -> disparity at the
    network size: `fadepth.export.FullResolutionDisparity` or an exported file; a raw depth net's output
    dict gives its finest disparity), resize back to the frame."""
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(255.0).unsqueeze(0).to(device)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    out = full_res_disp(x)
    disp = (out["disp"][0] if isinstance(out, dict) else out).to(device)
    disp = F.interpolate(disp, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return disp[0, 0].cpu().numpy()


def count_frames(inputs: Iterable[str | Path]) -> int | None:
    """How many frames `inputs` hold (the progress bar's total); None when a video's length is unknown."""
    total = 0
    for path in dict.fromkeys(list_sources(inputs)):
        if path.suffix.lower() in IMAGE_EXTS:
            total += 1
            continue
        try:  # ffmpeg reports no frame count: fps x duration (an estimate; the bar's total only)
            import imageio.v3 as iio

            meta = iio.immeta(path)
            n = int(round(float(meta["fps"]) * float(meta["duration"])))
        except Exception:  # noqa: BLE001 - unreadable videos are reported by iter_frames
            n = None
        if not n:
            return None
        total += n
    return total


OUTPUT_SUFFIXES = ("_disp.png", "_depth.npy")


def write_predictions(full_res_disp: Callable[[torch.Tensor], torch.Tensor], inputs: Iterable[str | Path],
                      out_dir: str | Path, height: int, width: int, device: torch.device | str = "cpu",
                      progress: bool = False, overwrite: bool = False,
                      say: Callable[[str], None] = print) -> list[Path]:
    """`<name>_disp.png` and `<name>_depth.npy` for every frame of `inputs`; returns the files written.
    Each file is written to a temporary and published whole (:mod:`fadepth.outputs`); without `overwrite` a map
    that appeared meanwhile is not replaced (one line).  `progress`: a tqdm bar over the frames on stderr (its
    total unknown when a video is among the inputs)."""
    from tqdm import tqdm

    from fadepth.outputs import ensure_folder, remove_stale_temps

    out = ensure_folder(out_dir, "--out", say)
    remove_stale_temps(out, say=say)
    written: list[Path] = []
    inputs = list(inputs)
    total = count_frames(inputs) if progress else None
    for frame in tqdm(iter_frames(inputs), total=total, desc="predict", unit="frame", disable=not progress,
                      dynamic_ncols=True, leave=False):
        disp = predict_disparity(full_res_disp, frame.rgb, height, width, device)
        written += write_maps(out, frame.name, disp, overwrite)
    return written


def write_maps(out: Path, name: str, disp: np.ndarray, overwrite: bool) -> list[Path]:
    """The colorized disparity and the depth array of one frame, each published whole."""
    from PIL import Image

    from fadepth.outputs import write_atomic

    png, npy = (out / f"{name}{suffix}" for suffix in OUTPUT_SUFFIXES)
    write_atomic(png, lambda tmp: Image.fromarray(colorize(disp)).save(tmp, format="PNG"), overwrite)
    write_atomic(npy, lambda tmp: np.save(tmp, disp_to_depth(disp).astype(np.float32)), overwrite)
    return [png, npy]


def existing_outputs(sources: Sequence[Path], out_dir: str | Path) -> list[Path]:
    """The map files a prediction of `sources` would write that `out_dir` already holds (a video's: any frame)."""
    out = Path(out_dir).expanduser()
    if not out.is_dir():
        return []
    found: list[Path] = []
    for path, name in output_names(sources).items():
        if path.suffix.lower() in IMAGE_EXTS:
            found += [p for p in (out / f"{name}{suffix}" for suffix in OUTPUT_SUFFIXES) if p.exists()]
        else:
            frames = f"{glob.escape(name)}_{'[0-9]' * 6}"
            found += sorted(p for suffix in OUTPUT_SUFFIXES for p in out.glob(frames + suffix))
    return found


def check_inputs(inputs: Sequence[str | Path], out_dir: str | Path, device: str, overwrite: bool = False) -> None:
    """Every input exists and decodes, `out_dir` can be a folder, holds none of the maps these inputs give
    (unless `overwrite`) and `device` exists: checked before a model is loaded or a file written."""
    from fadepth.preflight import check_device, check_output_folder

    check_device(device)
    check_output_folder(out_dir, "--out")
    sources = list(dict.fromkeys(list_sources(inputs)))
    found = [] if overwrite else existing_outputs(sources, out_dir)
    if found:
        raise InputError(f"--out {out_dir}: {found[0]} exists ({len(found)} map file(s) of these inputs are "
                         "there already); pass --overwrite to replace them, or choose another --out")


def predict(checkpoint: str | Path, inputs: Sequence[str | Path], out_dir: str | Path,
            device: str = "auto", progress: bool = False, overwrite: bool = False) -> list[Path]:
    """Run a trained checkpoint's deployed depth net (ETM / BN folded) on `inputs`; returns the files written."""
    from fadepth.models import load_model
    from fadepth.export import deployed_module
    from fadepth.utils import resolve_device

    check_inputs(inputs, out_dir, device, overwrite)
    dev = resolve_device(device)
    depth_net, cfg = load_model(checkpoint, dev)
    model = deployed_module(depth_net).to(dev)
    return write_predictions(model, inputs, out_dir, cfg.data.height, cfg.data.width, dev, progress, overwrite)


def predict_exported(model_file: str | Path, inputs: Sequence[str | Path], out_dir: str | Path,
                     device: str = "auto", progress: bool = False, overwrite: bool = False) -> list[Path]:
    """The same outputs from a file written by `fadepth export`: ONNX through ONNX Runtime (CUDA provider
    when present), TorchScript through torch.jit."""
    from fadepth.export import ExportedModel

    check_inputs(inputs, out_dir, device, overwrite)
    model = ExportedModel(model_file, device)
    return write_predictions(model, inputs, out_dir, model.height, model.width, "cpu", progress, overwrite)
