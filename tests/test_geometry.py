"""Geometry: exact round trips, pose algebra, and view synthesis of an analytic textured plane."""
import math

import numpy as np
import torch

import pytest
import torch.nn.functional as F

from fadepth.geometry import (
    backproject,
    crop_intrinsics,
    flip_intrinsics,
    invert_pose,
    normalise_pixels,
    pixel_grid,
    pixel_intrinsics,
    pose_vec_to_mat,
    project,
    resize_intrinsics,
    sample,
    scale_intrinsics,
    warp,
)
from fadepth.losses.photometric import photometric_error

H, W = 48, 64
K_NP = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])


def _K(batch=1):
    return torch.tensor(K_NP, dtype=torch.float64).expand(batch, 3, 3).clone()


def test_project_backproject_identity_returns_pixel_grid():
    torch.manual_seed(0)
    K = _K(2)
    depth = torch.rand(2, 1, H, W, dtype=torch.float64) * 10 + 0.5
    grid, z = project(backproject(depth, torch.linalg.inv(K)), K, torch.eye(4, dtype=torch.float64).expand(2, 4, 4))
    expected = normalise_pixels(pixel_grid(2, H, W, dtype=torch.float64)[:, :2], H, W)
    assert torch.allclose(grid, expected, atol=1e-9)
    assert torch.allclose(z, depth)
    assert expected[0, 0, 0].tolist() == [-1.0, -1.0] and expected[0, -1, -1].tolist() == [1.0, 1.0]


def test_identity_warp_reproduces_image_exactly():
    torch.manual_seed(0)
    img = torch.rand(1, 3, H, W, dtype=torch.float64)
    out = warp(img, torch.full((1, 1, H, W), 3.0, dtype=torch.float64), torch.eye(4, dtype=torch.float64)[None], _K())
    assert torch.allclose(out.image, img, atol=1e-9)
    assert out.valid.all()


def test_pose_vec_to_mat_rotation_inverse_and_round_trip():
    torch.manual_seed(0)
    vec = torch.randn(5, 6, dtype=torch.float64) * 0.3
    T = pose_vec_to_mat(vec)
    R = T[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(T[:, :3, 3], vec[:, 3:])
    Ti = pose_vec_to_mat(vec, invert=True)
    assert torch.allclose(Ti @ T, torch.eye(4, dtype=torch.float64).expand(5, 4, 4), atol=1e-12)
    assert torch.allclose(invert_pose(T), torch.linalg.inv(T), atol=1e-12)
    assert torch.allclose(invert_pose(invert_pose(T)), T, atol=1e-12)
    # known rotation: +90 degrees about z maps x to y
    Rz = pose_vec_to_mat(torch.tensor([[0, 0, math.pi / 2, 0, 0, 0]], dtype=torch.float64))[0, :3, :3]
    x_axis, y_axis = torch.eye(3, dtype=torch.float64)[:2]
    assert torch.allclose(Rz @ x_axis, y_axis, atol=1e-12)
    # zero vector -> identity, finite gradients
    z = torch.zeros(1, 6, requires_grad=True)
    pose_vec_to_mat(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_intrinsics_helpers():
    K = _K()
    Ks = scale_intrinsics(K, 0.5, 0.25)  # c' = (c + 0.5) s - 0.5
    assert Ks[0, 0, 0] == 25.0 and Ks[0, 0, 2] == 15.5 and Ks[0, 1, 1] == 12.5 and Ks[0, 1, 2] == 5.5
    torch.testing.assert_close(resize_intrinsics(K, (H, W), (H // 4, W // 2)), Ks)
    Kc = crop_intrinsics(K, 3, 2)
    assert Kc[0, 0, 2] == 31.5 - 3 and Kc[0, 1, 2] == 23.5 - 2 and Kc[0, 0, 0] == K[0, 0, 0]
    # normalised monodepth2 K: a centred principal point lands on the centre pixel coordinate (W-1)/2
    Kn = np.array([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    Kp = pixel_intrinsics(Kn, 32, 96)
    np.testing.assert_allclose(Kp, [[0.58 * 96, 0, 47.5], [0, 1.92 * 32, 15.5], [0, 0, 1]])
    torch.testing.assert_close(pixel_intrinsics(torch.from_numpy(Kn), 32, 96), torch.from_numpy(Kp))
    torch.testing.assert_close(flip_intrinsics(torch.from_numpy(Kp), 96), torch.from_numpy(Kp))  # centred
    Kf = flip_intrinsics(K, W)
    assert Kf[0, 0, 2] == W - 1 - 31.5 and Kf[0, 0, 0] == K[0, 0, 0]
    # flipping the image of a plane == rendering with flipped intrinsics: projecting a mirrored point
    X = torch.tensor([[0.7, -0.2, 4.0]], dtype=torch.float64)
    u = (K[0] @ X[0] / X[0, 2])[0]
    uf = (Kf[0] @ (X[0] * torch.tensor([-1.0, 1, 1], dtype=torch.float64)) / X[0, 2])[0]
    assert torch.isclose(uf, W - 1 - u)


def _ramp(height, width, dtype=torch.float64):
    """I(u, v) = 0.3 + 0.01 u + 0.02 v (pixel centres at integers); bilinear resizing is exact on it."""
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    return (0.3 + 0.01 * u + 0.02 * v)[None, None]


@pytest.mark.parametrize(
    "size,antialias", [((96, 128), False), ((24, 40), False), ((36, 80), False), ((24, 32), True), ((12, 16), True)]
)
def test_projected_point_lands_on_the_same_resized_pixel(size, antialias):
    """A 3-D point projected with resize_intrinsics(K) samples the resized image (F.interpolate, bilinear,
    align_corners=False, as every resize in fadepth) where the original projection samples the original:
    (c + 0.5) s - 0.5 is the rule of that resize; c s (monodepth2's) misses by 0.5 (s - 1) px.  (Antialiased
    resizes by non-integer factors follow the same rule only on average: their truncated filter windows shift
    single pixels by up to ~0.06 px, periodically, measured; so they are tested at integer factors.)"""
    image, K = _ramp(H, W), _K()
    small = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    torch.manual_seed(0)
    # points whose projections stay 8 px away from the borders (the resize filter's support)
    uv = torch.stack([torch.empty(50).uniform_(8, W - 9), torch.empty(50).uniform_(8, H - 9)], 0).double()
    z = torch.empty(50).uniform_(2, 20).double()
    points = (torch.linalg.inv(K[0]) @ torch.cat([uv, torch.ones(1, 50, dtype=torch.float64)])) * z

    def value(img, K_img):  # project with K_img, sample img there (fadepth's normalisation and sampling)
        pix = K_img[0] @ points
        grid = normalise_pixels((pix[:2] / pix[2:]).reshape(1, 2, 1, 50), *img.shape[-2:])
        return sample(img, grid).flatten()

    reference = value(image, K)
    torch.testing.assert_close(reference, 0.3 + 0.01 * uv[0] + 0.02 * uv[1])
    K_small = resize_intrinsics(K, (H, W), size)
    torch.testing.assert_close(value(small, K_small), reference, atol=1e-9, rtol=0)
    naive = K.clone()  # fx, cx times s
    naive[:, 0] *= size[1] / W
    naive[:, 1] *= size[0] / H
    assert (value(small, naive) - reference).abs().max() > 1e-3


# ------------------------------------------------------------------ analytic textured plane
Z0 = 5.0


def _texture(x, y):
    return np.stack(
        [
            0.5 + 0.25 * np.sin(2 * np.pi * x / 1.5) * np.cos(2 * np.pi * y / 1.2),
            0.5 + 0.2 * np.cos(2 * np.pi * (x + y) / 2.0),
            0.5 + 0.2 * np.sin(2 * np.pi * x / 2.5 + 1.0) + 0.05 * np.cos(2 * np.pi * y / 0.9),
        ]
    )


def _render(T_plane_to_cam):
    """Image of the plane z = Z0 (plane frame = target camera) seen by a camera at T (target -> camera)."""
    R, t = T_plane_to_cam[:3, :3], T_plane_to_cam[:3, 3]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.linalg.inv(K_NP) @ np.stack([u.ravel(), v.ravel(), np.ones(H * W)])
    # point in camera: lam * ray; in plane frame: R^T (lam ray - t); its z must equal Z0
    Rt_rays = R.T @ rays
    Rt_t = R.T @ t
    lam = (Z0 + Rt_t[2]) / Rt_rays[2]
    P = Rt_rays * lam - Rt_t[:, None]
    return torch.from_numpy(_texture(P[0], P[1]).reshape(3, H, W))[None]


def _mean_error(T):
    target = _render(np.eye(4))
    T_true = pose_vec_to_mat(torch.tensor([[0.01, -0.02, 0.015, 0.15, -0.05, 0.3]], dtype=torch.float64))
    source = _render(T_true[0].numpy())
    out = warp(source, torch.full((1, 1, H, W), Z0, dtype=torch.float64), T, _K())
    pe = photometric_error(out.image, target)
    inner = out.valid.clone()
    inner[..., :4, :] = 0
    inner[..., -4:, :] = 0
    inner[..., :, :4] = 0
    inner[..., :, -4:] = 0
    assert inner.sum() > 0.5 * H * W
    return (pe * inner).sum() / inner.sum(), T_true


def test_warp_reconstructs_analytic_plane_and_wrong_pose_does_not():
    _, T_true = _mean_error(torch.eye(4, dtype=torch.float64)[None])
    good, _ = _mean_error(T_true)
    T_wrong = pose_vec_to_mat(torch.tensor([[0.01, -0.02, 0.015, -0.15, 0.1, 0.3]], dtype=torch.float64))
    bad, _ = _mean_error(T_wrong)
    identity, _ = _mean_error(torch.eye(4, dtype=torch.float64)[None])
    assert good < 0.01, good
    assert bad > 5 * good and identity > 5 * good, (good, bad, identity)


def test_pinhole_inverse_equals_the_matrix_inverse():
    from fadepth.geometry import pinhole_inverse, scale_intrinsics

    K = torch.tensor([[[721.5, 0.3, 609.6], [0.0, 721.5, 172.9], [0.0, 0.0, 1.0]]]).double()
    K = torch.cat([K, scale_intrinsics(K, 0.25, 0.5)])
    torch.testing.assert_close(pinhole_inverse(K), torch.linalg.inv(K))
