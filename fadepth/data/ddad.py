"""DDAD (TRI-ML) read from its official DGP on-disk layout; front camera CAMERA_01.

Expected layout (``root`` = the unpacked ``ddad_train_val`` folder)::

    <root>/ddad.json                         (optional) scene dataset: {"scene_splits": {"0": {"filenames":
                                             [".../scene_<hash>.json", ...]}, "1": {...}}}, 0 = train, 1 = val
    <root>/<scene>/scene_<hash>.json         {"samples": [{"datum_keys": [...], "calibration_key": "..."}],
                                              "data": [{"key": "...", "id": {"name": "CAMERA_01", ...},
                                                        "datum": {"image": {"filename": "rgb/CAMERA_01/<t>.png"}}
                                                                  | {"point_cloud": {"filename": "point_cloud/LIDAR/<t>.npz"}}}]}
    <root>/<scene>/rgb/CAMERA_01/<timestamp>.png
    <root>/<scene>/point_cloud/LIDAR/<timestamp>.npz          key "data": (N, >=3) x, y, z in the LiDAR frame
    <root>/<scene>/calibration/<calibration_key>.json         {"names": [...], "intrinsics": [{"fx", "fy", "cx",
                                                               "cy", ...}], "extrinsics": [{"translation": {"x","y","z"},
                                                               "rotation": {"qx","qy","qz","qw"}}]}

Extrinsics are sensor-to-vehicle poses, so LiDAR -> camera = inv(E_cam) @ E_lidar.  Field names are
read in snake_case (DGP writes them so) with the camelCase protobuf-JSON spelling accepted too.
Without ``ddad.json`` every scene folder is used for every split.  GT: LiDAR points projected into
CAMERA_01 at native resolution (1216 x 1936), pixel centres at integer coordinates (nearest pixel),
nearest point wins, depth = camera z, kept in (0, 200] m (the DDAD 200 m cap), 0 = invalid.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fadepth.geometry import scale_intrinsics
from fadepth.errors import InputError

from .transforms import generator_from_global

CAMERA, LIDAR, MAX_DEPTH = "CAMERA_01", "LIDAR", 200.0
SPLIT_IDS = {"train": "0", "val": "1", "test": "1"}


def _get(d: dict, key: str, where):
    """d[key] accepting the camelCase spelling; KeyError names the file and the key."""
    camel = key.split("_")[0] + "".join(w.title() for w in key.split("_")[1:])
    for k in (key, camel):
        if isinstance(d, dict) and k in d:
            return d[k]
    raise KeyError(f"{where}: missing key {key!r}")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"DDAD file not found: {path}")
    return json.loads(path.read_text())


def quat_to_matrix(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    q = np.array([qw, qx, qy, qz], np.float64)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def pose_to_matrix(pose: dict, where) -> np.ndarray:
    t, r = _get(pose, "translation", where), _get(pose, "rotation", where)
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(*(float(r.get(k, 0.0)) for k in ("qx", "qy", "qz", "qw")))
    T[:3, 3] = [float(t.get(k, 0.0)) for k in ("x", "y", "z")]
    return T


def read_calibration(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{sensor name: (K 3x3, sensor-to-vehicle 4x4)}."""
    calib = _read_json(path)
    names, intr, extr = (_get(calib, k, path) for k in ("names", "intrinsics", "extrinsics"))
    out = {}
    for name, i, e in zip(names, intr, extr):
        K = np.array([[float(i.get("fx", 0)), 0, float(i.get("cx", 0))], [0, float(i.get("fy", 0)), float(i.get("cy", 0))],
                      [0, 0, 1.0]])
        out[name] = (K, pose_to_matrix(e, path))
    for name in (CAMERA, LIDAR):
        if name not in out:
            raise KeyError(f"{path}: sensor {name!r} not in 'names' ({names})")
    return out


def project_lidar(points: np.ndarray, K: np.ndarray, lidar_to_cam: np.ndarray, shape) -> np.ndarray:
    """Sparse (H, W) float32 depth (camera z, nearest point per pixel, (0, 200] m, 0 = invalid)."""
    height, width = shape
    cam = points[:, :3] @ lidar_to_cam[:3, :3].T + lidar_to_cam[:3, 3]
    cam = cam[(cam[:, 2] > 0) & (cam[:, 2] <= MAX_DEPTH)]
    u = np.round(K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]).astype(np.int64)
    v = np.round(K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]).astype(np.int64)
    keep = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v[keep] * width + u[keep], cam[keep, 2])
    depth[~np.isfinite(depth)] = 0.0
    return depth.reshape(height, width).astype(np.float32)


def _scene_files(root: Path, split: str) -> list[Path]:
    index = root / "ddad.json"
    if index.is_file():
        splits = _get(_read_json(index), "scene_splits", index)
        entry = splits.get(SPLIT_IDS[split]) or splits.get(int(SPLIT_IDS[split]))
        if entry is None:
            raise KeyError(f"{index}: no scene split {SPLIT_IDS[split]!r} ({split})")
        return [root / f for f in _get(entry, "filenames", index)]
    files = sorted(root.glob("*/scene_*.json"))
    if not files:
        raise FileNotFoundError(f"no DDAD scenes under {root} (expected <scene>/scene_<hash>.json, see fadepth.data.ddad)")
    return files


def _read_scene(path: Path) -> list[dict]:
    """One dict per sample: camera image path, LiDAR npz path, calibration path."""
    scene = _read_json(path)
    data = {d["key"]: d for d in _get(scene, "data", path)}
    samples = []
    for sample in _get(scene, "samples", path):
        found = {}
        for key in _get(sample, "datum_keys", path):
            datum = data.get(key)
            if datum is None:
                raise KeyError(f"{path}: datum key {key!r} not in 'data'")
            name = _get(_get(datum, "id", path), "name", path)
            value = _get(datum, "datum", path)
            kind = "image" if "image" in value else "point_cloud"
            if name in (CAMERA, LIDAR):
                found[name] = path.parent / _get(value[kind], "filename", path)
        if CAMERA in found and LIDAR in found:
            calib = path.parent / "calibration" / f"{_get(sample, 'calibration_key', path)}.json"
            samples.append({"image": found[CAMERA], "lidar": found[LIDAR], "calib": calib})
    return samples


def load_sample_gt(sample: dict) -> np.ndarray:
    calib = read_calibration(sample["calib"])
    K, cam_pose = calib[CAMERA]
    lidar_to_cam = np.linalg.inv(cam_pose) @ calib[LIDAR][1]
    if not sample["lidar"].is_file():
        raise FileNotFoundError(f"DDAD point cloud not found: {sample['lidar']}")
    with np.load(sample["lidar"]) as npz:
        if "data" not in npz:
            raise KeyError(f"{sample['lidar']}: no key 'data' (expected (N, >=3) x, y, z)")
        points = npz["data"]
    with Image.open(sample["image"]) as img:
        shape = (img.height, img.width)
    return project_lidar(points.astype(np.float64), K, lidar_to_cam, shape)


def _load_image(path: Path, height: int, width: int) -> tuple[torch.Tensor, tuple[int, int]]:
    if not path.is_file():
        raise FileNotFoundError(f"DDAD image not found: {path}")
    try:
        with Image.open(path) as img:
            native = (img.height, img.width)
            img = img.convert("RGB").resize((width, height), Image.LANCZOS)
    except OSError as exc:  # PIL's "image file is truncated" names no file
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    return torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1).contiguous(), native


class DDADDataset(Dataset):
    """CAMERA_01 snippets ``frame_ids`` within a scene (sample order = time); scene edges are not targets."""

    def __init__(self, root, split: str, height: int = 384, width: int = 640, frame_ids=(0, -1, 1), augment=None):
        self.root, self.height, self.width = Path(root), int(height), int(width)
        self.frame_ids, self.augment = list(frame_ids), augment
        self.scenes = [_read_scene(p) for p in _scene_files(self.root, split)]
        lo, hi = -min(self.frame_ids + [0]), max(self.frame_ids + [0])
        self.index = [(s, i) for s, sc in enumerate(self.scenes) for i in range(lo, len(sc) - hi)]
        if not self.index:
            raise ValueError(f"DDAD {split} under {self.root}: no sample has all neighbours {self.frame_ids}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, t = self.index[i]
        frames = [_load_image(self.scenes[s][t + k]["image"], self.height, self.width) for k in self.frame_ids]
        images, (h0, w0) = torch.stack([f[0] for f in frames]), frames[0][1]
        K = torch.from_numpy(read_calibration(self.scenes[s][t]["calib"])[CAMERA][0]).float()
        K = scale_intrinsics(K, self.width / w0, self.height / h0)
        sample = {"images": images, "K": K, "id": str(self.scenes[s][t]["image"].relative_to(self.root))}
        if self.augment is not None:
            sample.update(self.augment(images, K, None, generator_from_global()).sample_fields())
        return sample


class DDADTestSet:
    """Val samples: image at (H, W), GT = projected LiDAR at native resolution; protocol 'ddad'."""

    protocol = "ddad"

    def __init__(self, root, height: int = 384, width: int = 640, max_images: int | None = None, split: str = "val"):
        self.root, self.height, self.width = Path(root), int(height), int(width)
        self.samples = [s for p in _scene_files(self.root, split) for s in _read_scene(p)]
        if max_images is not None:
            self.samples = self.samples[:max_images]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        image, _ = _load_image(sample["image"], self.height, self.width)
        return {"image": image, "gt": load_sample_gt(sample), "id": str(sample["image"].relative_to(self.root))}
