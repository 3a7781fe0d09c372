"""DDAD reader on a tiny fixture written in the DGP layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fadepth.config import DataConfig, EvalConfig
from fadepth.data import build_dataset, build_test_set
from fadepth.data import ddad

H0, W0 = 40, 64
# camera -> vehicle rotation (vehicle x forward, y left, z up; camera x right, y down, z forward)
R_VC = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
CAM_Q = {"qx": -0.5, "qy": 0.5, "qz": -0.5, "qw": 0.5}  # hand-computed quaternion of R_VC


def _write_scene(root, camel: bool = False, n: int = 3):
    scene_dir = root / "000000"
    for sub in ("rgb/CAMERA_01", "point_cloud/LIDAR", "calibration"):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    key = (lambda s: s.split("_")[0] + "".join(w.title() for w in s.split("_")[1:])) if camel else (lambda s: s)
    calib = {"names": ["CAMERA_01", "LIDAR"],
             "intrinsics": [{"fx": 50.0, "fy": 50.0, "cx": 32.0, "cy": 20.0, "skew": 0.0}, {}],
             "extrinsics": [{"translation": {"x": 1.5, "y": 0.0, "z": 1.6}, "rotation": CAM_Q},
                            {"translation": {"x": 0.0, "y": 0.0, "z": 1.8}, "rotation": {"qw": 1.0}}]}
    (scene_dir / "calibration" / "c0ffee.json").write_text(json.dumps(calib))
    # vehicle-frame points -> LiDAR frame (LiDAR 1.8 m above the vehicle origin, no rotation)
    vehicle = np.array([[11.5, 0, 1.6], [21.5, -2, 0.8], [250, 0, 1.6], [-5, 0, 1.6]])
    lidar = np.hstack([vehicle - [0, 0, 1.8], np.ones((4, 1))]).astype(np.float32)
    samples, data = [], []
    for t in range(n):
        stamp = str(1000 + t)
        Image.fromarray(np.full((H0, W0, 3), 40 * t, np.uint8)).save(scene_dir / "rgb/CAMERA_01" / f"{stamp}.png")
        np.savez(scene_dir / "point_cloud/LIDAR" / f"{stamp}.npz", data=lidar)
        data.append({"key": f"cam{t}", "id": {"name": "CAMERA_01", "timestamp": stamp},
                     "datum": {"image": {"filename": f"rgb/CAMERA_01/{stamp}.png"}}})
        data.append({"key": f"lid{t}", "id": {"name": "LIDAR", "timestamp": stamp},
                     "datum": {"point_cloud": {"filename": f"point_cloud/LIDAR/{stamp}.npz"}}})
        samples.append({key("datum_keys"): [f"cam{t}", f"lid{t}"], key("calibration_key"): "c0ffee"})
    (scene_dir / "scene_abc.json").write_text(json.dumps({"name": "000000", "samples": samples, "data": data}))
    return scene_dir


def test_quaternion_convention():
    np.testing.assert_allclose(ddad.quat_to_matrix(**CAM_Q), R_VC, atol=1e-12)


@pytest.mark.parametrize("camel", [False, True])
def test_test_set_gt_projection(tmp_path, camel):
    _write_scene(tmp_path, camel=camel)
    test = build_test_set(DataConfig(dataset="ddad", path=str(tmp_path), height=32, width=48), EvalConfig())
    assert test.protocol == "ddad" and len(test) == 3
    item = test[0]
    assert item["image"].shape == (3, 32, 48) and item["gt"].shape == (H0, W0) and item["gt"].dtype == np.float32
    gt = item["gt"]
    # (11.5, 0, 1.6) -> camera (0, 0, 10) -> pixel (row 20, col 32); (21.5, -2, 0.8) -> (2, 0.8, 20) -> (22, 37)
    assert gt[20, 32] == pytest.approx(10.0) and gt[22, 37] == pytest.approx(20.0)
    assert np.count_nonzero(gt) == 2  # 250 m (over the 200 m cap) and the point behind are dropped


def test_training_dataset(tmp_path):
    _write_scene(tmp_path, n=4)
    ds = build_dataset(DataConfig(dataset="ddad", path=str(tmp_path), height=32, width=48), "train", augment=False)
    assert len(ds) == 2
    sample = ds[0]
    assert sample["images"].shape == (3, 3, 32, 48)
    assert float(sample["images"][1].mean()) == pytest.approx(0.0) and float(sample["images"][0].mean()) > 0
    # fadepth.geometry.scale_intrinsics (pixel centres at integers): c' = (c + 0.5) s - 0.5
    cx, cy = (32 + 0.5) * 48 / 64 - 0.5, (20 + 0.5) * 32 / 40 - 0.5
    np.testing.assert_allclose(sample["K"].numpy(), [[50 * 48 / 64, 0, cx], [0, 40, cy], [0, 0, 1]], rtol=1e-6)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="scene_"):
        ddad.DDADTestSet(tmp_path)
    scene_dir = _write_scene(tmp_path)
    calib_path = scene_dir / "calibration" / "c0ffee.json"
    calib = json.loads(calib_path.read_text())
    del calib["extrinsics"]
    calib_path.write_text(json.dumps(calib))
    with pytest.raises(KeyError, match=r"c0ffee\.json.*extrinsics"):
        ddad.DDADTestSet(tmp_path)[0]
    (scene_dir / "rgb/CAMERA_01/1001.png").unlink()
    with pytest.raises(FileNotFoundError, match="1001.png"):
        ddad.DDADTestSet(tmp_path)[1]
