"""Depth for images, folders and videos: colorized disparity (magma, as the paper's figures) + `.npy`.

For every input frame ``<name>`` the predictor writes ``<name>_disp.png`` (disparity colorized with
magma, clipped at the 95th percentile as monodepth2's test script does) and ``<name>_depth.npy``
(float32 depth of eq. 12, D = 1/(10 disp + 0.01), at the input's own resolution: up to scale, since
monocular self-supervision has no metric scale).  Video frames are named ``<stem>_<index:06d>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

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

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def iter_frames(inputs: Iterable[str | Path]) -> Iterator[Frame]:
    """Frames of image files, folders of images (sorted) and video files, in the order given."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})")
            for f in files:
                yield Frame(f.stem, _read_image(f))
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        elif path.suffix.lower() in IMAGE_EXTS:
            yield Frame(path.stem, _read_image(path))
        elif path.suffix.lower() in VIDEO_EXTS:
            import imageio.v3 as iio

            for i, frame in enumerate(iio.imiter(path)):
                yield Frame(f"{path.stem}_{i:06d}", np.asarray(frame)[..., :3])
        else:
            known = ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS))
            raise ValueError(f"{path}: unsupported input type {path.suffix!r}; expected one of {known}")


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


def write_predictions(full_res_disp: Callable[[torch.Tensor], torch.Tensor], inputs: Iterable[str | Path],
                      out_dir: str | Path, height: int, width: int, device: torch.device | str = "cpu") -> list[Path]:
    """`<name>_disp.png` and `<name>_depth.npy` for every frame of `inputs`; returns the files written."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for frame in iter_frames(inputs):
        disp = predict_disparity(full_res_disp, frame.rgb, height, width, device)
        png = out / f"{frame.name}_disp.png"
        npy = out / f"{frame.name}_depth.npy"
        Image.fromarray(colorize(disp)).save(png)
        np.save(npy, disp_to_depth(disp).astype(np.float32))
        written += [png, npy]
    return written


def predict(checkpoint: str | Path, inputs: Iterable[str | Path], out_dir: str | Path,
            device: str = "auto") -> list[Path]:
    """Run a trained checkpoint's deployed depth net (ETM / BN folded) on `inputs`; returns the files written."""
    from fadepth.checkpoint import load_model
    from fadepth.export import deployed_module
    from fadepth.utils import resolve_device

    dev = resolve_device(device)
    depth_net, cfg = load_model(checkpoint, dev)
    model = deployed_module(depth_net).to(dev)
    return write_predictions(model, inputs, out_dir, cfg.data.height, cfg.data.width, dev)


def predict_exported(model_file: str | Path, inputs: Iterable[str | Path], out_dir: str | Path,
                     device: str = "auto") -> list[Path]:
    """The same outputs from a file written by `fadepth export`: ONNX through ONNX Runtime (CUDA provider
    when present), TorchScript through torch.jit."""
    from fadepth.export import ExportedModel

    model = ExportedModel(model_file, device)
    return write_predictions(model, inputs, out_dir, model.height, model.width, "cpu")
