"""Torch datasets over :class:`fadepth.data.synthetic.SyntheticScenes` (training snippets, test set)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .synthetic import SyntheticScenes
from .transforms import SnippetAugment, generator_from_global


class SyntheticVideoDataset(Dataset):
    """Snippets ``frame_ids`` (target first, e.g. [0, -1, 1]) around every frame whose neighbours
    all exist in its sequence (frames at a sequence edge are not used as targets)."""

    def __init__(self, scenes: SyntheticScenes, frame_ids, augment: SnippetAugment | None = None):
        self.scenes, self.frame_ids, self.augment = scenes, list(frame_ids), augment
        lo, hi = -min(self.frame_ids + [0]), scenes.frames_per_sequence - max(self.frame_ids + [0])
        self.index = [(s, f) for s in range(scenes.num_sequences) for f in range(lo, hi)]
        if not self.index:
            raise ValueError(
                f"synthetic {scenes.split}: no frame has all neighbours {self.frame_ids} "
                f"(frames_per_sequence={scenes.frames_per_sequence}, sequences={scenes.num_sequences})"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        seq, frame = self.index[i]
        frames = [self.scenes.render(seq, frame + k) for k in self.frame_ids]
        images = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2).contiguous()
        K = torch.from_numpy(frames[0].K).float()
        depth = torch.from_numpy(frames[0].depth)[None]
        sample_id = f"synthetic/{self.scenes.split}/{seq:03d}/{frame:05d}"
        sample = {"images": images, "K": K, "depth": depth, "id": sample_id}
        if self.augment is not None:
            sample.update(self.augment(images, K, depth, generator_from_global()).sample_fields())
        return sample


class SyntheticTestSet:
    """Sequence of ``{"image": (3,H,W), "gt": (H,W) float32 exact depth (0 = sky), "id"}``."""

    protocol = "synthetic"

    def __init__(self, scenes: SyntheticScenes, max_images: int | None = None):
        self.scenes = scenes
        index = [(s, f) for s in range(scenes.num_sequences) for f in range(scenes.frames_per_sequence)]
        if max_images is not None and max_images < len(index):  # spread evenly over the sequences
            index = [index[int(k)] for k in np.linspace(0, len(index) - 1, max_images).round()]
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        seq, frame = self.index[i]
        f = self.scenes.render(seq, frame)
        image = torch.from_numpy(f.image).permute(2, 0, 1).contiguous()
        return {"image": image, "gt": f.depth, "id": f"synthetic/{self.scenes.split}/{seq:03d}/{frame:05d}"}
