"""KITTI raw: calibration, Eigen ground truth (as monodepth2 / the Eigen protocol export it), datasets.

Layout (``data_path`` = the KITTI raw root)::

    <date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <date>/<date>_drive_<NNNN>_sync/image_02/data/%010d.png|.jpg     (left colour camera; image_03 right)
    <date>/<date>_drive_<NNNN>_sync/velodyne_points/data/%010d.bin   (float32 x, y, z, reflectance)
    <date>/<date>_drive_<NNNN>_sync/proj_depth/groundtruth/image_02/%010d.png   (eigen_benchmark only,
        from the KITTI depth benchmark's annotated archive, uint16 depth * 256)

Split lines: ``<date>/<drive> <frame index> <l|r>`` (index parsed with int(); l -> image_02, r -> 03).

Eigen GT (``generate_depth_map``): LiDAR points (reflectance replaced by 1) with forward coordinate
x < 0 are dropped; the rest are mapped by ``P_rect_0<cam> @ R_rect_00 @ [R|T]_velo->cam``, divided by
the third row, rounded (``np.round``, half to even) and shifted by -1 pixel (the devkit's MATLAB
1-based convention, kept as in the Eigen / monodepth2 export); points outside the ``S_rect_02``-sized
image are dropped; several points on one pixel keep the smallest depth.  With ``vel_depth=True``
(the Eigen export) the stored depth is the LiDAR forward coordinate x, not the camera z.

Training intrinsics are monodepth2's normalised fx = 0.58, fy = 1.92, cx = cy = 0.5 at (H, W) through
``fadepth.geometry.pixel_intrinsics``: fx W, fy H, and the principal point at the image centre in pixel-centre
coordinates, ((W - 1) / 2, (H - 1) / 2) (monodepth2 multiplies cx by W, 0.5 px off centre in its own pixel
grid); images are resized to (H, W) with Lanczos.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fadepth.geometry import pixel_intrinsics
from fadepth.errors import InputError

from .transforms import generator_from_global

SPLITS_DIR = Path(__file__).parent / "splits"
SIDE_TO_CAM = {"l": 2, "r": 3, "2": 2, "3": 3}
NORMALISED_K = np.array([[0.58, 0, 0.5], [0, 1.92, 0.5], [0, 0, 1]])


# --------------------------------------------------------------------------------- calibration / GT
def read_calib_file(path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``key: numbers`` lines -> {key: float64 array}; non-numeric lines (calib_time) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    data: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        try:
            data[key.strip()] = np.array([float(x) for x in value.split()])
        except ValueError:
            continue
    missing = [k for k in required if k not in data]
    if missing:
        raise KeyError(f"{path}: missing key(s) {', '.join(missing)}")
    return data


def load_velodyne_points(path) -> np.ndarray:
    """(N, 4) float64 homogeneous LiDAR points (x forward, y left, z up; 4th column set to 1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"velodyne scan not found: {path} (expected <drive>/velodyne_points/data/%010d.bin)")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: velodyne scan of 0 bytes (expected N x 4 float32 points)")
    if size % 16:
        raise InputError(f"{path}: truncated velodyne scan ({size} bytes is not a multiple of 16 = 4 float32 per point)")
    points = np.fromfile(path, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    points[:, 3] = 1.0
    return points


def velo_to_image_matrix(calib_dir, cam: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """(3, 4) matrix P_rect_0<cam> @ R_rect_00 @ velo->cam, and the image shape (H, W) from S_rect_02."""
    calib_dir = Path(calib_dir)
    cam2cam = read_calib_file(calib_dir / "calib_cam_to_cam.txt", ("R_rect_00", f"P_rect_0{cam}", "S_rect_02"))
    velo2cam = read_calib_file(calib_dir / "calib_velo_to_cam.txt", ("R", "T"))
    rigid = np.eye(4)
    rigid[:3, :3], rigid[:3, 3] = velo2cam["R"].reshape(3, 3), velo2cam["T"]
    rect = np.eye(4)
    rect[:3, :3] = cam2cam["R_rect_00"].reshape(3, 3)
    P = cam2cam[f"P_rect_0{cam}"].reshape(3, 4) @ rect @ rigid
    width, height = cam2cam["S_rect_02"].astype(np.int64)
    return P, (int(height), int(width))


def generate_depth_map(calib_dir, velo_path, cam: int = 2, vel_depth: bool = True, shape=None) -> np.ndarray:
    """Eigen-protocol sparse depth (H, W) float64 from one LiDAR scan (see the module docstring).

    ``shape`` (H, W) overrides the image shape read from ``S_rect_02``.
    """
    P, im_shape = velo_to_image_matrix(calib_dir, cam)
    height, width = shape if shape is not None else im_shape
    velo = load_velodyne_points(velo_path)
    velo = velo[velo[:, 0] >= 0]
    proj = velo @ P.T
    z = velo[:, 0] if vel_depth else proj[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(proj[:, 0] / proj[:, 2]) - 1
        v = np.round(proj[:, 1] / proj[:, 2]) - 1
        keep = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, z = u[keep].astype(np.int64), v[keep].astype(np.int64), z[keep]
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v * width + u, z)  # duplicates: the nearest point wins
    depth[~np.isfinite(depth)] = 0.0
    depth[depth < 0] = 0.0
    return depth.reshape(height, width)


# ------------------------------------------------------------------------------------ splits
def split_file(split: str, which: str) -> Path:
    """`split` = a name shipped in fadepth/data/splits, a folder holding <which>_files.txt, or a file."""
    path = Path(split).expanduser()
    if path.is_file():
        return path
    folder = path if path.is_dir() else SPLITS_DIR / split
    target = folder / f"{which}_files.txt"
    if not target.is_file():
        hint = ""
        if split in ("eigen_zhou", "eigen_full"):
            hint = f" -- copy monodepth2's splits/{split}/{which}_files.txt there (see {SPLITS_DIR / 'README.md'})"
        raise FileNotFoundError(f"split file not found: {target}{hint}")
    return target


def read_split(path) -> list[tuple[str, int, str]]:
    """Lines ``<date>/<drive> <frame> <l|r>`` -> [(folder, frame index, side)]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in SIDE_TO_CAM):
            raise ValueError(f"{path}:{n}: expected '<date>/<drive> <frame> <l|r>', got {line!r}")
        try:
            frame = int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            raise ValueError(f"{path}:{n}: frame index {parts[1]!r} is not an integer") from None
        entries.append((parts[0], frame, parts[2] if len(parts) == 3 else "l"))
    if not entries:
        raise ValueError(f"split file {path} is empty (expected lines '<date>/<drive> <frame> <l|r>')")
    return entries


# ------------------------------------------------------------------------------------ GT export
def velo_path(data_path, folder: str, frame: int) -> Path:
    return Path(data_path) / folder / "velodyne_points" / "data" / f"{frame:010d}.bin"


def benchmark_gt_path(data_path, folder: str, frame: int) -> Path:
    return Path(data_path) / folder / "proj_depth" / "groundtruth" / "image_02" / f"{frame:010d}.png"


def read_benchmark_depth(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"annotated depth not found: {path} (eigen_benchmark needs the KITTI depth benchmark's "
            "proj_depth/groundtruth/image_02 PNGs merged into the raw tree)")
    return np.asarray(Image.open(path), dtype=np.float32) / 256.0


def gt_depth(data_path, folder: str, frame: int, benchmark: bool = False) -> np.ndarray:
    """One GT map (float32, native resolution) as monodepth2's export_gt_depth computes it."""
    if benchmark:
        return read_benchmark_depth(benchmark_gt_path(data_path, folder, frame))
    calib_dir = Path(data_path) / folder.split("/")[0]
    return generate_depth_map(calib_dir, velo_path(data_path, folder, frame), 2, True).astype(np.float32)


def export_gt_depths(data_path, split_file, out_npz, benchmark: bool = False) -> Path:
    """Write monodepth2's ``gt_depths.npz``: key ``data``, an object array of float32 maps."""
    entries = read_split(split_file)
    maps = [gt_depth(data_path, folder, frame, benchmark) for folder, frame, _ in entries]
    data = np.empty(len(maps), dtype=object)
    data[:] = maps
    out = Path(out_npz)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, data=data)
    return out


def load_gt_depths(path) -> list[np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GT file not found: {path} (create it with `fadepth kitti export-gt`)")
    with np.load(path, allow_pickle=True) as npz:
        if "data" not in npz:
            raise KeyError(f"{path}: no key 'data' (expected monodepth2's gt_depths.npz format)")
        return [np.asarray(m, dtype=np.float32) for m in npz["data"]]


# ------------------------------------------------------------------------------------ datasets
def kitti_intrinsics(height: int, width: int) -> np.ndarray:
    """monodepth2's normalised KITTI K in pixels at (height, width): cx = (W - 1) / 2 (``pixel_intrinsics``)."""
    return pixel_intrinsics(NORMALISED_K, height, width)


def image_path(data_path, folder: str, frame: int, side: str, ext: str = ".png") -> Path:
    return Path(data_path) / folder / f"image_0{SIDE_TO_CAM[side]}" / "data" / f"{frame:010d}{ext}"


def load_image(path, height: int, width: int) -> torch.Tensor:
    """(3, H, W) float in [0, 1], Lanczos-resized like monodepth2."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI image not found: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((width, height), Image.LANCZOS)
    except OSError as exc:  # PIL's "image file is truncated" names no file
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _check_folders(data_path: Path, entries, ext: str) -> None:
    if not Path(data_path).is_dir():
        raise FileNotFoundError(f"KITTI root not found: {data_path}")
    for folder in sorted({(f, s) for f, _, s in entries}):
        cam_dir = image_path(data_path, folder[0], 0, folder[1], ext).parent
        if not cam_dir.is_dir():
            raise FileNotFoundError(
                f"KITTI drive folder missing: {cam_dir} (expected <date>/<drive>/image_0X/data/%010d{ext} "
                "as unpacked from the KITTI raw archives)")


class KittiRawDataset(Dataset):
    """3-frame snippets (``frame_ids``, e.g. [0, -1, 1]) around each split line.

    Sequence edges are handled as monodepth2 handles them: not at all in the loader -- its split
    files (eigen_zhou, eigen_full) never list the first or last frame of a drive, so every
    neighbour exists.  A split listing an edge frame fails on that sample with a FileNotFoundError
    naming the missing neighbour image.
    """

    def __init__(self, data_path, entries, height: int, width: int, frame_ids=(0, -1, 1), augment=None,
                 image_ext: str = ".png"):
        self.data_path, self.entries = Path(data_path), list(entries)
        self.height, self.width, self.frame_ids = int(height), int(width), list(frame_ids)
        self.augment, self.ext = augment, image_ext
        _check_folders(self.data_path, self.entries, image_ext)
        self.K = torch.from_numpy(kitti_intrinsics(self.height, self.width)).float()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        folder, frame, side = self.entries[i]
        images = []
        for k in self.frame_ids:
            path = image_path(self.data_path, folder, frame + k, side, self.ext)
            if not path.is_file():
                raise FileNotFoundError(
                    f"KITTI image not found: {path} (frame {frame}{k:+d} of the snippet {self.frame_ids} "
                    f"around split line '{folder} {frame} {side}'; splits must not list sequence-edge frames)")
            images.append(load_image(path, self.height, self.width))
        images, K = torch.stack(images), self.K.clone()
        sample = {"images": images, "K": K, "id": f"{folder} {frame:010d} {side}"}
        if self.augment is not None:
            sample.update(self.augment(images, K, None, generator_from_global()).sample_fields())
        return sample


class KittiTestSet:
    """Eigen / eigen_benchmark test images (network size) with native-resolution GT.

    GT comes from ``gt_path`` (monodepth2's gt_depths.npz), else from ``gt_depths.npz`` beside the
    test list (``fadepth/data/splits/<protocol>/`` or ``split_path``'s folder) if present, else is computed on the fly per
    item (LiDAR projection for eigen, annotated PNGs for eigen_benchmark).
    """

    def __init__(self, data_path, protocol: str = "eigen", height: int = 192, width: int = 640, gt_path=None,
                 max_images: int | None = None, image_ext: str = ".png", split_path=None):
        self.data_path, self.protocol = Path(data_path), protocol
        self.height, self.width, self.ext = int(height), int(width), image_ext
        self.entries = read_split(split_path or SPLITS_DIR / protocol / "test_files.txt")
        default_gt = (Path(split_path).parent if split_path else SPLITS_DIR / protocol) / "gt_depths.npz"
        gt_path = gt_path or (default_gt if default_gt.is_file() else None)
        self.gt = load_gt_depths(gt_path) if gt_path else None
        if self.gt is not None and len(self.gt) != len(self.entries):
            raise ValueError(f"{gt_path}: {len(self.gt)} GT maps for {len(self.entries)} {protocol} test images")
        self.n = len(self.entries) if max_images is None else min(max_images, len(self.entries))
        _check_folders(self.data_path, self.entries[: self.n], image_ext)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        folder, frame, side = self.entries[i]
        image = load_image(image_path(self.data_path, folder, frame, side, self.ext), self.height, self.width)
        gt = self.gt[i] if self.gt is not None else gt_depth(
            self.data_path, folder, frame, benchmark=self.protocol == "eigen_benchmark")
        return {"image": image, "gt": gt, "id": f"{folder} {frame:010d} {side}"}
