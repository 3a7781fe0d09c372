"""SmallDepth (Sec. III-A, eqs. 2-12): a sparse encoder-decoder DepthNet.

Encoder (eqs. 8-9): stem F_s (3x3 stride-2 conv, design note section 7.1), then four stages of
sparse downsampling F_sd followed by n = 1, 1, 2, 2 double-scale sparse residual blocks F_dsr.
X_enc^0..4 sit at H/2 .. H/32. Decoder (eq. 10 as de-garbled in the design note):
X_dec^3 = X_enc^3 + F_up(X_enc^4), X_dec^k = X_enc^k + F_up(X_dec^{k+1}) for k = 2, 1, 0.
Disparity (eq. 11) at H/2, H/4, H/8, H/16 from two 3x3 heads (dilation 1 and 2) averaged after sigmoid.

Default widths (64, 64, 128, 256, 512) and DSR expansion (1, 1, 1, 1.5) are "configuration A" of the
design note (section 3.2): 2.12 M params / 0.26 GMACs encoder and 0.289 M / 0.165 G decoder at 128x416,
against Table IV's 2.07 M / 0.25 G and 0.28 M / 0.17 G. Both are options (`widths`, `expansion`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from fadepth.models.blocks import ConvBN, DropFunction, conv2d, resize_to
from fadepth.models.registry import register

DEFAULT_WIDTHS = (64, 64, 128, 256, 512)
DEFAULT_EXPANSION = (1.0, 1.0, 1.0, 1.5)
BLOCKS_PER_STAGE = (1, 1, 2, 2)  # eq. 9
IMAGE_MEAN, IMAGE_STD = 0.45, 0.225


class SparseDownsample(nn.Module):
    """Eq. 2: X_o = F_context(X_i) + F_d(F_c(X_i)).

    F_context: KxK stride-2 grouped conv with g = gcd(Ci, Co) (depthwise / depthwise-multiplier for
    doubling widths); F_c: strided 1x1 dense conv, dropped per sample with rate pb_sd. ReLU after the sum.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.context = ConvBN(cin, cout, kernel, stride=2, groups=math.gcd(cin, cout), act=False)
        self.channel = ConvBN(cin, cout, 1, stride=2, act=False)
        self.drop = DropFunction("sd")
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.context(x) + self.drop(self.channel(x)))


class DoubleScaleSparseResidual(nn.Module):
    """Eq. 3: X_mid = F_ct(X_i) (1x1, C -> rC); X_sc / X_spc = depthwise 3x3 with dilation 1 / 2;
    X_o = F_ct(F_d(X_sc) + F_d(X_spc) + X_mid) + X_i (two independent drops at rate pb_dsr).

    ReLU after the expand and after each depthwise conv; the projection and the residual sum are linear.
    """

    def __init__(self, channels: int, expansion: float = 1.0, far_dilation: int = 2):
        super().__init__()
        mid = int(round(channels * expansion))
        self.expand = ConvBN(channels, mid, 1)
        self.near = ConvBN(mid, mid, 3, groups=mid)  # F_sc
        self.far = ConvBN(mid, mid, 3, groups=mid, dilation=far_dilation)  # F_spc ("non-adjacent" pixels)
        self.drop_near = DropFunction("dsr")
        self.drop_far = DropFunction("dsr")
        self.project = ConvBN(mid, channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.expand(x)
        mixed = self.drop_near(self.near(mid)) + self.drop_far(self.far(mid)) + mid
        return self.project(mixed) + x


class SparseUpsample(nn.Module):
    """Eq. 6: X_o = F_sc(F_chs(F_bi(F_sc(F_ct(X_i))))): 1x1 C_{k+1} -> C_k, depthwise 3x3, bilinear x2,
    1x1 C_k -> C_k, depthwise 3x3. ReLU inside; the last conv is linear (its output is summed with the skip).
    The bilinear step resizes to the skip's size, so inputs not divisible by 32 work too."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.reduce = ConvBN(cin, cout, 1)  # F_ct
        self.context = ConvBN(cout, cout, 3, groups=cout)  # F_sc
        self.mix = ConvBN(cout, cout, 1)  # F_chs
        self.refine = ConvBN(cout, cout, 3, groups=cout, act=False)  # F_sc

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = self.context(self.reduce(x))
        x = resize_to(x, tuple(size), "bilinear")  # F_bi
        return self.refine(self.mix(x))


class DualDilationDispHead(nn.Module):
    """Eq. 11: X_disp = (sigmoid(F_1(X)) + sigmoid(F_2(X))) / 2, F_i a 3x3 conv C -> 1 with dilation i."""

    def __init__(self, channels: int):
        super().__init__()
        self.head1 = conv2d(channels, 1, 3, dilation=1, bias=True)
        self.head2 = conv2d(channels, 1, 3, dilation=2, bias=True)

    def init_disparity(self, logit: float) -> None:
        """Start both heads at pre-sigmoid `logit` (``fadepth.models.disparity.set_start_depth``)."""
        for head in (self.head1, self.head2):
            nn.init.constant_(head.bias, logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (torch.sigmoid(self.head1(x)) + torch.sigmoid(self.head2(x)))


class SmallDepthEncoder(nn.Module):
    """Eqs. 8-9: X_enc^0 = F_s(I); X_enc^k = F_dsr^(k,n)(F_sd(X_enc^{k-1})), k = 1..4."""

    def __init__(self, widths: Sequence[int], expansion: Sequence[float]):
        super().__init__()
        self.stem = ConvBN(3, widths[0], 3, stride=2)
        stages = []
        for k in range(1, 5):
            blocks = [DoubleScaleSparseResidual(widths[k], expansion[k - 1]) for _ in range(BLOCKS_PER_STAGE[k - 1])]
            stages.append(nn.Sequential(SparseDownsample(widths[k - 1], widths[k]), *blocks))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class SmallDepthDecoder(nn.Module):
    """Eq. 10 (de-garbled): equal-resolution skips only; eq. 11 heads at X_dec^0..3 (H/2 .. H/16)."""

    disparity_heads = ("heads",)  # the eq. 11 heads (ETM leaves them alone with model.etm.heads=false)

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        self.ups = nn.ModuleList(SparseUpsample(widths[k + 1], widths[k]) for k in range(4))
        self.heads = nn.ModuleList(DualDilationDispHead(widths[k]) for k in range(4))

    def forward(self, enc: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        dec = [None, None, None, None, enc[4]]  # X_dec^4 := X_enc^4 (design note section 6.2)
        for k in range(3, -1, -1):
            dec[k] = enc[k] + self.ups[k](dec[k + 1], enc[k].shape[-2:])
        disp = [self.heads[k](dec[k]) for k in range(4)]
        return disp, dec


class SmallDepth(nn.Module):
    """SmallDepth DepthNet: image (B,3,H,W) in [0,1] -> {"disp": 4 maps at H/2..H/16, "enc": X_enc^0..4,
    "dec": X_dec^0..3 + X_enc^4}, all finest first. Input normalised inside: (x - 0.45) / 0.225."""

    size_multiple = 1  # any H, W: every upsampling resizes to its skip's size (fadepth.losses.pyramid.level_size)

    def __init__(self, widths: Sequence[int] | None = None, expansion: Sequence[float] | None = None):
        super().__init__()
        widths = tuple(widths or DEFAULT_WIDTHS)
        expansion = tuple(expansion or DEFAULT_EXPANSION)
        if len(widths) != 5 or len(expansion) != 4:
            raise ValueError(f"SmallDepth needs 5 widths and 4 expansion ratios, got {widths} and {expansion}")
        self.widths, self.expansion = widths, expansion
        self.encoder = SmallDepthEncoder(widths, expansion)
        self.decoder = SmallDepthDecoder(widths)
        self.enc_channels = list(widths)
        self.dec_channels = list(widths)

    def forward(self, image: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        enc = self.encoder((image - IMAGE_MEAN) / IMAGE_STD)
        disp, dec = self.decoder(enc)
        return {"disp": disp, "enc": enc, "dec": dec}


@register("smalldepth", kind="depth")
def smalldepth(widths=None, expansion=None) -> nn.Module:
    """SmallDepth (eqs. 2-12), configuration A: widths 64,64,128,256,512, DSR expansion 1,1,1,1.5."""
    return SmallDepth(widths, expansion)
