"""Scene geometry and camera trajectory of one synthetic street sequence.

World frame (metres): x to the right of the street, y DOWN, z forward along the street; the road is
the plane y = 0 and the street centre line is x = 0.  Every object is an axis-aligned box
(buildings, back walls, the wall closing the street, parked cars, crates, poles).  Camera frame: x
right, y down, z forward (OpenCV).  Poses are camera-to-world: ``p_world = R @ p_cam + c``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACADE, CAR, PLAIN = 0, 1, 2
CAMERA_HEIGHT = 1.65


@dataclass
class Scene:
    """Boxes as (N,3) lower / upper corners, material id, base colour (N,3) and texture seed."""

    lo: np.ndarray
    hi: np.ndarray
    material: np.ndarray
    color: np.ndarray
    tex_seed: np.ndarray
    road_half: float
    seed: int
    sun: np.ndarray  # unit vector towards the sun (world)
    gain: np.ndarray  # per-channel exposure / white balance of the sequence (3,)
    traj: dict  # trajectory parameters, see camera_pose


def _add(boxes: list, lo, hi, material: int, color) -> None:
    boxes.append((np.asarray(lo, np.float64), np.asarray(hi, np.float64), material, np.asarray(color)))


def _buildings(rng, boxes, side: int, x_front: float, z0: float, z1: float) -> None:
    z = z0
    while z < z1:
        length = rng.uniform(8.0, 22.0)
        if rng.random() < 0.15:  # a gap: the back wall shows through
            z += rng.uniform(4.0, 10.0)
            continue
        front = x_front + rng.uniform(0.0, 2.5)
        height = rng.uniform(4.0, 16.0)
        xs = sorted([side * front, side * (front + 10.0)])
        color = rng.uniform(0.35, 0.85, 3) * np.array([1.0, 0.9, 0.8]) ** rng.uniform(0, 2)
        _add(boxes, [xs[0], -height, z], [xs[1], 0.0, z + length], FACADE, color)
        z += length + rng.uniform(0.0, 0.6)


def _street_furniture(rng, boxes, side: int, road_half: float, z0: float, z1: float) -> None:
    z = z0
    while z < z1:  # parked cars along the kerb
        z += rng.uniform(1.0, 9.0)
        if rng.random() < 0.65:
            xc = side * (road_half - 1.1 + rng.uniform(-0.15, 0.15))
            length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.35, 1.7)
            color = rng.uniform(0.05, 0.95, 3)
            _add(boxes, [xc - width / 2, -height, z], [xc + width / 2, 0.0, z + length], CAR, color)
            z += length
    z = z0 + rng.uniform(0.0, 10.0)
    while z < z1:  # poles at the kerb
        x = side * (road_half + 0.4)
        _add(boxes, [x - 0.1, -rng.uniform(4.0, 7.0), z], [x + 0.1, 0.0, z + 0.2], PLAIN, [0.5, 0.5, 0.55])
        z += rng.uniform(12.0, 25.0)
    z = z0 + rng.uniform(0.0, 15.0)
    while z < z1:  # crates on the sidewalk
        size = rng.uniform(0.5, 1.4)
        x = side * (road_half + rng.uniform(1.0, 2.0))
        _add(boxes, [x - size / 2, -size, z], [x + size / 2, 0.0, z + size], PLAIN, rng.uniform(0.3, 0.8, 3))
        z += rng.uniform(10.0, 30.0)


def make_scene(seed_seq: list[int], frames: int, speed: float) -> Scene:
    """Random street for `frames` frames at about `speed` m/frame, deterministic in `seed_seq`."""
    rng = np.random.default_rng(seed_seq)
    road_half = rng.uniform(3.5, 5.0)
    sidewalk = rng.uniform(2.0, 3.5)
    speed = speed * rng.uniform(0.85, 1.15)
    length = frames * speed
    z0, z_end = -25.0, length + rng.uniform(60.0, 80.0)
    boxes: list = []
    for side in (-1, 1):
        _buildings(rng, boxes, side, road_half + sidewalk, z0, z_end)
        _street_furniture(rng, boxes, side, road_half, z0 + 5.0, z_end - 5.0)
        xs = sorted([side * 35.0, side * 37.0])  # back wall, seen through gaps between buildings
        _add(boxes, [xs[0], -12.0, z0], [xs[1], 0.0, z_end], FACADE, rng.uniform(0.4, 0.8, 3))
    _add(boxes, [-40.0, -rng.uniform(8.0, 16.0), z_end], [40.0, 0.0, z_end + 2.0], FACADE, rng.uniform(0.4, 0.8, 3))
    lo, hi, material, color = (np.stack([b[i] for b in boxes]) for i in range(4))
    sun = np.array([rng.uniform(-1, 1), -rng.uniform(0.5, 1.5), rng.uniform(-1, 1)])
    lane = rng.uniform(-1.0, 1.0) * min(1.2, road_half - 3.0)
    traj = dict(
        speed=speed, lane=lane, z_start=rng.uniform(0.0, 3.0),
        amp=rng.uniform(0.1, 0.35), wavelength=rng.uniform(25.0, 60.0), phase=rng.uniform(0, 2 * np.pi),
        yaw_amp=np.deg2rad(rng.uniform(0.5, 1.5)), pitch_amp=np.deg2rad(rng.uniform(0.2, 0.6)),
        roll_amp=np.deg2rad(rng.uniform(0.0, 0.3)), period=rng.uniform(8.0, 20.0), phase2=rng.uniform(0, 2 * np.pi),
    )
    return Scene(
        lo=lo, hi=hi, material=material.astype(np.int64), color=color.astype(np.float32),
        tex_seed=rng.integers(0, 2**31, len(boxes)), road_half=road_half, seed=int(rng.integers(0, 2**31)),
        sun=sun / np.linalg.norm(sun),
        gain=(rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3)).astype(np.float32), traj=traj,
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def camera_pose(scene: Scene, frame: int) -> np.ndarray:
    """4x4 camera-to-world pose of `frame`: forward motion with lateral / yaw / pitch / roll wobble.

    Yaw follows the heading of the lateral sine (positive yaw turns towards +x) plus a small
    oscillation, so consecutive poses are never a pure translation.
    """
    t = scene.traj
    z = t["z_start"] + frame * t["speed"]
    k = 2 * np.pi / t["wavelength"]
    x = t["lane"] + t["amp"] * np.sin(k * z + t["phase"])
    heading = np.arctan(t["amp"] * k * np.cos(k * z + t["phase"]))
    w = 2 * np.pi * frame / t["period"] + t["phase2"]
    yaw = heading + t["yaw_amp"] * np.sin(w)
    pitch = t["pitch_amp"] * np.sin(1.7 * w + 1.0)
    roll = t["roll_amp"] * np.sin(0.6 * w + 2.0)
    pose = np.eye(4)
    pose[:3, :3] = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)
    pose[:3, 3] = [x, -CAMERA_HEIGHT + 0.02 * np.sin(3.1 * w), z]
    return pose
