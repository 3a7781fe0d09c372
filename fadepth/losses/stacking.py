"""Small tensor helpers of L_cr: frame slicing, resizing, masked means and view re-ordering without host copies."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

def select_frame(tree: Any, index: int, batch: int, total: int) -> Any:
    """Slice frame `index` out of a frame-major batch of `total` rows, recursively in dicts/lists."""
    if isinstance(tree, torch.Tensor):
        return tree[index * batch : (index + 1) * batch] if tree.dim() > 0 and tree.shape[0] == total else tree
    if isinstance(tree, dict):
        return {k: select_frame(v, index, batch, total) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(select_frame(v, index, batch, total) for v in tree)
    return tree


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def structure_difference(depth_comp: torch.Tensor, depth_interp: torch.Tensor) -> torch.Tensor:
    """|D_comp - D_interp| / (D_comp + D_interp) in [0, 1] (0 where D_comp is not positive)."""
    comp = depth_comp.clamp(min=1e-3)
    return ((comp - depth_interp).abs() / (comp + depth_interp)).clamp(0.0, 1.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, start_dim: int = 0) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is set, over the dims from ``start_dim`` on (all of them by default)."""
    return (x * mask).flatten(start_dim).sum(-1) / mask.flatten(start_dim).sum(-1).clamp(min=1.0)


class StaticIndex:
    """Index tensors for re-ordering views, built once per (device, index) and kept: a step sends nothing from
    the host (CUDA graphs forbid it) and each re-ordering is one ``index_select``."""

    def __init__(self):
        self.cache: dict[tuple, torch.Tensor] = {}

    def gather(self, stacked: torch.Tensor, index: Sequence[int], dim: int) -> torch.Tensor:
        if list(index) == list(range(stacked.shape[dim])):
            return stacked
        key = (stacked.device, tuple(index))
        if key not in self.cache:
            self.cache[key] = torch.tensor(index, device=stacked.device, dtype=torch.long)
        return stacked.index_select(dim, self.cache[key])


def flat(x: torch.Tensor, lead: int) -> torch.Tensor:
    """Merge the first ``lead`` dims into the batch axis."""
    return x.reshape(-1, *x.shape[lead:])
