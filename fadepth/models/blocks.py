"""Small building blocks shared by the depth models: conv+BN(+act) and the drop function F_d (eq. 4).

`ConvBN` keeps the conv -> BN pairing explicit so that `fadepth.models.deploy` can fold the BN into the
conv (`ConvBN.fuse()`); `fuse_conv_bn` is the folding algebra shared with the deploy walker.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DROP_KINDS = ("dsr", "sd")


def sample_keep_mask(batch: int, keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample Bernoulli(keep) mask of shape (B,1,1,1), survivors rescaled by 1/keep (eq. 4).

    ``keep`` is a 0-dim tensor on ``like``'s device: the draw needs no host value (no sync, one graph for every
    rate under torch.compile / CUDA graphs). keep = 0 gives zeros."""
    mask = torch.empty((batch, 1, 1, 1), dtype=like.dtype, device=like.device).bernoulli_(keep)
    return mask / keep.clamp(min=1e-12)


class DropFunction(nn.Module):
    """F_d of eq. 4: drop whole samples of a branch in training, identity in eval.

    `kind` ("dsr" for the DSR branches of eq. 3, "sd" for the channel branch of eq. 2) tells
    `fadepth.schedules.apply_drop_rates` which maximum rate (pb_dsr / pb_sd) to schedule into `rate`. The rate
    lives on the device (buffer ``keep_prob`` = 1 - rate, set in place), so a scheduled rate changes no graph and
    the training forward never reads it on the host; at rate 0 the mask is exactly 1.
    """

    def __init__(self, kind: str, rate: float = 0.0):
        super().__init__()
        if kind not in DROP_KINDS:
            raise ValueError(f"DropFunction kind must be one of {DROP_KINDS}, got {kind!r}")
        self.kind = kind
        self.register_buffer("keep_prob", torch.tensor(1.0 - float(rate)), persistent=False)

    @property
    def rate(self) -> float:
        """The current drop rate (reads the device value: for tests and logs, not for the training step)."""
        return 1.0 - float(self.keep_prob)

    @rate.setter
    def rate(self, value: float) -> None:
        with torch.no_grad():
            self.keep_prob.fill_(1.0 - float(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x * sample_keep_mask(x.shape[0], self.keep_prob.to(x.dtype), x)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


def conv2d(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, dilation: int = 1,
           bias: bool = False, padding_mode: str = "zeros") -> nn.Conv2d:
    """A conv whose padding keeps the sampling grid centred ('same' at stride 1, ceil(H/s) at stride s)."""
    padding = dilation * (kernel // 2)
    return nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias, padding_mode)


class ConvBN(nn.Module):
    """conv -> BatchNorm -> optional activation. `fuse()` folds the BN into the conv (deploy)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 dilation: int = 1, act: bool = True):
        super().__init__()
        self.conv = conv2d(cin, cout, kernel, stride, groups, dilation)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to bn(conv(x)) in eval: W * g/sqrt(var+eps), b' = (b - mean) * g/sqrt(var+eps) + beta."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"can only fuse BatchNorm into nn.Conv2d, got {type(conv).__name__} (fold ETM first)")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, True, conv.padding_mode,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean) * scale + shift)
    return fused


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Upsample to an exact size (x2 when the input is divisible by 32, also right for other sizes)."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)
