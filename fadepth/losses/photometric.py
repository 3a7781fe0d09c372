"""Photometric building blocks of L_cr (monodepth2 definitions; eq. 21's L_p and L_s).

* ``ssim``: 3x3 mean-filter SSIM after 1-pixel reflection padding, C1 = 0.01^2, C2 = 0.03^2; the
  per-pixel, per-channel *dissimilarity* (1 - S) / 2 clamped to [0, 1] (monodepth2).
* ``photometric_error``: pe(a, b) = w (1 - SSIM(a, b)) / 2 + (1 - w) |a - b|, averaged over channels,
  (B,1,H,W), w = 0.85.
* ``edge_aware_smoothness``: mean over pixels of |dx d*| exp(-|dx I|) + |dy d*| exp(-|dy I|) on the
  mean-normalised disparity d* = d / mean(d) (image gradients averaged over channels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

C1 = 0.01**2
C2 = 0.03**2


def _mean3x3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM *dissimilarity* (1 - S) / 2 clamped to [0, 1] (monodepth2's SSIM module); 0 for identical images."""
    a = F.pad(a, (1, 1, 1, 1), mode="reflect")
    b = F.pad(b, (1, 1, 1, 1), mode="reflect")
    mu_a, mu_b = _mean3x3(a), _mean3x3(b)
    var_a = _mean3x3(a * a) - mu_a * mu_a
    var_b = _mean3x3(b * b) - mu_b * mu_b
    cov = _mean3x3(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + C1) * (2 * cov + C2)
    den = (mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2)
    return ((1 - num / den) / 2).clamp(0, 1)


def photometric_error(a: torch.Tensor, b: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """pe(a, b) (B,1,H,W): ssim_weight (1 - SSIM)/2 + (1 - ssim_weight) L1, channel-averaged."""
    l1 = (a - b).abs().mean(dim=1, keepdim=True)
    if ssim_weight == 0:
        return l1
    dssim = ssim(a, b).mean(dim=1, keepdim=True)
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
