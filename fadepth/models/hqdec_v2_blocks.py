"""HQDecv2 blocks (paper Sec. III-D, eqs. 24-27; Figs. 2-3): the overlapping-sampling global path,
AdaRMv2, DAdaNRSUv2 and AttDispV2. None of them holds a spatially shaped tensor, so they run at any size.

Decisions where the paper is silent (design note §7 decision 13): N_sq per level [2,4,4,8,8];
C_1 = C_2 = C / N_sq; F_ct = 1x1 conv + GN + ELU; F_rrlv2 = bilinear resize + 3x3 conv (+ GN + ELU,
except the last, which is linear); depthwise L3/L5 in DAdaNRSUv2; F_ci = SE + 1x1 + GN + ELU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fadepth.models.hqdec_blocks import ECA, SE, AdaCoeff, TokenMixer, conv_bn, conv_gn_elu


def overlap_sampling_rule(height: int, width: int) -> tuple[int, int]:
    """Eq. (26): (stride, kernel) of F_sc^i from m = min(H_{i-1}, W_{i-1})."""
    m = min(height, width)
    if m > 16:
        return 4, 5
    if m > 3:
        return 2, 3
    return 1, 3


class OverlapSampler(nn.Module):
    """Eq. (25b): F_samplev2^i = F_ct(F_sc^i(X)), F_sc a depthwise conv with (stride, kernel) from eq. (26)
    and padding k//2 (overlapping windows), F_ct a 1x1 conv + GN + ELU.

    The rule picks the kernel from the input size, so one 5x5 depthwise weight is kept and its centred
    3x3 part is used when the rule says k=3: the same parameters serve every input resolution."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        probe = nn.Conv2d(cin, cin, 5, groups=cin)  # only for PyTorch's default initialisation
        self.weight = nn.Parameter(probe.weight.detach().clone())
        self.bias = nn.Parameter(probe.bias.detach().clone())
        self.ct = conv_gn_elu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, kernel = overlap_sampling_rule(x.shape[-2], x.shape[-1])
        weight = self.weight if kernel == 5 else self.weight[:, :, 1:4, 1:4]
        x = F.conv2d(x, weight, self.bias, stride=stride, padding=kernel // 2, groups=x.shape[1])
        return self.ct(x)


class GlobalContextV2(nn.Module):
    """F_globalv2 (Fig. 3, eqs. 25a-25c): three overlapping samplings X_1..X_3 (C_3 = embed_dim), MHSA on
    the X_3 tokens (Y_3), then Y_{i-1} = F_rrlv2^i(X_i + Y_i) for i = 3, 2, 1 with F_rrlv2 = bilinear
    resize to X_{i-1}'s size + 3x3 conv. Returns Y_0 with `out_channels` (default: the input's C_0).

    The last recovery runs at the input resolution, the costliest place: when it keeps the channels and
    `depthwise_last` is set it is a depthwise 3x3 (the 1x1 F_unsqueeze that follows in AdaRMv2 makes it
    a separable square filter); `depthwise_last=False` gives the dense 3x3."""

    def __init__(self, in_channels: int, mid_channels: int, embed_dim: int, heads: int, depth: int = 2,
                 mlp_ratio: float = 2.0, out_channels: int | None = None, pos_embed: str = "sincos",
                 depthwise_last: bool = True):
        super().__init__()
        out_channels = out_channels or in_channels
        last_groups = out_channels if depthwise_last and out_channels == mid_channels else 1
        chans = [in_channels, mid_channels, mid_channels, embed_dim]
        self.samplers = nn.ModuleList(OverlapSampler(chans[i], chans[i + 1]) for i in range(3))
        self.mixer = TokenMixer(embed_dim, heads, depth, mlp_ratio, pos_embed)
        self.recover = nn.ModuleList([
            nn.Conv2d(chans[1], out_channels, 3, padding=1, groups=last_groups),  # Y_0: linear
            conv_gn_elu(chans[2], chans[1], 3),
            conv_gn_elu(chans[3], chans[2], 3),
        ])

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        xs = [x0]
        for sampler in self.samplers:  # eq. (25a)
            xs.append(sampler(xs[-1]))
        y = self.mixer(xs[3])
        for i in (3, 2, 1):  # eq. (25c)
            y = F.interpolate(xs[i] + y, size=xs[i - 1].shape[-2:], mode="bilinear", align_corners=False)
            y = self.recover[i - 1](y)
        return y


class AdaRMv2(nn.Module):
    """AdaRMv2 (eqs. 24-25): X_0 = squeeze(X_in) to C/N_sq; local = unsqueeze(depthwise3x3(X_0));
    global = unsqueeze(F_globalv2(X_0)); out = Theta_id X_in + Theta_local X_local + Theta_global X_global
    with the Thetas from AdaCoeff (eq. 25e-f). Both unsqueezes end in BN + ECA, as in HQDec's AdaRM."""

    def __init__(self, channels: int, squeeze: int, embed_dim: int, heads: int, depth: int = 2,
                 mlp_ratio: float = 2.0, pos_embed: str = "sincos", coeff_expansion: int = 4):
        super().__init__()
        mid = max(1, channels // squeeze)
        self.squeeze = conv_bn(channels, mid)  # eq. (24a)
        self.local_mid = conv_bn(mid, mid, 3, groups=mid)  # eq. (24b)
        self.local_out = nn.Sequential(conv_bn(mid, channels, act=False), ECA(channels))  # eq. (24c)
        self.global_ctx = GlobalContextV2(mid, mid, embed_dim, heads, depth, mlp_ratio, pos_embed=pos_embed)
        self.global_out = nn.Sequential(conv_bn(mid, channels, act=False), ECA(channels))  # eq. (25d)
        self.coeff = AdaCoeff(3, coeff_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.squeeze(x)
        local = self.local_out(self.local_mid(x0))
        glob = self.global_out(self.global_ctx(x0))
        return self.coeff.combine([x, local, glob])


class DAdaNRSUv2(nn.Module):
    """DAdaNRSUv2 (eq. 27), x2: X_ci = F_ci(cat[L3(X), L5(X), G(X), X]) (4C channels, every function C->C);
    out = Theta_ip * bilinear_x2(X) + Theta_pixel * PixelShuffle_2(X_ci). L3/L5 are depthwise. G is the
    AdaRMv2 global path: unsqueeze(F_globalv2(squeeze(X))) with C/N_sq inside and C_3 = `embed_dim`
    (HQDecv2 default: C itself, following eq. 27's equal-channel rule)."""

    def __init__(self, channels: int, squeeze: int, embed_dim: int, heads: int, depth: int = 2,
                 mlp_ratio: float = 2.0, pos_embed: str = "sincos", coeff_expansion: int = 4):
        super().__init__()
        mid = max(1, channels // squeeze)
        self.local3 = conv_bn(channels, channels, 3, groups=channels)
        self.local5 = conv_bn(channels, channels, 5, groups=channels)
        self.global_ctx = nn.Sequential(
            conv_bn(channels, mid),
            GlobalContextV2(mid, mid, embed_dim, heads, depth, mlp_ratio, pos_embed=pos_embed),
            conv_bn(mid, channels, act=False))
        wide = 4 * channels
        self.interact = nn.Sequential(SE(wide), conv_gn_elu(wide, wide))  # F_ci
        self.coeff = AdaCoeff(2, coeff_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_ci = self.interact(torch.cat([self.local3(x), self.local5(x), self.global_ctx(x), x], dim=1))
        up_interp = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        up_pixel = F.pixel_shuffle(x_ci, 2)
        return self.coeff.combine([up_interp, up_pixel])  # eq. (27a)


class AttDispV2(nn.Module):
    """AttDispV2: x' = ECA(x); out = sigmoid(conv3x3(x') * sigmoid(G(x'))), G = F_globalv2 ending in
    `out_channels` (1 for disparity, 3 for the optional reconstruction heads)."""

    def __init__(self, channels: int, embed_dim: int, heads: int, out_channels: int = 1, depth: int = 2,
                 mlp_ratio: float = 2.0, pos_embed: str = "sincos"):
        super().__init__()
        self.att = ECA(channels)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1, padding_mode="reflect")
        self.global_ctx = GlobalContextV2(channels, embed_dim, embed_dim, heads, depth, mlp_ratio,
                                          out_channels=out_channels, pos_embed=pos_embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.att(x)
        return torch.sigmoid(self.conv(x) * torch.sigmoid(self.global_ctx(x)))
