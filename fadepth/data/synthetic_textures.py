"""Procedural textures for the synthetic street, defined in WORLD coordinates.

Every function takes world-space surface coordinates ``(u, v)`` in metres (see
:func:`face_coords`) plus a per-pixel *footprint* (the world size of one pixel at the hit point, in
metres) and returns values in [0, 1].  Because the textures depend only on the world position (and
never on the camera), two views of the same surface point agree photometrically; the footprint is
used to fade out noise octaves and to box-filter periodic patterns analytically, so that distant
surfaces do not alias differently from view to view.
"""
from __future__ import annotations

import numpy as np

_TABLE_BITS = 10
_MASK = (1 << _TABLE_BITS) - 1
_VALUES = np.random.default_rng(20240607).random(1 << (2 * _TABLE_BITS)).astype(np.float32)  # 1024 x 1024


def _hash(ix, iy, seed) -> np.ndarray:
    """Integer lattice point (and integer seed, scalar or per-pixel) -> pseudo-random float32 in [0, 1).

    A lookup in a fixed random 1024 x 1024 table (period 1024 lattice cells per axis); the seed
    shifts the lookup column.
    """
    return _VALUES[(((np.asarray(ix) + (seed & _MASK)) & _MASK) << _TABLE_BITS) | (np.asarray(iy) & _MASK)]


def value_noise(u: np.ndarray, v: np.ndarray, freq: float, seed) -> np.ndarray:
    """Smooth value noise in [0, 1) on a lattice of spacing 1/freq metres."""
    seed = seed & _MASK
    x, y = u * np.float32(freq), v * np.float32(freq)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx = fx * fx * (3.0 - 2.0 * fx)
    fy = fy * fy * (3.0 - 2.0 * fy)
    col0 = (((x0.astype(np.int32) + seed) & _MASK) << _TABLE_BITS)
    col1 = ((col0 + (1 << _TABLE_BITS)) & (_MASK << _TABLE_BITS))
    row0 = y0.astype(np.int32) & _MASK
    row1 = (row0 + 1) & _MASK
    a, b = _VALUES[col0 | row0], _VALUES[col1 | row0]
    c, d = _VALUES[col0 | row1], _VALUES[col1 | row1]
    top = a + (b - a) * fx
    bottom = c + (d - c) * fx
    return (top + (bottom - top) * fy).astype(np.float32, copy=False)


def fbm(u, v, footprint, base_freq: float, octaves: int, seed: int) -> np.ndarray:
    """Fractal noise in [0, 1]; octaves finer than ~2 pixels fade to their mean (0.5)."""
    total = np.zeros(np.shape(u), np.float32)
    norm = 0.0
    freq, amp = base_freq, 1.0
    for k in range(octaves):
        keep = np.clip(1.5 - 2.0 * footprint * freq, 0.0, 1.0).astype(np.float32)
        n = value_noise(u, v, freq, seed + 7919 * k)
        total += amp * (0.5 + keep * (n - 0.5))
        norm += amp
        freq *= 2.0
        amp *= 0.55
    return total / norm


def _pulse_integral(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """Integral over [0, x] of the unit-period pulse that is 1 on [a, b) (0 <= a < b <= 1)."""
    whole = np.floor(x)
    return whole * (b - a) + np.clip(x - whole - a, 0.0, b - a)


def pulse(x: np.ndarray, a: float, b: float, width: np.ndarray) -> np.ndarray:
    """Periodic pulse (period 1, on over [a, b)) box-filtered over `width` (in periods): anti-aliased."""
    w = np.maximum(width, 1e-4)
    return ((_pulse_integral(x + 0.5 * w, a, b) - _pulse_integral(x - 0.5 * w, a, b)) / w).astype(np.float32)


def face_coords(p: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D surface coordinates of hit points `p` (N,3) on axis-aligned faces of normal `axis` (N,).

    x-faces -> (z, y), y-faces -> (x, z), z-faces -> (x, y): metres, so textures are world-fixed.
    """
    u = np.where(axis == 0, p[:, 2], p[:, 0])
    v = np.where(axis == 1, p[:, 2], p[:, 1])
    return u, v


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[:, None]


def road(p: np.ndarray, fp: np.ndarray, road_half: float, seed: int) -> np.ndarray:
    """Asphalt with dashed centre line and solid edge lines; paved sidewalk beyond the road."""
    x, z = p[:, 0], p[:, 2]
    grain = fbm(x, z, fp, 3.0, 3, seed)
    patches = value_noise(x, z, 0.25, seed + 11)
    asphalt = (0.22 + 0.16 * grain + 0.10 * patches)[:, None] * np.array([1.0, 1.0, 1.05], np.float32)
    w_x = fp / 0.16
    centre = pulse(x / 0.16 + 0.5, 0.0, 1.0, w_x) * (np.abs(x) < 0.2) * pulse(z / 9.0, 0.0, 0.35, fp / 9.0)
    edge_dist = np.abs(np.abs(x) - (road_half - 0.3))
    edge = np.clip(1.0 - (edge_dist - 0.07) / np.maximum(fp, 1e-3), 0.0, 1.0)
    paint = np.clip(centre + edge, 0.0, 1.0) * (0.6 + 0.4 * grain)
    color = _mix(asphalt, np.full_like(asphalt, 0.85), paint)
    tiles = 1.0 - 0.35 * (1.0 - pulse(x / 0.6, 0.06, 1.0, fp / 0.6) * pulse(z / 0.6, 0.06, 1.0, fp / 0.6))
    side = (0.45 + 0.2 * grain)[:, None] * np.array([1.0, 0.95, 0.85], np.float32)
    side = side * tiles[:, None]
    on_side = np.clip((np.abs(x) - road_half) / np.maximum(fp, 1e-3) + 0.5, 0.0, 1.0)
    return _mix(color, side, on_side)


def facade(u, v, fp, base: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Brick-ish wall with a grid of windows (3 m floors, 2.5-3.5 m bays) and large-scale stains."""
    s = seed
    bay = 2.0 + 1.5 * _hash(seed, 3, 17)
    bricks = pulse(v / 0.25, 0.1, 1.0, fp / 0.25) * pulse(u / 0.6 + 0.5 * (np.floor(v / 0.25) % 2), 0.05, 1.0, fp / 0.6)
    wall = base * (0.7 + 0.25 * bricks + 0.35 * (fbm(u, v, fp, 1.5, 3, s) - 0.5))[:, None]
    win = pulse(u / bay, 0.25, 0.75, fp / bay) * pulse(v / 3.0, 0.25, 0.7, fp / 3.0)
    glass = (0.12 + 0.25 * value_noise(u, v, 0.7, s + 1))[:, None] * np.array([0.8, 0.9, 1.0], np.float32)
    return _mix(wall, glass, win)


def car(u, v, fp, base: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Painted body, dark window band in the upper part, a little dirt noise."""
    s = seed
    body = base * (0.8 + 0.4 * (fbm(u, v, fp, 4.0, 2, s) - 0.5))[:, None]
    height_frac = np.clip((-v - 0.9) / np.maximum(fp, 1e-3), 0.0, 1.0)  # y is down: -v is height
    glass = np.full_like(body, 0.15) + 0.25 * value_noise(u, v, 2.0, s + 3)[:, None]
    return _mix(body, glass, height_frac)


def plain(u, v, fp, base: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Poles and crates: base colour modulated by noise and fine stripes."""
    s = seed
    stripes = pulse(v / 0.3, 0.0, 0.5, fp / 0.3)
    return base * (0.7 + 0.2 * stripes + 0.4 * (fbm(u, v, fp, 6.0, 2, s) - 0.5))[:, None]


def sky(d: np.ndarray, seed: int) -> np.ndarray:
    """Sky at infinity: colour from the world ray direction only (blue gradient and clouds)."""
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    elev = np.clip(-d[:, 1], 0.0, 1.0)  # y is down
    az = np.arctan2(d[:, 0], d[:, 2])
    blue = _mix(np.array([[0.75, 0.82, 0.9]], np.float32), np.array([[0.35, 0.55, 0.85]], np.float32), elev * 2.0)
    clouds = fbm(az * 8.0, elev * 20.0, np.zeros_like(elev), 0.5, 4, seed)
    cover = np.clip((clouds - 0.45) * 3.0, 0.0, 1.0)
    return _mix(blue, np.full_like(blue, 0.95), cover)
