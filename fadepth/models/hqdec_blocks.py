"""Building blocks shared by HQDec and HQDecv2 (paper Sec. III-D; design note §1.2, §1.4).

Shared: `ConvBlock`, `ECA` channel attention, `SE`, the pre-LN ViT (`TokenMixer`, attention written with
explicit matmuls so fvcore counts it), `AdaCoeff` (eq. 23), the axial space-to-channel downsampling
`AxialDown` (AdaAxialNPCAS), and the AdaIE fusion `AdaIEFusion`.

Modules that exist in both versions take `fixed_size=(H, W)`: given, they carry HQDec's learnable spatial
tensors (tied to one resolution); left as None, AdaCoeff replaces those tensors (HQDecv2, any resolution).
The HQDecv2-only modules (AdaRMv2, DAdaNRSUv2, AttDispV2) live in `hqdec_v2_blocks.py`, the HQDec-only
ones (AdaRM, TransBlock, DAdaNRSU, AttDisp) in `hqdec_v1_blocks.py`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Size = tuple[int, int]


def gn_groups(channels: int) -> int:
    """HQDec's GroupNorm rule: the first of 16, 8, 4, 2, 1 groups that divides the channels."""
    return next(g for g in (16, 8, 4, 2, 1) if channels % g == 0)


def conv_gn_elu(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    """Zero-padded conv + GroupNorm + ELU (HQDec's `Conv2d_zero_pad`)."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups),
                         nn.GroupNorm(gn_groups(cout), cout), nn.ELU(inplace=True))


def conv_bn(cin: int, cout: int, kernel: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ELU(inplace=True))
    return nn.Sequential(*layers)


class ConvBlock(nn.Module):
    """The channel transform used everywhere: reflection-padded 3x3 conv with bias, ELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def eca_kernel_size(channels: int) -> int:
    """ECA's adaptive 1-D kernel: odd(int((log2 C + 1) / 2)), at least 3."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return max(3, t if t % 2 else t + 1)


class ECA(nn.Module):
    """ECA channel attention. With `fixed_size` (HQDec) x is first multiplied by a learnable (1,1,H,W) map,
    initialised to 1; HQDecv2 drops the map (plain ECA)."""

    def __init__(self, channels: int, fixed_size: Size | None = None):
        super().__init__()
        k = eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.spatial = nn.Parameter(torch.ones(1, 1, *fixed_size)) if fixed_size else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial is not None:
            x = x * self.spatial
        w = torch.sigmoid(self.conv(x.mean((2, 3)).unsqueeze(1))).squeeze(1)
        return x * w[:, :, None, None]


class SE(nn.Module):
    """Squeeze-and-excitation, reduction 1/16, SiLU, sigmoid (AxialNPCAS's channel interaction)."""

    def __init__(self, channels: int, reduction: float = 1 / 16):
        super().__init__()
        mid = max(1, int(channels * reduction))
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.expand = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * w


# ---------------------------------------------------------------------------------------------------------
# Transformer (HQDec's `vit_block`): pre-LN, MHSA with qkv bias, MLP ratio 2 with GELU, final LN.


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)), dim=-1)
        return self.proj(torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sincos_pos_embed(h: int, w: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embedding (1, h*w, dim): a quarter of the channels each for
    sin/cos of the row and of the column index (zero-padded when dim is not a multiple of 4)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / max(quarter, 1))
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    ang_y, ang_x = ys.reshape(-1, 1) * omega, xs.reshape(-1, 1) * omega
    emb = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)
    emb = F.pad(emb, (0, dim - emb.shape[1]))
    return emb.unsqueeze(0).to(dtype or torch.float32)


class TokenMixer(nn.Module):
    """`depth` ViT blocks + final LN on a (B,C,H,W) grid of tokens; returns the same shape.

    pos_embed: "sincos" (fixed, any grid size; HQDecv2 default), "none", or "learned" (HQDec: a
    trunc-normal (1, N, C) parameter, which needs `num_tokens`)."""

    def __init__(self, dim: int, heads: int, depth: int = 2, mlp_ratio: float = 2.0,
                 pos_embed: str = "sincos", num_tokens: int | None = None):
        super().__init__()
        if pos_embed not in ("sincos", "none", "learned"):
            raise ValueError(f"pos_embed must be 'sincos', 'none' or 'learned', not {pos_embed!r}")
        self.pos_mode = pos_embed
        self.pos = None
        if pos_embed == "learned":
            self.pos = nn.Parameter(torch.zeros(1, num_tokens, dim))
            nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if self.pos is not None:
            tokens = tokens + self.pos
        elif self.pos_mode == "sincos":
            tokens = tokens + sincos_pos_embed(h, w, c, x.device, x.dtype)
        tokens = self.norm(self.blocks(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


# ---------------------------------------------------------------------------------------------------------
# AdaCoeff (eq. 23) and the AdaIE fusion.


class AdaCoeff(nn.Module):
    """Eq. (23): Theta_1..n = split(softmax(F_fuse(cat(mean_c X_1, ..., mean_c X_n)))).

    F_fuse: square convs n -> n*e -> n*e -> n with ELU between (e=4, 3x3: design decision 13). The last conv
    starts at zero, so every branch starts with weight 1/n. Returns n maps (B,1,H,W) that sum to 1."""

    def __init__(self, branches: int, expansion: int = 4, kernel: int = 3):
        super().__init__()
        hidden, pad = branches * expansion, kernel // 2
        self.fuse = nn.Sequential(nn.Conv2d(branches, hidden, kernel, padding=pad), nn.ELU(inplace=True),
                                  nn.Conv2d(hidden, hidden, kernel, padding=pad), nn.ELU(inplace=True),
                                  nn.Conv2d(hidden, branches, kernel, padding=pad))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, branches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        means = torch.cat([b.mean(dim=1, keepdim=True) for b in branches], dim=1)
        return list(torch.softmax(self.fuse(means), dim=1).split(1, dim=1))

    def combine(self, branches: Sequence[torch.Tensor]) -> torch.Tensor:
        """sum_i Theta_i * X_i."""
        thetas = self(branches)
        out = thetas[0] * branches[0]
        for theta, x in zip(thetas[1:], branches[1:]):
            out = out + theta * x
        return out


class AdaIEFusion(nn.Module):
    """Adaptive information exchange at one decoder level.

    HQDec (`fixed_size`): side_i are weighted by (1,C,H,W) lambdas (init 0), the main terms summed as is.
    HQDecv2: AdaCoeff over all n terms, sum_i Theta_i X_i (a convex mix rather than a sum)."""

    def __init__(self, num_side: int, num_main: int, channels: int, fixed_size: Size | None = None,
                 coeff_expansion: int = 4):
        super().__init__()
        if fixed_size:
            self.lambdas = nn.ParameterList([nn.Parameter(torch.zeros(1, channels, *fixed_size))
                                             for _ in range(num_side)])
            self.coeff = None
        else:
            self.lambdas = None
            self.coeff = AdaCoeff(num_side + num_main, coeff_expansion)

    def forward(self, side: Sequence[torch.Tensor], main: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.coeff is not None:
            return self.coeff.combine([*side, *main])
        out = main[0]
        for x in main[1:]:
            out = out + x
        for lam, x in zip(self.lambdas, side):
            out = out + lam * x
        return out


# ---------------------------------------------------------------------------------------------------------
# AdaAxialNPCAS: near-lossless downsampling by axial space-to-channel folding.


class AxialFold(nn.Module):
    """One axis of AxialNPCAS: fold the `stride` phases of rows (or columns) into channels (plus a learned
    phase position), mix them (`mix_stages` x [depthwise 3x3 + ELU + GN, SE, 1x1 + GN + ELU]; HQDec: 2),
    ECA, then a `reduce_kernel` conv c*s -> c with GN + ELU (HQDec: 3x3). (b,c,h,w) -> (b,c,h/s,w) for "h"."""

    def __init__(self, channels: int, stride: int, axis: str, fixed_size: Size | None = None,
                 mix_stages: int = 2, reduce_kernel: int = 3):
        super().__init__()
        self.stride, self.axis = stride, axis
        wide = channels * stride
        pos_shape = (1, 1, 1, stride, 1) if axis == "h" else (1, 1, 1, 1, stride)
        self.phase_pos = nn.Parameter(torch.zeros(pos_shape))
        nn.init.trunc_normal_(self.phase_pos, std=0.02)
        mix: list[nn.Module] = []
        for _ in range(mix_stages):
            mix += [nn.Conv2d(wide, wide, 3, padding=1, padding_mode="reflect", groups=wide),
                    nn.ELU(inplace=True), nn.GroupNorm(gn_groups(wide), wide), SE(wide), conv_gn_elu(wide, wide)]
        self.mix = nn.Sequential(*mix)
        att_size = None
        if fixed_size:
            h, w = fixed_size
            att_size = (h // stride, w) if axis == "h" else (h, w // stride)
        self.att = ECA(wide, att_size)
        self.reduce = conv_gn_elu(wide, channels, reduce_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.stride
        if self.axis == "h":
            y = (x.reshape(b, c, h // s, s, w) + self.phase_pos).permute(0, 1, 3, 2, 4).reshape(b, c * s, h // s, w)
        else:
            y = (x.reshape(b, c, h, w // s, s) + self.phase_pos).permute(0, 1, 4, 2, 3).reshape(b, c * s, h, w // s)
        return self.reduce(self.att(self.mix(y)))


class AxialDown(nn.Module):
    """AdaAxialNPCAS (stride s): ELU(a * BN(MaxPool_s(x)) + b * BN(Axial_s(x))).

    HQDec (`fixed_size` = input size): a = learnable (1,1,H/s,W/s) map (init 0), b = 1.
    HQDecv2: (a, b) = AdaCoeff over the two branches (eq. 23). `mix_stages`, `reduce_kernel`: see AxialFold."""

    def __init__(self, channels: int, stride: int, fixed_size: Size | None = None, mix_stages: int = 2,
                 reduce_kernel: int = 3, coeff_expansion: int = 4):
        super().__init__()
        self.stride = stride
        self.pool = nn.MaxPool2d(stride, stride)
        self.bn_pool, self.bn_axial = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)
        h_size = (fixed_size[0] // stride, fixed_size[1]) if fixed_size else None
        fold = dict(mix_stages=mix_stages, reduce_kernel=reduce_kernel)
        self.axial = nn.Sequential(AxialFold(channels, stride, "h", fixed_size, **fold),
                                   AxialFold(channels, stride, "w", h_size, **fold))
        if fixed_size:
            self.param = nn.Parameter(torch.zeros(1, 1, fixed_size[0] // stride, fixed_size[1] // stride))
            self.coeff = None
        else:
            self.param = None
            self.coeff = AdaCoeff(2, coeff_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"AxialDown: size {tuple(x.shape[-2:])} is not divisible by stride {self.stride}")
        pooled, axial = self.bn_pool(self.pool(x)), self.bn_axial(self.axial(x))
        if self.coeff is not None:
            return F.elu(self.coeff.combine([pooled, axial]))
        return F.elu(self.param * pooled + axial)
