"""PoseNets: two frames stacked on channels (B,6,H,W) in [0,1] -> (B,6) = axis-angle (3) + translation (3).

`posenet_rn18`: monodepth2's pose network (resnet18 with a 6-channel first conv). `posenet_fbnetv3`:
timm `fbnetv3_b` (design note section 7.10), 6-channel stem via `in_chans=6`. Both normalise the input
inside ((x - 0.45) / 0.225) and share `PoseDecoder`. Weights are random (no downloads).
"""
from __future__ import annotations

import timm
import torch
from torch import nn

from fadepth.models.baselines import ResNet18Encoder
from fadepth.models.registry import register
from fadepth.models.smalldepth import IMAGE_MEAN, IMAGE_STD


MONODEPTH2_POSE_SCALE = 0.01


class PoseDecoder(nn.Module):
    """monodepth2 pose decoder: 1x1 squeeze to 256 + ReLU, two 3x3 256 convs + ReLU, 1x1 to 6,
    spatial mean, x0.01 (the translation by `translation_scale`, monodepth2's 0.01 by default: with the depth
    heads' start it sets the scale a from-scratch run settles at, ``model.pose_translation_scale``,
    docs/decisions.md row 32)."""

    def __init__(self, in_channels: int, width: int = 256, translation_scale: float = MONODEPTH2_POSE_SCALE):
        super().__init__()
        self.register_buffer("scale", torch.tensor([MONODEPTH2_POSE_SCALE] * 3 + [translation_scale] * 3),
                             persistent=False)
        self.squeeze = nn.Conv2d(in_channels, width, 1)
        self.pose0 = nn.Conv2d(width, width, 3, padding=1)
        self.pose1 = nn.Conv2d(width, width, 3, padding=1)
        self.pose2 = nn.Conv2d(width, 6, 1)
        self.relu = nn.ReLU()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.squeeze(feature))
        x = self.relu(self.pose0(x))
        x = self.relu(self.pose1(x))
        return self.scale * self.pose2(x).mean(dim=(2, 3))


class PairBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training, normalises a batch of ``groups`` stacked pair-batches one group at a time.

    One pose pass over every (target, source) pair then computes what one pass per pair computes (each pair's
    batch statistics, the running statistics updated pair after pair) while the convolutions run once on the
    larger batch. Same parameters and buffers as BatchNorm2d (state dicts are interchangeable)."""

    groups = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1 or not self.training:
            return super().forward(x)
        return torch.cat([super(PairBatchNorm2d, self).forward(chunk) for chunk in x.chunk(self.groups)])


def _pairwise_batchnorms(module: nn.Module) -> None:
    """Replace every plain BatchNorm2d under `module` by a PairBatchNorm2d with the same state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            pair_bn = PairBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
            pair_bn.load_state_dict(child.state_dict())
            setattr(module, name, pair_bn)
        else:
            _pairwise_batchnorms(child)


class PoseNet(nn.Module):
    """Encoder whose last feature map feeds `PoseDecoder`.

    ``forward(frames, pairs=P)`` takes P pair-batches stacked on the batch axis in one pass, normalising each
    pair-batch on its own (`PairBatchNorm2d`): the same values as P calls. Encoders whose normalisation cannot
    be split so (timm's BatchNormAct2d in fbnetv3) report ``batches_pairs = False`` and take one pair per call."""

    def __init__(self, encoder: nn.Module, last_channels: int, translation_scale: float = MONODEPTH2_POSE_SCALE):
        super().__init__()
        self.encoder = encoder
        self.decoder = PoseDecoder(last_channels, translation_scale=translation_scale)
        _pairwise_batchnorms(self.encoder)
        self.batches_pairs = not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                     and not isinstance(m, PairBatchNorm2d) for m in self.modules())

    def forward(self, frames: torch.Tensor, pairs: int = 1) -> torch.Tensor:
        if frames.shape[1] != 6:
            raise ValueError(f"PoseNet expects (B,6,H,W) (two RGB frames stacked), got {tuple(frames.shape)}")
        if pairs > 1 and (not self.batches_pairs or frames.shape[0] % pairs):
            raise ValueError(f"cannot split a batch of {frames.shape[0]} into {pairs} pair-batches here")
        norms = [m for m in self.modules() if isinstance(m, PairBatchNorm2d)] if pairs > 1 else []
        for norm in norms:
            norm.groups = pairs
        try:
            feats = self.encoder((frames - IMAGE_MEAN) / IMAGE_STD)
            return self.decoder(feats[-1])
        finally:
            for norm in norms:
                norm.groups = 1


@register("posenet_rn18", kind="pose")
def posenet_rn18(translation_scale: float = MONODEPTH2_POSE_SCALE) -> nn.Module:
    """monodepth2 PoseNet: resnet18 with a 6-channel first conv + pose decoder."""
    return PoseNet(ResNet18Encoder(in_channels=6), 512, translation_scale)


@register("posenet_fbnetv3", kind="pose")
def posenet_fbnetv3(translation_scale: float = MONODEPTH2_POSE_SCALE) -> nn.Module:
    """timm fbnetv3_b (features_only, in_chans=6) + monodepth2 pose decoder."""
    encoder = timm.create_model("fbnetv3_b", pretrained=False, features_only=True, in_chans=6)
    return PoseNet(encoder, encoder.feature_info.channels()[-1], translation_scale)
