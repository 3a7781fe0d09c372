"""Original HQDec blocks (design note §1.2, from the public fwucas/HQDec decoder), for Table I's comparison.

Every module here is built for one feature size: learnable (1,1,H,W) maps, learned positional embeddings
and non-overlapping patches (kernel = stride = patch) restored by ConvTranspose (the grid artefacts that
HQDecv2 removes). Shared pieces (ECA, TokenMixer, AxialDown, AdaIEFusion) come from `hqdec_blocks.py`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fadepth.models.hqdec_blocks import ECA, Size, TokenMixer, conv_gn_elu


class TransBlock(nn.Module):
    """HQDec's global branch: depthwise patch embed (kernel = stride = patch) + 1x1 -> embed (GN, ELU),
    learned positional embedding, ViT, then 1x1 embed -> C and a ConvTranspose with kernel = stride =
    patch (depthwise, then 1x1 + GN + ELU, for AdaRM; dense C -> `out_channels` for AttDisp)."""

    def __init__(self, channels: int, embed_dim: int, heads: int, patch: Size, feat_size: Size, depth: int = 2,
                 mlp_ratio: float = 2.0, out_channels: int | None = None):
        super().__init__()
        grid = (feat_size[0] // patch[0], feat_size[1] // patch[1])
        self.patch_dw = nn.Conv2d(channels, channels, patch, stride=patch, groups=channels)
        self.embed = conv_gn_elu(channels, embed_dim)
        self.mixer = TokenMixer(embed_dim, heads, depth, mlp_ratio, "learned", grid[0] * grid[1])
        self.to_cnn = nn.Conv2d(embed_dim, channels, 1)
        if out_channels is None:  # AdaRM flavour
            self.restore = nn.Sequential(nn.ConvTranspose2d(channels, channels, patch, stride=patch, groups=channels),
                                         conv_gn_elu(channels, channels))
        else:  # AttDisp flavour
            self.restore = nn.ConvTranspose2d(channels, out_channels, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(self.to_cnn(self.mixer(self.embed(self.patch_dw(x)))))


class AdaRM(nn.Module):
    """HQDec AdaRM: ELU(BN(x) + p1 * local + p2 * global), p1/p2 (1,1,H,W) maps starting at 0.
    local: 1x1 C->C/e, ELU, BN; 3x3 C/e, ELU, BN; 1x1 -> C, BN; ECA. global: TransBlock on the C/e tensor,
    BN, 1x1 -> C, BN, ECA."""

    def __init__(self, channels: int, expand: int, embed_dim: int, heads: int, patch: Size, feat_size: Size,
                 depth: int = 2, mlp_ratio: float = 2.0):
        super().__init__()
        mid = max(1, channels // expand)
        self.squeeze = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ELU(inplace=True), nn.BatchNorm2d(mid))
        self.local = nn.Sequential(
            nn.Conv2d(mid, mid, 3, padding=1, padding_mode="reflect"), nn.ELU(inplace=True), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, channels, 1), nn.BatchNorm2d(channels), ECA(channels, feat_size))
        self.glob = nn.Sequential(
            TransBlock(mid, embed_dim, heads, patch, feat_size, depth, mlp_ratio), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, channels, 1), nn.BatchNorm2d(channels), ECA(channels, feat_size))
        self.bn = nn.BatchNorm2d(channels)
        self.param1 = nn.Parameter(torch.zeros(1, 1, *feat_size))
        self.param2 = nn.Parameter(torch.zeros(1, 1, *feat_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.squeeze(x)
        return F.elu(self.bn(x) + self.param1 * self.local(x0) + self.param2 * self.glob(x0))


class DAdaNRSU(nn.Module):
    """HQDec DAdaNRSU (x2): BN(bilinear(x)) + lambda * BN(PixelShuffle(BN(ELU(AdaRM_4C(BN(ELU(1x1 C->4C x))))))),
    lambda (1,1,2H,2W) starting at 0; the inner AdaRM (e=4) runs at the input resolution."""

    def __init__(self, channels: int, embed_dim: int, heads: int, patch: Size, feat_size: Size, depth: int = 2,
                 mlp_ratio: float = 2.0):
        super().__init__()
        wide = 4 * channels
        self.expand = nn.Sequential(nn.Conv2d(channels, wide, 1), nn.ELU(inplace=True), nn.BatchNorm2d(wide))
        self.refine = nn.Sequential(AdaRM(wide, 4, embed_dim, heads, patch, feat_size, depth, mlp_ratio),
                                    nn.ELU(inplace=True), nn.BatchNorm2d(wide))
        self.bn_pixel, self.bn_interp = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)
        self.lam = nn.Parameter(torch.zeros(1, 1, 2 * feat_size[0], 2 * feat_size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = self.bn_pixel(F.pixel_shuffle(self.refine(self.expand(x)), 2))
        interp = self.bn_interp(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return interp + self.lam * pixel


class AttDisp(nn.Module):
    """HQDec AttDisp: x' = ECA(x) (with a spatial map); sigmoid(conv3x3(x') * sigmoid(TransBlock_Disp(x')))."""

    def __init__(self, channels: int, embed_dim: int, heads: int, patch: Size, feat_size: Size,
                 out_channels: int = 1, depth: int = 2, mlp_ratio: float = 2.0):
        super().__init__()
        self.att = ECA(channels, feat_size)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1, padding_mode="reflect")
        self.trans = TransBlock(channels, embed_dim, heads, patch, feat_size, depth, mlp_ratio, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.att(x)
        return torch.sigmoid(self.conv(x) * torch.sigmoid(self.trans(x)))
