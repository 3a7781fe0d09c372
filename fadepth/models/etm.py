"""Equivalent transformation module, ETM (Sec. III-B, eqs. 13-19; design note section 4).

`ETMConv2d` replaces one KhxKw conv (dense, grouped, depthwise, dilated, strided). In training it sums
  t = 0      identity (a centred delta), only when Ci == Co, stride 1 and the padding keeps the grid;
  t = 1..T   every odd sub-shape kh x kw <= Kh x Kw (T = ceil(Kh/2) * ceil(Kw/2)), centred on the same
             dilated grid; branch drop pb_t, except the KxK branch t = T: branch drop r1*pb_t and
             element-level dropconv r2*pb_t (eq. 14: mask over (Co,Kh,Kw) shared over Ci; no rescale as
             printed, or survivors x 1/(1 - r2*pb_t) with `dropconv_rescale`, so that the expected training
             kernel equals the folded one);
  t = T+1    the standard KxK kernel, never dropped,
each scaled per output channel by lambda_t = p_t / (sqrt(var_t) + 1e-5) (eq. 15b). `fold()` returns one
conv with w_eq = sum_t lambda_t * w_hat_t (eqs. 18-19), using running variances.

var_t (the paper only says "estimated variance"): `variance="output"` (reading A, default) is a BN-style
uncentred variance E[y_t^2] of branch t's output per output channel (batch statistics in training, EMA with
momentum 0.1 in eval / fold); `variance="input"` (reading B) is the uncentred variance of the input, averaged
over each group's input channels, shared by all branches. Branch drops are per-sample masks in feature space.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5  # eq. 15b
MOMENTUM = 0.1


@dataclass(frozen=True)
class ETMOptions:
    """Every ETM setting in one place (`convert_to_etm` and `fadepth.models.create(name, etm=...)`)."""

    pb_t: float = 0.1
    r1: float = 0.1
    r2: float = 0.5
    init: str = "random"  # "largest" = ETM# (every shape starts from the centre crop of the K x K kernel)
    dropconv: bool = True
    variance: str = "output"
    dropconv_rescale: bool = False
    min_kernel: int = 3
    heads: bool = True  # False: the convs a model lists in `disparity_heads` stay plain convs

    def as_kwargs(self) -> dict:
        return asdict(self)


def sub_shapes(kh: int, kw: int) -> list[tuple[int, int]]:
    """All odd (h, w) <= (kh, kw), smallest area first; the full shape last (branch t = T)."""
    shapes = [(h, w) for h in range(1, kh + 1, 2) for w in range(1, kw + 1, 2)]
    return sorted(shapes, key=lambda s: (s == (kh, kw), s[0] * s[1], s))


def pad_to(weight: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Zero-pad a (.., h, w) kernel to (kh, kw), centred (design note section 4, 'w_hat')."""
    dh, dw = (kh - weight.shape[-2]) // 2, (kw - weight.shape[-1]) // 2
    return F.pad(weight, (dw, dw, dh, dh))


def centre_crop(weight: torch.Tensor, h: int, w: int) -> torch.Tensor:
    dh, dw = (weight.shape[-2] - h) // 2, (weight.shape[-1] - w) // 2
    return weight[..., dh:dh + h, dw:dw + w]


def branch_keep_masks(batch: int, rates: list[float], like: torch.Tensor) -> torch.Tensor:
    """(B, n) per-sample keep masks, rescaled by 1/(1-rate) (eq. 4); rate 0 gives ones."""
    masks = torch.ones((batch, len(rates)), dtype=like.dtype, device=like.device)
    for t, rate in enumerate(rates):
        if rate > 0:
            masks[:, t].bernoulli_(1.0 - rate).div_(1.0 - rate)
    return masks


class ETMConv2d(nn.Module):
    """Multi-shape training-time replacement of an nn.Conv2d that folds back into one (eqs. 13-19)."""

    def __init__(self, conv: nn.Conv2d, pb_t: float = 0.1, r1: float = 0.1, r2: float = 0.5,
                 init: str = "random", dropconv: bool = True, variance: str = "output",
                 dropconv_rescale: bool = False):
        super().__init__()
        if init not in ("random", "largest"):
            raise ValueError(f"ETM init must be 'random' or 'largest', got {init!r}")
        if variance not in ("output", "input"):
            raise ValueError(f"ETM variance must be 'output' (reading A) or 'input' (reading B), got {variance!r}")
        kh, kw = conv.kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"ETM needs odd kernel sizes to centre the sub-shapes, got {conv.kernel_size}")
        self.in_channels, self.out_channels, self.groups = conv.in_channels, conv.out_channels, conv.groups
        self.kernel_size, self.stride, self.dilation = conv.kernel_size, conv.stride, conv.dilation
        self.padding = self._explicit_padding(conv)
        self.padding_mode = conv.padding_mode
        self.pb_t, self.r1, self.r2, self.dropconv, self.variance = pb_t, r1, r2, dropconv, variance
        self.dropconv_rescale = dropconv_rescale
        self.shapes = sub_shapes(kh, kw)
        self.has_identity = (conv.in_channels == conv.out_channels and tuple(conv.stride) == (1, 1)
                             and self.padding == (conv.dilation[0] * (kh // 2), conv.dilation[1] * (kw // 2)))
        source = conv.weight.detach()
        self.weights = nn.ParameterList(nn.Parameter(self._init_shape(source, h, w, init)) for h, w in self.shapes)
        self.standard = nn.Parameter(source.clone())  # t = T + 1
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None
        n_branches = len(self.shapes) + 1 + int(self.has_identity)
        self.scale = nn.Parameter(torch.ones(n_branches, conv.out_channels, device=source.device, dtype=source.dtype))
        var_rows = n_branches if variance == "output" else 1
        self.register_buffer("running_var", torch.ones(var_rows, conv.out_channels, device=source.device,
                                                       dtype=source.dtype))

    @staticmethod
    def _explicit_padding(conv: nn.Conv2d) -> tuple[int, int]:
        if conv.padding == "valid":
            return (0, 0)
        if conv.padding == "same":
            return tuple(d * (k // 2) for d, k in zip(conv.dilation, conv.kernel_size))
        return tuple(conv.padding)

    @staticmethod
    def _init_shape(source: torch.Tensor, h: int, w: int, init: str) -> torch.Tensor:
        if init == "largest":  # ETM#: centre crop of the trained largest kernel (Table VI)
            return centre_crop(source, h, w).clone()
        weight = torch.empty(*source.shape[:2], h, w, device=source.device, dtype=source.dtype)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's default
        return weight

    # ------------------------------------------------------------------------------- branches
    def _branch_drop_rates(self) -> list[float]:
        """Per-branch rates in branch order [identity?, shapes..., standard] (eq. 15a)."""
        shape_rates = [self.pb_t] * (len(self.shapes) - 1) + [self.r1 * self.pb_t]
        return [self.pb_t] * int(self.has_identity) + shape_rates + [0.0]

    def _kernels(self) -> torch.Tensor:
        """(n_conv, Co, Ci/g, Kh, Kw): sub-shapes zero-padded to KxK, dropconv on t = T, then the standard."""
        kh, kw = self.kernel_size
        kernels = [pad_to(w, kh, kw) for w in self.weights]
        rate = self.r2 * self.pb_t
        if self.training and self.dropconv and rate > 0:  # eq. 14: Upsilon over (Co, Kh, Kw)
            mask = torch.empty(self.out_channels, 1, kh, kw, device=kernels[-1].device,
                               dtype=kernels[-1].dtype).bernoulli_(1.0 - rate)
            if self.dropconv_rescale:  # E[mask] = 1: the folded kernel is the expected training kernel
                mask = mask / (1.0 - rate)
            kernels[-1] = kernels[-1] * mask
        return torch.stack(kernels + [self.standard])

    def _multi_conv(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """All KxK kernels in one grouped conv: (B, n_conv, Co, Ho, Wo)."""
        n, co, cig, kh, kw = kernels.shape
        g = self.groups
        stacked = kernels.reshape(n, g, co // g, cig, kh, kw).transpose(0, 1).reshape(g * n * (co // g), cig, kh, kw)
        if self.padding_mode != "zeros":
            ph, pw = self.padding
            x, padding = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode), 0
        else:
            padding = self.padding
        y = F.conv2d(x, stacked, None, self.stride, padding, self.dilation, g)
        b, _, ho, wo = y.shape
        return y.reshape(b, g, n, co // g, ho, wo).transpose(1, 2).reshape(b, n, co, ho, wo)

    def _batch_variance(self, x: torch.Tensor, branches: torch.Tensor) -> torch.Tensor:
        if self.variance == "output":  # reading A: E[y_t^2] per output channel
            return branches.pow(2).mean(dim=(0, 3, 4))
        per_input = x.pow(2).mean(dim=(0, 2, 3))  # reading B: E[x^2] per group, broadcast to its outputs
        per_group = per_input.reshape(self.groups, -1).mean(1)
        return per_group.repeat_interleave(self.out_channels // self.groups).unsqueeze(0)

    def lambdas(self, var: torch.Tensor | None = None) -> torch.Tensor:
        """lambda_t = p_t / (sqrt(var_t) + 1e-5) (eq. 15b), (n_branches, Co); running variances by default."""
        var = self.running_var if var is None else var
        # sqrt has an infinite slope at 0: a branch whose batch output is all zero (every sample of its input
        # dropped upstream) would give NaN gradients. Clamped far below EPS, the value is eq. 15b's.
        return self.scale / (torch.sqrt(var.clamp(min=1e-20)) + EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self._multi_conv(x, self._kernels())
        if self.has_identity:
            branches = torch.cat([x.unsqueeze(1), branches], 1)
        if self.training:
            var = self._batch_variance(x, branches)
            with torch.no_grad():
                self.running_var.lerp_(var.detach(), MOMENTUM)
            keep = branch_keep_masks(x.shape[0], self._branch_drop_rates(), x)  # F_d^t, per sample
            weights = self.lambdas(var).unsqueeze(0) * keep[..., None]
        else:
            weights = self.lambdas().unsqueeze(0)
        out = (branches * weights[..., None, None]).sum(1)  # eq. 15a
        return out if self.bias is None else out + self.bias.reshape(1, -1, 1, 1)

    # ------------------------------------------------------------------------------------ fold
    def identity_kernel(self) -> torch.Tensor:
        """The t = 0 branch as a KxK kernel: 1 at [o, o mod (Ci/g), centre]."""
        kh, kw = self.kernel_size
        cig = self.in_channels // self.groups
        kernel = torch.zeros(self.out_channels, cig, kh, kw, device=self.standard.device, dtype=self.standard.dtype)
        idx = torch.arange(self.out_channels, device=kernel.device)
        kernel[idx, idx % cig, kh // 2, kw // 2] = 1.0
        return kernel

    @torch.no_grad()
    def equivalent_weight(self) -> torch.Tensor:
        """w_eq = lambda_{T+1} w_{T+1} + sum_t lambda_t w_hat_t (eq. 18), running variances, no drops."""
        kernels = [pad_to(w, *self.kernel_size) for w in self.weights] + [self.standard]
        if self.has_identity:
            kernels = [self.identity_kernel()] + kernels
        lam = self.lambdas().expand(len(kernels), -1)
        return sum(l.reshape(-1, 1, 1, 1) * k for l, k in zip(lam, kernels))

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        """One nn.Conv2d with the same stride, padding, dilation and groups (eq. 19)."""
        weight = self.equivalent_weight()
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups, self.bias is not None, self.padding_mode,
                         device=weight.device, dtype=weight.dtype)
        conv.weight.copy_(weight)
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, groups={self.groups}, shapes={len(self.shapes)}, "
                f"identity={self.has_identity}, pb_t={self.pb_t}, r1={self.r1}, r2={self.r2}, "
                f"dropconv={self.dropconv}, rescale={self.dropconv_rescale}, variance={self.variance!r}")


def is_etm_candidate(module: nn.Module, min_kernel: int) -> bool:
    if type(module) is not nn.Conv2d:
        return False
    kh, kw = module.kernel_size
    return max(kh, kw) >= min_kernel and kh % 2 == 1 and kw % 2 == 1


def convert_to_etm(module: nn.Module, options: ETMOptions | None = None, **overrides) -> nn.Module:
    """Replace, in place, every odd KxK nn.Conv2d with max(K) >= min_kernel by an ETMConv2d; returns `module`.

    `options` (default `ETMOptions()`), with any field overridden by keyword (`convert_to_etm(m, pb_t=0.2)`).
    A conv followed by BN keeps feeding that BN (the ETM output takes the conv's place unchanged)."""
    opts = ETMOptions(**{**(options or ETMOptions()).as_kwargs(), **overrides})
    kwargs = opts.as_kwargs()
    min_kernel, heads = kwargs.pop("min_kernel"), kwargs.pop("heads")
    _convert(module, kwargs, min_kernel, heads)
    return module


def _convert(module: nn.Module, kwargs: dict, min_kernel: int, heads: bool = True) -> None:
    skip = () if heads else getattr(module, "disparity_heads", ())  # a decoder names its disparity heads
    for name, child in module.named_children():
        if name in skip:
            continue
        if is_etm_candidate(child, min_kernel):
            setattr(module, name, ETMConv2d(child, **kwargs))
        else:
            _convert(child, kwargs, min_kernel, heads)


def fold_etm(module: nn.Module) -> nn.Module:
    """Replace, in place, every ETMConv2d by its folded nn.Conv2d; returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, ETMConv2d):
            setattr(module, name, child.fold())
        else:
            fold_etm(child)
    return module

