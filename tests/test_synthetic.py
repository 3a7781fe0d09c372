"""Synthetic street video: determinism, depth validity, geometric / photometric consistency, datasets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fadepth.config import AugmentConfig, DataConfig, EvalConfig, SyntheticConfig
from fadepth.data import build_dataset, build_test_set
from fadepth.data.synthetic import SyntheticScenes
from fadepth.data.transforms import SnippetAugment, hflip, scale_and_crop

H, W = 64, 208


def _cfg(**kw) -> SyntheticConfig:
    base = dict(train_sequences=2, val_sequences=1, test_sequences=1, frames_per_sequence=6, cache=False)
    return SyntheticConfig(**{**base, **kw})


def _warp(src_image, depth_t, K, pose_t, pose_s):
    """Sample `src_image` (frame s) at the projections of frame t's pixels (true depth, poses)."""
    h, w = depth_t.shape
    j, i = np.meshgrid(np.arange(w), np.arange(h))
    pix = np.stack([j, i, np.ones_like(j)], -1).reshape(-1, 3).T.astype(np.float64)
    cam_t = np.linalg.inv(K) @ pix * depth_t.reshape(1, -1)
    rel = np.linalg.inv(pose_s) @ pose_t  # camera t -> camera s
    cam_s = rel[:3, :3] @ cam_t + rel[:3, 3:]
    uv = (K @ cam_s)[:2] / np.maximum(cam_s[2:], 1e-6)
    grid = torch.from_numpy(np.stack([2 * uv[0] / (w - 1) - 1, 2 * uv[1] / (h - 1) - 1], -1).reshape(1, h, w, 2))
    img = torch.from_numpy(src_image).permute(2, 0, 1)[None].double()
    out = F.grid_sample(img, grid, mode="bilinear", align_corners=True)[0].permute(1, 2, 0).numpy()
    inside = (np.abs(grid[0].numpy()) <= 1).all(-1) & (depth_t > 0) & (cam_s[2].reshape(h, w) > 0)
    return out, inside, cam_s[2].reshape(h, w), uv.T.reshape(h, w, 2)


def test_deterministic_by_seed_and_split():
    a = SyntheticScenes(_cfg(seed=3), H, W, "train").render(1, 2)
    b = SyntheticScenes(_cfg(seed=3), H, W, "train").render(1, 2)
    c = SyntheticScenes(_cfg(seed=4), H, W, "train").render(1, 2)
    d = SyntheticScenes(_cfg(seed=3), H, W, "test").render(0, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.pose, b.pose)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(SyntheticScenes(_cfg(seed=3), H, W, "train").render(0, 2).image, d.image)


def test_frame_format_and_intrinsics():
    scenes = SyntheticScenes(_cfg(), H, W, "train")
    f = scenes.render(0, 0)
    assert f.image.shape == (H, W, 3) and f.image.dtype == np.float32
    assert 0.0 <= f.image.min() and f.image.max() <= 1.0 and f.image.std() > 0.05
    assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
    np.testing.assert_allclose(f.K, [[0.58 * W, 0, (W - 1) / 2], [0, 1.92 * H, (H - 1) / 2], [0, 0, 1]])
    assert f.pose.shape == (4, 4)
    np.testing.assert_allclose(f.pose[:3, :3] @ f.pose[:3, :3].T, np.eye(3), atol=1e-9)
    assert scenes.num_sequences == 2 and scenes.frames_per_sequence == 6


def test_depth_has_valid_and_sky():
    scenes = SyntheticScenes(_cfg(), H, W, "train")
    depth = np.stack([scenes.render(s, 3).depth for s in range(2)])
    sky = depth == 0
    assert sky.any(), "no invalid (sky) pixel"
    assert (~sky).mean() > 0.7
    assert sky[:, : H // 2].sum() == sky.sum(), "sky must be in the upper half of the image"
    assert depth[~sky].min() > 0.5 and depth.max() < 150


def test_any_resolution():
    f = SyntheticScenes(_cfg(), 37, 101, "val").render(0, 0)
    assert f.image.shape == (37, 101, 3) and f.depth.shape == (37, 101)


def test_poses_move_forward_with_rotation():
    scenes = SyntheticScenes(_cfg(frames_per_sequence=20), H, W, "train")
    poses = [scenes.pose(0, k) for k in range(20)]
    steps = [np.linalg.inv(a) @ b for a, b in zip(poses[:-1], poses[1:])]
    assert all(s[2, 3] > 0.5 for s in steps)  # forward in the camera frame
    angles = [np.degrees(np.arccos(np.clip((np.trace(s[:3, :3]) - 1) / 2, -1, 1))) for s in steps]
    assert max(angles) > 0.05 and max(angles) < 5


def test_photometric_and_geometric_consistency_with_true_pose():
    scenes = SyntheticScenes(_cfg(frames_per_sequence=8), 96, 312, "train")
    t, s = scenes.render(0, 4), scenes.render(0, 5)
    warped, inside, z_s, uv = _warp(s.image, t.depth, t.K, t.pose, s.pose)
    err_true = np.abs(warped - t.image).mean(-1)[inside].mean()
    wrong = s.pose.copy()
    wrong[:3, 3] += wrong[:3, :3] @ np.array([0.3, 0.0, 0.5])
    warped_w, inside_w, _, _ = _warp(s.image, t.depth, t.K, t.pose, wrong)
    err_wrong = np.abs(warped_w - t.image).mean(-1)[inside_w].mean()
    assert inside.mean() > 0.5
    assert err_true < 0.03, err_true
    assert err_true < 0.5 * err_wrong, (err_true, err_wrong)
    # geometric: projected depth agrees with the depth rendered in frame s (where not occluded)
    ui, vi = np.round(uv[..., 0]).astype(int), np.round(uv[..., 1]).astype(int)
    ok = inside & (ui >= 0) & (ui < 312) & (vi >= 0) & (vi < 96)
    d_s = s.depth[vi[ok], ui[ok]]
    rel = np.abs(d_s - z_s[ok]) / z_s[ok]
    assert np.median(rel) < 0.01


def test_disk_cache_round_trip(tmp_path):
    cfg = _cfg(cache=True)
    first = SyntheticScenes(cfg, H, W, "train", cache_dir=tmp_path).render(1, 1)
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    again = SyntheticScenes(cfg, H, W, "train", cache_dir=tmp_path).render(1, 1)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.depth, again.depth)


def _data_cfg(**kw) -> DataConfig:
    return DataConfig(height=H, width=W, synthetic=_cfg(), **kw)


def test_build_dataset_sample_contract():
    ds = build_dataset(_data_cfg(), "train", augment=False)
    assert len(ds) == 2 * (6 - 2)
    sample = ds[0]
    assert sample["images"].shape == (3, 3, H, W) and sample["images"].dtype == torch.float32
    assert sample["K"].shape == (3, 3) and sample["depth"].shape == (1, H, W)
    assert isinstance(sample["id"], str)
    frames = SyntheticScenes(_cfg(), H, W, "train")
    np.testing.assert_allclose(sample["images"][1].permute(1, 2, 0).numpy(), frames.render(0, 0).image)  # id -1
    np.testing.assert_allclose(sample["images"][2].permute(1, 2, 0).numpy(), frames.render(0, 2).image)  # id +1


def test_augmentation_deterministic_and_consistent():
    ds = build_dataset(_data_cfg(), "train", augment=True)
    torch.manual_seed(5)
    a = ds[1]
    torch.manual_seed(5)
    b = ds[1]
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["K"], b["K"])
    assert a["images"].shape == (3, 3, H, W) and a["depth"].shape == (1, H, W)
    assert a["images"].min() >= 0 and a["images"].max() <= 1


def test_flip_and_scale_intrinsics():
    images = torch.rand(3, 3, 10, 20)
    K = torch.tensor([[10.0, 0, 9.5], [0, 8.0, 4.5], [0, 0, 1]])
    depth = torch.rand(1, 10, 20)
    im_f, K_f, d_f = hflip(images, K, depth)
    assert K_f[0, 2] == 20 - 1 - 9.5 and torch.equal(im_f[..., 0], images[..., -1]) and torch.equal(d_f[..., 0], depth[..., -1])
    gen = torch.Generator().manual_seed(0)
    im_s, K_s, d_s = scale_and_crop(images, K, depth, 2.0, gen)
    assert im_s.shape == images.shape and d_s.shape == depth.shape
    # a pixel u maps to (u + 0.5) * 2 - 0.5 - x0: fx doubles and the principal point follows
    assert K_s[0, 0] == 20 and K_s[1, 1] == 16
    x0, y0 = 2 * 9.5 + 0.5 - float(K_s[0, 2]), 2 * 4.5 + 0.5 - float(K_s[1, 2])
    assert float(x0).is_integer() and 0 <= x0 <= 20 and 0 <= y0 <= 10
    # colour jitter with p=1 keeps frames jointly transformed and in range
    aug = SnippetAugment(AugmentConfig(color_jitter_p=1.0, flip_p=0.0, scale_range=(1.0, 1.0)))
    same = images[:1].expand(3, -1, -1, -1).clone()
    augmented = aug(same, K, None, torch.Generator().manual_seed(1))
    out = augmented.images_aug  # the network input; `images` (what the loss compares) stays un-jittered
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[0], out[2]) and not torch.allclose(out[0], same[0])
    assert torch.equal(augmented.images, same)


def test_build_test_set_synthetic():
    test = build_test_set(_data_cfg(), EvalConfig(max_images=3))
    assert test.protocol == "synthetic" and len(test) == 3
    item = test[2]
    assert item["image"].shape == (3, H, W) and item["gt"].shape == (H, W) and item["gt"].dtype == np.float32
    with pytest.raises(ValueError, match="protocol"):
        build_test_set(_data_cfg(), EvalConfig(protocol="eigen"))
