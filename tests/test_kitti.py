"""KITTI raw: Eigen GT projection (real 2011_09_26 calibration), export on synthetic KITTI trees, loaders."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from fadepth.cli import kitti as cli_kitti
from fadepth.cli import synthetic as cli_synthetic
from fadepth.config import DataConfig, EvalConfig, SyntheticConfig
from fadepth.data import SPLITS_DIR, build_dataset, build_test_set
from fadepth.data import kitti
from fadepth.data.synthetic import SyntheticScenes, write_kitti_layout

# 2011_09_26 calibration as published in the KITTI raw archive.
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
S_rect_02: 1.242000e+03 3.750000e+02
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
"""


def _real_calib(tmp_path):
    (tmp_path / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (tmp_path / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    return tmp_path


def _scan(path, xyz):
    pts = np.hstack([np.asarray(xyz, np.float32), np.full((len(xyz), 1), 0.3, np.float32)])
    pts.tofile(path)
    return path


def test_read_calib_file_and_missing_key(tmp_path):
    calib = read = kitti.read_calib_file(_real_calib(tmp_path) / "calib_cam_to_cam.txt")
    assert "calib_time" not in calib and read["P_rect_02"].shape == (12,)
    assert read["S_rect_02"].tolist() == [1242.0, 375.0]
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(KeyError, match=r"calib_velo_to_cam\.txt.*T"):
        kitti.generate_depth_map(tmp_path, _scan(tmp_path / "s.bin", [[10, 0, 0]]))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        kitti.read_calib_file(tmp_path / "nowhere" / "calib_cam_to_cam.txt")


def test_eigen_projection_with_real_calibration(tmp_path):
    """Expected pixels computed by hand: c0 = R p + T, r = R_rect_00 c0, (u, v, w) = P_rect_02 [r; 1],
    pixel = (round(u/w) - 1, round(v/w) - 1).  E.g. p = (10, 0, 0): u/w = 613.964, v/w = 175.007 -> (613, 174);
    (9.8, 0, 0) -> 614.053, 174.893 and (10.5, 0, 0) -> 613.757, 175.270 land on the same pixel; the
    nearest (9.8) wins.  (20, 2, -1) -> 539.029, 215.099 -> (538, 214), camera z 19.7193;
    (5, -3, 0.5) -> (1074, 87); (30, 4, 1.2) -> (513, 150).  Dropped: x < 0, (5, 30, 0) (u/w = -3953.7)
    and (2, 0, -1.7) (v/w = 866.0, below the 375-row image)."""
    calib = _real_calib(tmp_path)
    pts = [[10.5, 0, 0], [9.8, 0, 0], [20, 2, -1], [5, -3, 0.5], [30, 4, 1.2], [-5, 0, 0], [5, 30, 0], [2, 0, -1.7]]
    scan = _scan(tmp_path / "0000000000.bin", pts)
    depth = kitti.generate_depth_map(calib, scan, cam=2, vel_depth=True)
    assert depth.shape == (375, 1242)
    expected = {(174, 613): 9.8, (214, 538): 20.0, (87, 1074): 5.0, (150, 513): 30.0}
    assert np.count_nonzero(depth) == len(expected)
    for (row, col), value in expected.items():
        assert depth[row, col] == pytest.approx(value, abs=1e-5)
    cam_z = kitti.generate_depth_map(calib, scan, cam=2, vel_depth=False)
    assert cam_z[214, 538] == pytest.approx(19.7193, abs=1e-3)
    assert kitti.generate_depth_map(calib, scan, shape=(100, 600)).shape == (100, 600)


def test_truncated_velodyne_scan(tmp_path):
    calib = _real_calib(tmp_path)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match=r"bad\.bin.*truncated"):
        kitti.generate_depth_map(calib, bad)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        kitti.generate_depth_map(calib, tmp_path / "missing.bin")


def test_read_split(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("2011_09_26/2011_09_26_drive_0002_sync 0000000069 l\n2011_09_26/x_sync 12 r\n\n")
    assert kitti.read_split(f) == [("2011_09_26/2011_09_26_drive_0002_sync", 69, "l"), ("2011_09_26/x_sync", 12, "r")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.txt.*empty"):
        kitti.read_split(empty)
    with pytest.raises(FileNotFoundError, match=r"nowhere.*train_files\.txt"):
        kitti.split_file(str(tmp_path / "nowhere"), "train")


def test_shipped_test_splits():
    eigen = kitti.read_split(SPLITS_DIR / "eigen" / "test_files.txt")
    bench = kitti.read_split(SPLITS_DIR / "eigen_benchmark" / "test_files.txt")
    assert len(eigen) == 697 and len(bench) == 652
    assert eigen[0][0].startswith("2011_09_26/") and all(side == "l" for _, _, side in eigen)


@pytest.fixture(scope="module")
def synthetic_kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    cfg = SyntheticConfig(train_sequences=1, val_sequences=1, test_sequences=1, frames_per_sequence=4, cache=True)
    scenes = SyntheticScenes(cfg, 48, 160, "test")
    split = write_kitti_layout(root, scenes, lidar_fraction=0.2)
    train = write_kitti_layout(root, SyntheticScenes(cfg, 48, 160, "train"), first_drive=2)
    write_kitti_layout(root, SyntheticScenes(cfg, 48, 160, "val"), first_drive=3)
    return root, split, train, scenes


def test_export_gt_on_synthetic_kitti_tree(synthetic_kitti, tmp_path):
    root, split, _, scenes = synthetic_kitti
    out = kitti.export_gt_depths(root, split, tmp_path / "gt_depths.npz")
    with np.load(out, allow_pickle=True) as npz:
        assert npz["data"].dtype == object and len(npz["data"]) == 4
    gts = kitti.load_gt_depths(out)
    for frame, gt in enumerate(gts):
        assert gt.dtype == np.float32 and gt.shape == (48, 160)
        true = scenes.render(0, frame).depth
        rows, cols = np.nonzero(gt)
        assert len(rows) > 100
        sampled = true[rows + 1, cols + 1]  # the Eigen export's -1 offset: pixel (i, j) lands at (i-1, j-1)
        abs_rel = np.mean(np.abs(gt[rows, cols] - sampled) / sampled)
        assert abs_rel < 0.01, abs_rel


def test_kitti_dataset_and_test_set_on_synthetic_tree(synthetic_kitti):
    root, split, train, _ = synthetic_kitti
    data_cfg = DataConfig(dataset="kitti", path=str(root), split=str(train.parent), height=32, width=96)
    ds = build_dataset(data_cfg, "train", augment=True)
    assert len(ds) == 2  # interior frames 1, 2 of one 4-frame drive
    sample = ds[0]
    assert sample["images"].shape == (3, 3, 32, 96) and "depth" not in sample
    plain = build_dataset(data_cfg, "train", augment=False)[0]
    # principal point at the image centre in pixel-centre coordinates, (W - 1) / 2, (H - 1) / 2
    assert torch.allclose(plain["K"], torch.tensor([[0.58 * 96, 0, 47.5], [0, 1.92 * 32, 15.5], [0, 0, 1.0]]))
    assert sample["images_aug"].shape == sample["images"].shape and "images_aug" not in plain
    test = build_test_set(data_cfg, EvalConfig(protocol="eigen"))
    assert test.protocol == "eigen" and len(test) == 4
    item = test[1]
    assert item["image"].shape == (3, 32, 96) and item["gt"].shape == (48, 160)
    val = build_test_set(data_cfg, EvalConfig(split="val"))  # val_files.txt: interior frames 1, 2 of drive 3
    assert len(val) == 2 and val.protocol == "eigen" and val[0]["gt"].shape == (48, 160)


def test_kitti_loader_errors(synthetic_kitti, tmp_path):
    root, split, _, _ = synthetic_kitti
    with pytest.raises(FileNotFoundError, match=r"drive_0099_sync.*image_02"):
        kitti.KittiRawDataset(root, [("2011_09_26/2011_09_26_drive_0099_sync", 1, "l")], 32, 96)
    edge = kitti.KittiRawDataset(root, [("2011_09_26/2011_09_26_drive_0001_sync", 0, "l")], 32, 96)
    with pytest.raises(FileNotFoundError, match="edge"):
        edge[0]
    with pytest.raises(FileNotFoundError, match="data.path"):
        build_dataset(DataConfig(dataset="kitti", path=str(tmp_path / "nope")), "train")
    if not (SPLITS_DIR / "eigen_zhou" / "train_files.txt").is_file():
        with pytest.raises(FileNotFoundError, match=r"eigen_zhou.*README"):
                build_dataset(DataConfig(dataset="kitti", path=str(root), split="eigen_zhou"), "train")


def test_benchmark_gt_png(tmp_path):
    folder = "2011_09_26/2011_09_26_drive_0002_sync"
    path = kitti.benchmark_gt_path(tmp_path, folder, 69)
    path.parent.mkdir(parents=True)
    raw = np.zeros((6, 8), np.uint16)
    raw[2, 3] = int(12.5 * 256)
    Image.fromarray(raw).save(path)
    gt = kitti.gt_depth(tmp_path, folder, 69, benchmark=True)
    assert gt.dtype == np.float32 and gt[2, 3] == 12.5 and np.count_nonzero(gt) == 1
    with pytest.raises(FileNotFoundError, match="proj_depth"):
        kitti.gt_depth(tmp_path, folder, 70, benchmark=True)


def _cli(module, argv):
    parser = argparse.ArgumentParser()
    module.add_parser(parser)
    return module.run(parser.parse_args(argv))


def test_cli_export_and_write(tmp_path, capsys):
    out = tmp_path / "syn"
    assert _cli(cli_synthetic, ["write-kitti", "--out", str(out), "--sequences", "1", "--frames", "3",
                                "--height", "24", "--width", "80"]) == 0
    split = out / "splits" / "test_files.txt"
    assert len(split.read_text().split("\n")) == 4  # 3 frames + trailing newline
    assert _cli(cli_kitti, ["export-gt", "--data-path", str(out), "--split-file", str(split),
                            "--out", str(tmp_path / "gt.npz")]) == 0
    assert len(kitti.load_gt_depths(tmp_path / "gt.npz")) == 3
    assert _cli(cli_kitti, ["export-gt", "--data-path", str(tmp_path / "none"), "--split", "eigen",
                            "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a folder" in capsys.readouterr().err
