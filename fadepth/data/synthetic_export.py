"""Write synthetic sequences in the KITTI raw layout, so the whole KITTI path runs on them.

Per sequence ``s`` (drive number ``first_drive + s``)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
    <root>/<date>/<date>_drive_<NNNN>_sync/image_02/data/%010d.png
    <root>/<date>/<date>_drive_<NNNN>_sync/velodyne_points/data/%010d.bin   (float32 x, y, z, reflectance)
    <root>/splits/<split_name>_files.txt    lines '<date>/<drive> %010d l'

Calibration: the rendered camera is the rectified camera 2.  ``R_rect_00`` is the identity,
``P_rect_02 = K [I | (b, 0, 0)]`` (b = 0.06 m, KITTI-like stereo offset of camera 2 from camera 0),
velo -> cam0 is the exact axis permutation (velo x forward, y left, z up) with the LiDAR 8 cm above
and 0 m ahead of the camera, so the LiDAR forward coordinate equals the camera-2 z-depth and the
Eigen export (``vel_depth=True``) reproduces the true depth exactly.  LiDAR points are true 3-D
points back-projected from pixel centres of the rendered depth (a random ``lidar_fraction`` of the
valid pixels) plus a few points behind the car and outside the field of view, which the Eigen
export must drop.  Note that the Eigen export's -1 pixel offset puts the depth of pixel (i, j) at
(i-1, j-1) of the exported map.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

BASELINE_02 = 0.06
VELO_T = np.array([0.0, -0.08, 0.0])
VELO_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # velo (x fwd, y left, z up) -> cam


def _fmt(values) -> str:
    return " ".join(f"{v:.12e}" for v in np.ravel(values))


def write_calibration(date_dir: Path, K: np.ndarray, height: int, width: int) -> None:
    date_dir.mkdir(parents=True, exist_ok=True)
    P2 = np.hstack([K, K @ np.array([[BASELINE_02], [0.0], [0.0]])])
    P0 = np.hstack([K, np.zeros((3, 1))])
    size = _fmt([width, height])
    cam = [
        "calib_time: 01-Jan-2000 00:00:00 (fadepth synthetic)",
        f"S_rect_00: {size}", f"R_rect_00: {_fmt(np.eye(3))}", f"P_rect_00: {_fmt(P0)}",
        f"S_rect_02: {size}", f"R_rect_02: {_fmt(np.eye(3))}", f"P_rect_02: {_fmt(P2)}",
    ]
    (date_dir / "calib_cam_to_cam.txt").write_text("\n".join(cam) + "\n")
    velo = ["calib_time: 01-Jan-2000 00:00:00 (fadepth synthetic)", f"R: {_fmt(VELO_R)}", f"T: {_fmt(VELO_T)}"]
    (date_dir / "calib_velo_to_cam.txt").write_text("\n".join(velo) + "\n")
    imu = ["calib_time: 01-Jan-2000 00:00:00 (fadepth synthetic)", f"R: {_fmt(np.eye(3))}", f"T: {_fmt(np.zeros(3))}"]
    (date_dir / "calib_imu_to_velo.txt").write_text("\n".join(imu) + "\n")


def lidar_points(depth: np.ndarray, K: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) float32 velodyne points (x, y, z, reflectance) sampled from a camera-2 depth map."""
    i, j = np.nonzero(depth > 0)
    pick = rng.random(len(i)) < fraction
    i, j = i[pick], j[pick]
    z = depth[i, j].astype(np.float64)
    cam2 = np.linalg.inv(K) @ np.stack([j, i, np.ones_like(j)]).astype(np.float64) * z
    cam0 = cam2 - np.array([[BASELINE_02], [0.0], [0.0]])  # R_rect_00 = I
    velo = VELO_R.T @ (cam0 - VELO_T[:, None])
    behind = np.stack([-rng.uniform(1, 30, 50), rng.uniform(-10, 10, 50), rng.uniform(-1.7, 1, 50)])
    beside = np.stack([rng.uniform(0.5, 3, 50), rng.uniform(15, 40, 50) * rng.choice([-1, 1], 50),
                       rng.uniform(-1.7, 1, 50)])
    xyz = np.concatenate([velo, behind, beside], 1).T
    refl = rng.uniform(0, 1, (len(xyz), 1))
    return np.hstack([xyz, refl]).astype(np.float32)


def write_kitti_layout(root, scenes, date: str = "2011_09_26", first_drive: int = 1, lidar_fraction: float = 0.05,
                       seed: int = 0, split_name: str | None = None, interior_only: bool | None = None) -> Path:
    """Write every sequence of `scenes` (a SyntheticScenes); returns the split file written.

    ``split_name`` defaults to the scenes' split; ``interior_only`` (default: not a test split)
    leaves the first and last frame of every drive out of the split file, as eigen_zhou does.
    """
    root = Path(root)
    date_dir = root / date
    write_calibration(date_dir, scenes.K, scenes.height, scenes.width)
    split_name = split_name or scenes.split
    interior = (split_name != "test") if interior_only is None else interior_only
    lines = []
    for seq in range(scenes.num_sequences):
        drive = f"{date}_drive_{first_drive + seq:04d}_sync"
        image_dir = date_dir / drive / "image_02" / "data"
        velo_dir = date_dir / drive / "velodyne_points" / "data"
        image_dir.mkdir(parents=True, exist_ok=True)
        velo_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, seq])
        for frame in range(scenes.frames_per_sequence):
            f = scenes.render(seq, frame)
            Image.fromarray(np.round(f.image * 255).astype(np.uint8)).save(image_dir / f"{frame:010d}.png")
            lidar_points(f.depth, f.K, lidar_fraction, rng).tofile(velo_dir / f"{frame:010d}.bin")
            if not interior or 0 < frame < scenes.frames_per_sequence - 1:
                lines.append(f"{date}/{drive} {frame:010d} l")
    split_path = root / "splits" / f"{split_name}_files.txt"
    split_path.parent.mkdir(parents=True, exist_ok=True)
    split_path.write_text("\n".join(lines) + "\n")
    return split_path
