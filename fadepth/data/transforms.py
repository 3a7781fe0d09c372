"""Sec. IV-B training augmentation, applied identically to every frame of a snippet.

Order: random up-scale then random crop back to (H, W) (intrinsics adjusted), horizontal flip,
ColorJitter (brightness, contrast, saturation, hue; one set of factors for the whole snippet,
applied in a random order, with probability ``color_jitter_p``).  Every random draw comes from the
``torch.Generator`` passed in, so a seed fixes the result.

Clean and jittered frames (monodepth2's ``color`` / ``color_aug``): the geometric part (scale, crop,
flip) changes the frames everything sees; ColorJitter produces a *second* copy, ``images_aug``, that
only the networks see.  The photometric loss compares the un-jittered ``images`` (samples carry both;
``fadepth.losses.objective`` routes them).  The pyramid's colour level is the one place where the loss
compares jittered images.

Intrinsics follow ``fadepth.geometry`` (pixel centres at integers; ``scale_intrinsics``,
``crop_intrinsics``, ``flip_intrinsics``).  Depth values are unchanged by all of these (only
resampled, nearest-neighbour).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from fadepth.geometry import crop_intrinsics, flip_intrinsics, scale_intrinsics


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=gen))


def scale_and_crop(images, K, depth, scale: float, gen: torch.Generator):
    """Up-scale by `scale` (>= 1) then crop a random (H, W) window; returns (images, K, depth)."""
    height, width = images.shape[-2:]
    new_h, new_w = max(height, round(height * scale)), max(width, round(width * scale))
    if (new_h, new_w) == (height, width):
        return images, K, depth
    images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    if depth is not None:
        depth = F.interpolate(depth[None], size=(new_h, new_w), mode="nearest")[0]
    y0 = int(torch.randint(0, new_h - height + 1, (), generator=gen))
    x0 = int(torch.randint(0, new_w - width + 1, (), generator=gen))
    images = images[..., y0:y0 + height, x0:x0 + width]
    if depth is not None:
        depth = depth[..., y0:y0 + height, x0:x0 + width]
    K = crop_intrinsics(scale_intrinsics(K, new_w / width, new_h / height), x0, y0)
    return images.contiguous(), K, None if depth is None else depth.contiguous()


def hflip(images, K, depth):
    return images.flip(-1), flip_intrinsics(K, images.shape[-1]), None if depth is None else depth.flip(-1)


def color_jitter(images, cfg, gen: torch.Generator):
    """One set of ColorJitter factors for all frames (F, 3, H, W), applied in a random order."""
    b = _uniform(gen, max(0.0, 1 - cfg.brightness), 1 + cfg.brightness)
    c = _uniform(gen, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast)
    s = _uniform(gen, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)
    h = _uniform(gen, -cfg.hue, cfg.hue)
    ops = [
        lambda x: TF.adjust_brightness(x, b),
        lambda x: TF.adjust_contrast(x, c),
        lambda x: TF.adjust_saturation(x, s),
        lambda x: TF.adjust_hue(x, h) if cfg.hue > 0 else x,
    ]
    for i in torch.randperm(4, generator=gen).tolist():
        images = ops[i](images)
    return images.clamp(0.0, 1.0)


class Augmented(NamedTuple):
    images: torch.Tensor  # (F,3,H,W) geometric augmentation only: what the photometric loss compares
    K: torch.Tensor  # (3,3) intrinsics of both image sets
    depth: torch.Tensor | None  # (1,H,W) or None
    images_aug: torch.Tensor  # (F,3,H,W) the same frames colour-jittered (or `images` itself): network input

    def sample_fields(self) -> dict:
        """The fields a training sample carries (``depth`` only when there is one)."""
        return {k: v for k, v in self._asdict().items() if v is not None}


class SnippetAugment:
    """Callable ``(images (F,3,H,W), K (3,3), depth (1,H,W) | None, gen) -> Augmented``."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, images, K, depth=None, gen: torch.Generator | None = None) -> Augmented:
        cfg = self.cfg
        gen = gen if gen is not None else torch.Generator().manual_seed(0)
        lo, hi = cfg.scale_range
        scale = _uniform(gen, lo, hi)
        images, K, depth = scale_and_crop(images, K, depth, scale, gen)
        if float(torch.rand((), generator=gen)) < cfg.flip_p:
            images, K, depth = hflip(images, K, depth)
        images_aug = images
        if float(torch.rand((), generator=gen)) < cfg.color_jitter_p:
            images_aug = color_jitter(images, cfg, gen)
        return Augmented(images, K, depth, images_aug)


def generator_from_global() -> torch.Generator:
    """A generator seeded from torch's global RNG: deterministic under ``torch.manual_seed`` and the
    DataLoader's per-worker seeding, yet different for every sample and epoch."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
