"""Photometric building blocks of L_cr (monodepth2 definitions; eq. 21's L_p and L_s).

* ``ssim``: 3x3 mean-filter SSIM after 1-pixel reflection padding, C1 = 0.01^2, C2 = 0.03^2; the raw
  per-pixel, per-channel similarity S in [-1, 1] (negative where the local structure is anti-correlated).
* ``ssim_dissimilarity``: clamp((1 - S) / 2, 0, 1), monodepth2's SSIM *loss*: the clamp acts on the
  dissimilarity, not on S, so pixels with S < 0 cost more than 0.5 and keep their gradient.
* ``photometric_error``: pe(a, b) = w clamp((1 - SSIM(a, b)) / 2, 0, 1) + (1 - w) |a - b|, averaged over
  channels, (B,1,H,W), w = 0.85.
* ``edge_aware_smoothness``: mean over pixels of |dx d*| exp(-|dx I|) + |dy d*| exp(-|dy I|) on the
  mean-normalised disparity d* = d / mean(d) (image gradients averaged over channels).

Speed (same values as five separate 3x3 average pools): the local means of [a, b, a^2, b^2, a b] are one
depthwise 3x3 convolution over the stacked maps, so L_cr computes every SSIM of a step (all scales, sources
and directions stacked on the batch axis) in one filter, in fp32 whatever the autocast dtype. The statistics
of one image (:class:`Moments`) can also be computed once and passed to many calls.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

C1 = 0.01**2
C2 = 0.03**2


class Moments(NamedTuple):
    """Local 3x3 statistics of one image, reusable across every SSIM against it."""

    padded: torch.Tensor  # (B,C,H+2,W+2) reflection-padded image
    mean: torch.Tensor  # (B,C,H,W) local mean
    mean_sq: torch.Tensor  # (B,C,H,W) local mean of squares


def box3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of every channel (no padding): one depthwise convolution summing 3x3, then / 9.

    Summing first and dividing after gives avg_pool2d's values bit for bit (a 1/9 kernel does not: SSIM's
    variances cancel, so its rounding showed as 1e-5 relative on smooth images); about 3x faster than
    avg_pool2d forward + backward on CPU.
    """
    weight = torch.ones((x.shape[1], 1, 3, 3), device=x.device, dtype=torch.float32)
    with torch.autocast(x.device.type, enabled=False):  # SSIM's variances cancel: never in bf16 / fp16
        return F.conv2d(x.float(), weight, groups=x.shape[1]) / 9.0


def moments(x: torch.Tensor) -> Moments:
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    mean, mean_sq = box3x3(torch.cat([padded, padded * padded], dim=1)).chunk(2, dim=1)
    return Moments(padded, mean, mean_sq)


def ssim(a: torch.Tensor, b: torch.Tensor, b_moments: Moments | None = None) -> torch.Tensor:
    """Per-pixel SSIM similarity S (B,C,H,W), unclamped (in [-1, 1] up to C1, C2); 1 for identical images.

    Without ``b_moments`` every local mean (a, b, a^2, b^2, ab) comes from ONE box filter over the stacked
    maps (the fewest kernels for a batch of pairs); ``b_moments`` (``moments(b)``) reuses b's statistics.
    """
    pa = F.pad(a, (1, 1, 1, 1), mode="reflect")
    if b_moments is None:
        pb = F.pad(b, (1, 1, 1, 1), mode="reflect")
        mu_a, mu_b, mean_aa, mean_bb, mean_ab = box3x3(torch.cat([pa, pb, pa * pa, pb * pb, pa * pb], 1)).chunk(5, 1)
    else:
        mu_a, mean_aa, mean_ab = box3x3(torch.cat([pa, pa * pa, pa * b_moments.padded], dim=1)).chunk(3, dim=1)
        mu_b, mean_bb = b_moments.mean, b_moments.mean_sq
    var_a = mean_aa - mu_a * mu_a
    var_b = mean_bb - mu_b * mu_b
    cov = mean_ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + C1) * (2 * cov + C2)
    den = (mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2)
    return num / den


def ssim_dissimilarity(a: torch.Tensor, b: torch.Tensor, b_moments: Moments | None = None) -> torch.Tensor:
    """monodepth2's per-pixel SSIM loss (B,C,H,W): clamp((1 - S) / 2, 0, 1)."""
    return ((1.0 - ssim(a, b, b_moments)) / 2.0).clamp(0.0, 1.0)


def photometric_error(
    a: torch.Tensor, b: torch.Tensor, ssim_weight: float = 0.85, b_moments: Moments | None = None
) -> torch.Tensor:
    """pe(a, b) (B,1,H,W): ssim_weight clamp((1 - SSIM)/2, 0, 1) + (1 - ssim_weight) L1, channel-averaged."""
    l1 = (a - b).abs().mean(dim=1, keepdim=True)
    if ssim_weight == 0:
        return l1
    dssim = ssim_dissimilarity(a, b, b_moments).mean(dim=1, keepdim=True)
    return ssim_weight * dssim + (1.0 - ssim_weight) * l1


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Scalar edge-aware first-order smoothness of mean-normalised ``disp`` (B,1,H,W) against ``image``.

    ``image`` must have the same spatial size as ``disp`` (resize it to the disparity's scale first).
    """
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_dx = (d[:, :, :, :-1] - d[:, :, :, 1:]).abs()
    grad_dy = (d[:, :, :-1, :] - d[:, :, 1:, :]).abs()
    img_dx = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(dim=1, keepdim=True)
    img_dy = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(dim=1, keepdim=True)
    return (grad_dx * torch.exp(-img_dx)).mean() + (grad_dy * torch.exp(-img_dy)).mean()
