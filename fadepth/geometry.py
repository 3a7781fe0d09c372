"""Pinhole geometry for view synthesis: back-projection, projection, poses, intrinsics, warping.

Conventions (used everywhere in fadepth)
----------------------------------------
* **Pixels.** Pixel (u, v) is the *centre* of column u, row v, with integer coordinates
  u in [0, W-1], v in [0, H-1]. ``K`` maps camera points to these pixel coordinates.
* **Sampling: align_corners=True.** A pixel coordinate u maps to the normalised grid coordinate
  ``2 u / (W - 1) - 1`` (so -1 and +1 are the centres of the first and last pixels), and every
  ``F.grid_sample`` / ``F.interpolate`` on a sampling grid in this module uses ``align_corners=True``.
  With this pairing the identity warp reproduces the image exactly. (monodepth2 normalises by (W-1)
  but samples with the default align_corners=False, a sub-pixel mismatch we do not copy.)
* **Poses.** ``T_target_to_source`` (B,4,4) maps a 3-D point in the target camera frame to the source
  camera frame: X_s = R X_t + t. ``pose_vec_to_mat`` builds it from the pose network's (B,6)
  axis-angle + translation exactly as monodepth2 does (``invert=True`` for negative frame ids, where the
  network saw the pair as [source, target]).
* **Intrinsics.** (B,3,3) (or (3,3)) pixel intrinsics at the resolution of the image they are used with, in
  the same pixel-centre convention. Every change of resolution goes through ``scale_intrinsics`` (one owner):
  images are resized with ``align_corners=False`` (``F.interpolate``, PIL), which maps a pixel coordinate u to
  (u + 0.5) s - 0.5, so cx' = (cx + 0.5) sx - 0.5 (cy likewise) and fx' = fx sx. Crops subtract the offset
  (``crop_intrinsics``), a horizontal flip maps cx to W - 1 - cx (``flip_intrinsics``), and normalised
  intrinsics (monodepth2's KITTI K, fractions of the image size) become pixels by ``pixel_intrinsics``
  (cx = cx_n W - 0.5, so a centred principal point 0.5 lands on (W - 1) / 2).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

EPS = 1e-7


# ------------------------------------------------------------------------------------------- grids
def pixel_grid(batch: int, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates (B,3,H,W): rows (u, v, 1) with integer u, v (pixel centres)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    grid = torch.stack([u, v, torch.ones_like(u)], dim=0)
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


def normalise_pixels(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (B,2,H,W) -> grid_sample grid (B,H,W,2) in [-1, 1] (align_corners=True)."""
    u = 2.0 * pix[:, 0] / max(width - 1, 1) - 1.0
    v = 2.0 * pix[:, 1] / max(height - 1, 1) - 1.0
    return torch.stack([u, v], dim=-1)


# ---------------------------------------------------------------------------------- camera model
def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3-D points (B,3,H,W): X = D(u,v) * K^-1 [u, v, 1]^T."""
    b, _, h, w = depth.shape
    pix = pixel_grid(b, h, w, depth.device, depth.dtype).reshape(b, 3, -1)
    rays = inv_K.to(depth.dtype) @ pix
    return rays.reshape(b, 3, h, w) * depth


def transform_points(points: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Apply a rigid transform (B,4,4) to points (B,3,H,W): R X + t."""
    b, _, h, w = points.shape
    flat = points.reshape(b, 3, -1)
    out = T[:, :3, :3] @ flat + T[:, :3, 3:4]
    return out.reshape(b, 3, h, w)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor | None = None):
    """Project target-frame points into a camera.

    points: (B,3,H,W) in the target camera frame; T: (B,4,4) target -> camera (None = identity);
    K: (B,3,3) of the camera.  Returns ``(grid, z)``: grid (B,H,W,2) normalised for
    ``grid_sample(..., align_corners=True)`` and z (B,1,H,W), the depth of each point in that camera
    (the "computed depth").  Points behind the camera get z <= 0; callers mask them.
    """
    _, _, h, w = points.shape
    cam = points if T is None else transform_points(points, T)
    b = cam.shape[0]
    pix = (K.to(cam.dtype) @ cam.reshape(b, 3, -1)).reshape(b, 3, h, w)
    z = cam[:, 2:3]
    uv = pix[:, :2] / z.clamp(min=EPS)  # exact for z > 0; points behind the camera land far outside
    return normalise_pixels(uv, h, w), z


# ------------------------------------------------------------------------------------------ poses
def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (B,3) v = axis * angle -> (B,3,3) R = I + (sin a / a) [v]x + ((1 - cos a) / a^2) [v]x^2.

    Written on the unnormalised v (a = |v|) so R is orthonormal to machine precision; Taylor
    coefficients below a = 1e-4 keep values and gradients finite at v = 0.
    """
    angle = axis_angle.norm(dim=1)
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 1.0 - angle**2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - angle**2 / 24.0, (1.0 - torch.cos(safe)) / safe**2)
    vx, vy, vz = axis_angle.unbind(dim=1)
    zero = torch.zeros_like(vx)
    cross = torch.stack([zero, -vz, vy, vz, zero, -vx, -vy, vx, zero], dim=1).reshape(-1, 3, 3)
    eye = torch.eye(3, device=axis_angle.device, dtype=axis_angle.dtype).expand_as(cross)
    return eye + a[:, None, None] * cross + b[:, None, None] * (cross @ cross)


def rigid_matrix(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B,3,3), (B,3) -> (B,4,4) [[R, t], [0, 1]]."""
    bottom = torch.cat([R.new_zeros(R.shape[0], 1, 3), R.new_ones(R.shape[0], 1, 1)], dim=2)  # no host copy
    return torch.cat([torch.cat([R, t.unsqueeze(-1)], dim=2), bottom], dim=1)


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Exact inverse of a rigid transform: [[R^T, -R^T t], [0, 1]]."""
    Rt = T[:, :3, :3].transpose(1, 2)
    return rigid_matrix(Rt, -(Rt @ T[:, :3, 3:4]).squeeze(-1))


def pose_vec_to_mat(vec: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """Pose network output (B,6) = axis-angle (3) + translation (3) -> (B,4,4) (monodepth2 convention).

    ``invert=False``: T = [[R, t], [0, 1]].  ``invert=True``: the inverse [[R^T, -R^T t], [0, 1]], used when
    the network was fed [source, target] (negative frame ids) so the result is still target -> source.
    """
    T = rigid_matrix(axis_angle_to_matrix(vec[:, :3]), vec[:, 3:6])
    return invert_pose(T) if invert else T


# ------------------------------------------------------------------------------------- intrinsics
def pinhole_inverse(K: torch.Tensor) -> torch.Tensor:
    """K^-1 of pinhole intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (B,3,3) in closed form: elementwise ops
    only (no solver, no host sync, capturable in a CUDA graph). Every K in fadepth has this form."""
    fx, s, cx = K[:, 0, 0], K[:, 0, 1], K[:, 0, 2]
    fy, cy = K[:, 1, 1], K[:, 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [1.0 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy), zero, 1.0 / fy, -cy / fy, zero, zero, one]
    return torch.stack(rows, dim=1).reshape(-1, 3, 3)


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics of the image resized by (sx, sy) with align_corners=False (pixel centres at integers):
    fx, skew scale by sx, fy by sy; cx' = (cx + 0.5) sx - 0.5, cy' = (cy + 0.5) sy - 0.5.

    (monodepth2's cx * s is the same rule for pixel-corner coordinates; with pixel centres at integers, as
    ``pixel_grid`` and ``F.interpolate(align_corners=False)`` have them, it is off by 0.5 (s - 1) pixels.)
    """
    out = K.clone()
    out[..., 0, :] = out[..., 0, :] * sx  # fx, skew, cx
    out[..., 1, :] = out[..., 1, :] * sy  # fy, cy
    out[..., 0, 2] = out[..., 0, 2] + 0.5 * (sx - 1.0)
    out[..., 1, 2] = out[..., 1, 2] + 0.5 * (sy - 1.0)
    return out


def resize_intrinsics(K: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> torch.Tensor:
    """``scale_intrinsics`` for a resize from (H, W) = ``from_size`` to ``to_size``."""
    return scale_intrinsics(K, to_size[1] / from_size[1], to_size[0] / from_size[0])


def crop_intrinsics(K: torch.Tensor, x0: float, y0: float) -> torch.Tensor:
    """Intrinsics of the crop whose top-left pixel is (x0, y0): cx - x0, cy - y0."""
    out = K.clone()
    out[..., 0, 2] = out[..., 0, 2] - x0
    out[..., 1, 2] = out[..., 1, 2] - y0
    return out


def pixel_intrinsics(K_normalised, height: int, width: int):
    """Normalised intrinsics (fractions of the image size, pixel-corner origin: monodepth2's KITTI K) -> pixel
    intrinsics at (height, width) in this module's convention: fx W, fy H, cx W - 0.5, cy H - 0.5.

    Works on numpy arrays and tensors alike (3x3 or 4x4; only the top-left 3x3 block is used)."""
    K = K_normalised[..., :3, :3].copy() if hasattr(K_normalised, "copy") else K_normalised[..., :3, :3].clone()
    K[..., 0, :] = K[..., 0, :] * width
    K[..., 1, :] = K[..., 1, :] * height
    K[..., 0, 2] = K[..., 0, 2] - 0.5
    K[..., 1, 2] = K[..., 1, 2] - 0.5
    return K


def flip_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """Intrinsics of the horizontally flipped image (u -> W-1-u): cx -> W-1-cx (fx unchanged)."""
    out = K.clone()
    out[..., 0, 2] = (width - 1) - K[..., 0, 2]
    return out


# ------------------------------------------------------------------------------------------- warp
class Warp(NamedTuple):
    image: torch.Tensor  # (B,C,H,W) source resampled into the target view
    valid: torch.Tensor  # (B,1,H,W) float: projection lands inside the source image, in front of it
    depth: torch.Tensor  # (B,1,H,W) computed depth of the target's points in the source camera
    grid: torch.Tensor  # (B,H,W,2) sampling grid (align_corners=True)


def sample(source: torch.Tensor, grid: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Bilinear sampling with this module's convention (align_corners=True).

    A NaN coordinate (a diverged pose or depth) samples outside instead: grid_sample turns NaN into an integer
    index, which crashes the process on CPU. The step then reports the non-finite loss instead of dying."""
    grid = torch.nan_to_num(grid, nan=2.0)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def resize_grid(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resample a (B,H,W,2) normalised grid to (B,h,w,2) (e.g. to warp a lower-resolution feature map)."""
    if grid.shape[1:3] == (height, width):
        return grid
    g = F.interpolate(grid.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=True)
    return g.permute(0, 2, 3, 1)


def valid_mask(grid: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) float: grid inside [-1, 1] (inclusive) and z > 0."""
    inside = (grid.abs() <= 1.0).all(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    return (inside & (z > EPS)).to(z.dtype)


def warp(
    source: torch.Tensor,
    depth_target: torch.Tensor,
    T_target_to_source: torch.Tensor,
    K: torch.Tensor,
    inv_K: torch.Tensor | None = None,
    padding_mode: str = "border",
) -> Warp:
    """Synthesise the target view from ``source`` (inverse warping).

    Each target pixel is back-projected with its depth, moved into the source camera by
    ``T_target_to_source`` and projected with ``K`` (same intrinsics for both views); the source is
    sampled there (bilinear, border padding as monodepth2, align_corners=True).
    """
    if inv_K is None:
        inv_K = torch.linalg.inv(K)
    points = backproject(depth_target, inv_K)
    grid, z = project(points, K, T_target_to_source)
    image = sample(source, grid, padding_mode)
    return Warp(image=image, valid=valid_mask(grid, z), depth=z, grid=grid)
