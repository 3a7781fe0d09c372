"""Procedurally rendered, driving-like monocular video with exact per-pixel depth.

A camera drives along a street (lateral, yaw, pitch and roll wobble, so consecutive poses are never a
pure translation) past textured facades with windows, parked cars, crates and poles; the road has
lane markings and a paved sidewalk; the sky is at infinity.  Frames are rendered analytically by
ray casting against the road plane and axis-aligned boxes (``synthetic_scene``), shaded with
world-fixed procedural textures (``synthetic_textures``) and one Lambertian sun, then multiplied by
a per-sequence exposure / white balance.  Everything is deterministic in (``SyntheticConfig.seed``,
split, sequence, frame); train / val / test use distinct seed streams.

Conventions
-----------
* Camera frame: x right, y down, z forward.  ``Frame.pose`` is camera-to-world (4x4):
  ``p_world = pose[:3, :3] @ p_cam + pose[:3, 3]``.  The relative pose mapping points of frame a
  into frame b is ``inv(pose_b) @ pose_a``.
* Pixel centres are at integer coordinates: pixel (row i, column j) is the ray ``K^-1 [j, i, 1]``.
* Intrinsics are KITTI-like: fx = 0.58 W, fy = 1.92 H, principal point exactly centred
  (cx = (W-1)/2, cy = (H-1)/2, so a horizontal flip leaves K unchanged).
* ``Frame.depth`` is the camera z-depth in metres; 0 marks invalid pixels (the sky).
* ``Frame.image`` is quantised to 8 bits (like a PNG) and returned as float32 in [0, 1].
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import synthetic_textures as tex
from .synthetic_scene import CAR, FACADE, PLAIN, Scene, camera_pose, make_scene

SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
NEAR = 0.05
RENDER_VERSION = 1  # bump when the renderer changes: invalidates on-disk caches


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    depth: np.ndarray  # (H, W) float32, metres, 0 = invalid (sky)
    K: np.ndarray  # (3, 3) float64 pixel intrinsics
    pose: np.ndarray  # (4, 4) float64 camera-to-world


def kitti_like_intrinsics(height: int, width: int) -> np.ndarray:
    return np.array([[0.58 * width, 0.0, (width - 1) / 2.0], [0.0, 1.92 * height, (height - 1) / 2.0], [0, 0, 1.0]])


# ------------------------------------------------------------------------------------ rendering
def _pixel_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) camera-frame rays with z = 1, so the ray parameter is the z-depth."""
    j, i = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([(j - K[0, 2]) / K[0, 0], (i - K[1, 2]) / K[1, 1], np.ones_like(j)], axis=-1)


_CORNER_BITS = np.array(list(np.ndindex(2, 2, 2)), bool)  # (8, 3)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8)
                   if np.sum(_CORNER_BITS[a] != _CORNER_BITS[b]) == 1])  # (12, 2)


def _box_rects(scene: Scene, R, c, K, height, width):
    """Yield (box index, nearest z, row slice, col slice) for every box that may be visible.

    The rectangle bounds the projection of the box clipped to the plane z = NEAR (each of its 12
    edges is clipped), so boxes beside or behind the camera get a tight rectangle too.
    """
    corners = np.where(_CORNER_BITS[None], scene.hi[:, None], scene.lo[:, None])  # (N, 8, 3)
    cam = (corners - c) @ R  # R^T (p - c)
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]  # (N, 12, 3)
    za, zb = a[..., 2:], b[..., 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = a + np.clip((NEAR - za) / (zb - za), 0.0, 1.0) * (b - a)
    edge_kept = ((za >= NEAR) | (zb >= NEAR))[..., 0]  # (N, 12)
    pts = np.concatenate([np.where(za < NEAR, cross, a), np.where(zb < NEAR, cross, b)], 1)  # (N, 24, 3)
    keep = np.concatenate([edge_kept, edge_kept], 1)
    zp = np.maximum(pts[..., 2], NEAR)
    u = K[0, 0] * pts[..., 0] / zp + K[0, 2]
    v = K[1, 1] * pts[..., 1] / zp + K[1, 2]
    u0, u1 = np.where(keep, u, np.inf).min(1), np.where(keep, u, -np.inf).max(1)
    v0, v1 = np.where(keep, v, np.inf).min(1), np.where(keep, v, -np.inf).max(1)
    z = np.where(keep, pts[..., 2], np.inf)
    visible = keep.any(1)
    z_near = z.min(1)
    for box in np.argsort(z_near):
        if not visible[box]:
            continue
        j0, j1 = int(np.clip(np.floor(u0[box]), 0, width)), int(np.clip(np.ceil(u1[box]) + 1, 0, width))
        i0, i1 = int(np.clip(np.floor(v0[box]), 0, height)), int(np.clip(np.ceil(v1[box]) + 1, 0, height))
        if j0 < j1 and i0 < i1:
            yield box, z_near[box], slice(i0, i1), slice(j0, j1)


def _cast(scene: Scene, pose: np.ndarray, K: np.ndarray, rays_cam: np.ndarray):
    """Nearest hit per pixel: z-depth t (inf = sky), object id (-1 road, -2 sky, >=0 box), face axis.

    Boxes are visited front to back; a box whose nearest point is farther than every depth
    already found in its rectangle is skipped (fully occluded).
    """
    height, width = rays_cam.shape[:2]
    R, c = pose[:3, :3], pose[:3, 3]
    d = (rays_cam @ R.T).astype(np.float32)
    t = np.full((height, width), np.inf, np.float32)
    obj = np.full((height, width), -2, np.int64)
    axis = np.zeros((height, width), np.int64)
    down = d[..., 1] > 1e-9
    t[down] = -c[1] / d[..., 1][down]
    obj[down], axis[down] = -1, 1
    lo, hi = (scene.lo - c).astype(np.float32), (scene.hi - c).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = np.ascontiguousarray((1.0 / d).transpose(2, 0, 1))  # (3, H, W): one plane per axis
        for b, z_near, rows, cols in _box_rects(scene, R, c, K, height, width):
            t_view = t[rows, cols]
            if z_near >= t_view.max():
                continue
            slabs = []
            for k in range(3):
                inv_k = inv[k, rows, cols]
                t1, t2 = lo[b, k] * inv_k, hi[b, k] * inv_k
                slabs.append((np.minimum(t1, t2), np.maximum(t1, t2)))
            t_near = np.maximum(np.maximum(slabs[0][0], slabs[1][0]), slabs[2][0])
            t_far = np.minimum(np.minimum(slabs[0][1], slabs[1][1]), slabs[2][1])
            hit = (t_near <= t_far) & (t_near > NEAR) & (t_near < t_view)
            if not hit.any():
                continue
            t_view[hit] = t_near[hit]
            obj[rows, cols][hit] = b
            face = np.where(t_near == slabs[0][0], 0, np.where(t_near == slabs[1][0], 1, 2))
            axis[rows, cols][hit] = face[hit]
    return d, t, obj, axis


def _shade(scene: Scene, c, d, t, obj, axis, focal: float) -> np.ndarray:
    """Colour of every pixel from world-fixed textures, a Lambertian sun and the sequence gain."""
    obj, axis = obj.ravel(), axis.ravel()
    color = np.zeros((len(obj), 3), np.float32)
    sky = np.flatnonzero(obj == -2)
    if len(sky):
        color[sky] = tex.sky(d.reshape(-1, 3)[sky], scene.seed)
    solid = np.flatnonzero(obj != -2)
    ts, ax, ob = t.ravel()[solid], axis[solid], obj[solid]
    dx, dy, dz = (d[..., k].ravel()[solid] for k in range(3))
    p = np.stack([c[0] + ts * dx, c[1] + ts * dy, c[2] + ts * dz], 1).astype(np.float32)
    d_ax = np.where(ax == 0, dx, np.where(ax == 1, dy, dz))
    norm2 = dx * dx + dy * dy + dz * dz
    fp = ts * norm2 / (focal * np.maximum(np.abs(d_ax), 0.15 * np.sqrt(norm2)))
    n_dot_sun = -np.sign(d_ax) * scene.sun.astype(np.float32)[ax]  # face normal faces the camera
    shade = 0.55 + 0.5 * np.clip(n_dot_sun, 0.0, None)
    col = np.empty((len(ts), 3), np.float32)
    road = np.flatnonzero(ob == -1)
    col[road] = tex.road(p[road], fp[road], scene.road_half, scene.seed)
    u, v = tex.face_coords(p, ax)
    material = np.where(ob >= 0, scene.material[np.maximum(ob, 0)], -1)
    for kind, fn in ((FACADE, tex.facade), (CAR, tex.car), (PLAIN, tex.plain)):
        m = np.flatnonzero(material == kind)
        if len(m):
            ids = ob[m]
            col[m] = fn(u[m], v[m], fp[m], scene.color[ids], scene.tex_seed[ids] & 0xFFFF)
    color[solid] = col * shade[:, None]
    return np.clip(color * scene.gain, 0.0, 1.0)


def render_view(scene: Scene, pose: np.ndarray, K: np.ndarray, height: int, width: int, rays=None):
    """Render (image (H,W,3) uint8, depth (H,W) float32) of `scene` from camera-to-world `pose`."""
    rays = _pixel_rays(K, height, width) if rays is None else rays
    d, t, obj, axis = _cast(scene, pose, K, rays)
    color = _shade(scene, pose[:3, 3], d, t, obj, axis, float(min(K[0, 0], K[1, 1])))
    image = np.round(color.reshape(height, width, 3) * 255.0).astype(np.uint8)
    depth = np.where(obj == -2, 0.0, t).astype(np.float32)
    return image, depth


# ------------------------------------------------------------------------------------ scenes API
class SyntheticScenes:
    """The sequences of one split; frames rendered on demand, optionally cached.

    ``cache`` (default ``cfg.cache``) keeps up to ``max_cached`` rendered frames in memory;
    ``cache_dir`` additionally stores them as ``.npz`` files keyed by a digest of everything that
    determines the pixels (config seed, split, resolution, frame count, speed, renderer version).
    """

    def __init__(self, cfg, height: int, width: int, split: str = "train", cache: bool | None = None,
                 cache_dir: str | Path | None = None, max_cached: int = 1024):
        if split not in SPLIT_INDEX:
            raise ValueError(f"synthetic split must be one of {sorted(SPLIT_INDEX)}, got {split!r}")
        self.cfg, self.height, self.width, self.split = cfg, int(height), int(width), split
        self.num_sequences = int({"train": cfg.train_sequences, "val": cfg.val_sequences,
                                  "test": cfg.test_sequences}[split])
        self.frames_per_sequence = int(cfg.frames_per_sequence)
        self.K = kitti_like_intrinsics(self.height, self.width)
        self._rays = _pixel_rays(self.K, self.height, self.width)
        self._scenes: dict[int, Scene] = {}
        self._cache: OrderedDict | None = OrderedDict() if (cfg.cache if cache is None else cache) else None
        self._max_cached = max_cached
        self._cache_dir = Path(cache_dir) / self._digest() if cache_dir else None

    def __len__(self) -> int:
        return self.num_sequences * self.frames_per_sequence

    def _digest(self) -> str:
        key = (RENDER_VERSION, self.cfg.seed, self.split, self.height, self.width,
               self.frames_per_sequence, float(self.cfg.speed_m_per_frame))
        return hashlib.sha1(repr(key).encode()).hexdigest()[:16]

    def scene(self, seq: int) -> Scene:
        if not 0 <= seq < self.num_sequences:
            raise IndexError(f"{self.split} has {self.num_sequences} sequences, asked for {seq}")
        if seq not in self._scenes:
            seeds = [int(self.cfg.seed), SPLIT_INDEX[self.split], int(seq)]
            self._scenes[seq] = make_scene(seeds, self.frames_per_sequence, self.cfg.speed_m_per_frame)
        return self._scenes[seq]

    def pose(self, seq: int, frame: int) -> np.ndarray:
        return camera_pose(self.scene(seq), frame)

    def render(self, seq: int, frame: int) -> Frame:
        if not 0 <= frame < self.frames_per_sequence:
            raise IndexError(f"sequence has {self.frames_per_sequence} frames, asked for {frame}")
        image, depth = self._render_cached(seq, frame)
        return Frame(image.astype(np.float32) / 255.0, depth.copy(), self.K.copy(), self.pose(seq, frame))

    def _render_cached(self, seq: int, frame: int):
        key = (seq, frame)
        if self._cache is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = self._cache_dir / f"{seq:03d}_{frame:05d}.npz" if self._cache_dir else None
        if path is not None and path.is_file():
            with np.load(path) as data:
                out = (data["image"], data["depth"])
        else:
            out = render_view(self.scene(seq), self.pose(seq, frame), self.K, self.height, self.width, self._rays)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.stem + ".tmp.npz")
                np.savez(tmp, image=out[0], depth=out[1])
                tmp.replace(path)
        if self._cache is not None:
            self._cache[key] = out
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return out


def write_kitti_layout(*args, **kwargs):
    """See :func:`fadepth.data.synthetic_export.write_kitti_layout`."""
    from .synthetic_export import write_kitti_layout as _write

    return _write(*args, **kwargs)
