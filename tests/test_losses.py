"""Photometric building blocks and L_cr (CrLoss) on tiny local networks obeying the model contracts."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fadepth.config import CrLossConfig
from fadepth.losses.cr import TERMS, CrLoss
from fadepth.losses.photometric import edge_aware_smoothness, photometric_error, ssim

B, H, W = 2, 32, 48


class TinyDepth(nn.Module):
    """Depth contract: {"disp": 4 sigmoid maps finest first (H/2..H/16), "enc": [...], "dec": [...]}."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.decoder = nn.ModuleList(nn.Conv2d(8, 1, 3, padding=1) for _ in range(4))
        self.enc_channels, self.dec_channels = [8], [8] * 4
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        f = torch.relu(self.encoder(x))
        dec = [f] + [F.avg_pool2d(f, 2**s) for s in range(1, 4)]
        return {"disp": [torch.sigmoid(h(d)) for h, d in zip(self.decoder, dec)], "enc": [f], "dec": dec}


class TinyPose(nn.Module):
    """Pose contract: (B,6,H,W) two frames in temporal order -> (B,6), scaled by 0.01."""

    def __init__(self, translation=(10.0, 0.0, 0.0)):
        super().__init__()
        self.conv = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 6)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.0, *translation]))

    def forward(self, x):
        return 0.01 * self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _K():
    return torch.tensor([[30.0, 0, (W - 1) / 2], [0, 30.0, (H - 1) / 2], [0, 0, 1]]).expand(B, 3, 3).clone()


def _images(static=False):
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(B, 3, H // 4, W // 4, generator=g), size=(H, W), mode="bilinear")
    if static:
        return base[:, None].expand(B, 3, 3, H, W).clone()
    shifted = [torch.roll(base, shifts=k, dims=3) for k in (0, -6, 6)]
    return torch.stack(shifted, dim=1)


def _run(cfg, static=False, seed=0):
    torch.manual_seed(seed)
    depth, pose = TinyDepth(), TinyPose()
    out = CrLoss(cfg)(depth, pose, _images(static), _K(), (0, -1, 1))
    return out, depth, pose


def test_ssim_and_photometric_error_of_identical_images():
    x = torch.rand(2, 3, 16, 20)
    assert torch.allclose(ssim(x, x), torch.zeros_like(x), atol=1e-5)  # dissimilarity (monodepth2)
    assert photometric_error(x, x).abs().max() < 1e-5
    assert photometric_error(x, x).shape == (2, 1, 16, 20)
    y = torch.rand(2, 3, 16, 20)
    assert photometric_error(x, y).mean() > 0.1


def test_smoothness_zero_for_constant_disparity_and_invariant_to_disp_scale():
    img = torch.rand(1, 3, 8, 8)
    assert edge_aware_smoothness(torch.full((1, 1, 8, 8), 0.3), img) == 0
    d = torch.rand(1, 1, 8, 8) + 0.1
    assert torch.isclose(edge_aware_smoothness(d, img), edge_aware_smoothness(3 * d, img))


def test_cr_loss_finite_with_grads_to_both_nets():
    out, depth, pose = _run(CrLossConfig())
    assert out.total.dim() == 0 and torch.isfinite(out.total)
    assert set(out.terms) == set(TERMS)
    assert all(not v.requires_grad for v in out.terms.values())
    for name in ("photometric", "depth_consistency", "feature", "smoothness"):
        assert out.terms[name] > 0, name
    out.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in depth.parameters())
    assert depth.decoder[0].weight.grad.abs().sum() > 0
    assert pose.conv.weight.grad.abs().sum() > 0 and pose.fc.bias.grad.abs().sum() > 0
    # one batched depth forward over all 3 frames; outputs are the target's
    assert depth.batches == [3 * B]
    assert out.outputs["disp"][0].shape == (B, 1, H // 2, W // 2)
    assert set(out.extras["poses"]) == {-1, 1}


@pytest.mark.parametrize("name", ["photometric", "depth_consistency", "feature", "smoothness"])
def test_zero_weight_switches_term_off(name):
    out, _, _ = _run(CrLossConfig(**{name: 0.0}))
    assert out.terms[name] == 0
    assert torch.isfinite(out.total)
    others = [n for n in ("photometric", "depth_consistency", "feature", "smoothness") if n != name]
    assert all(out.terms[n] > 0 for n in others)


def test_only_target_forward_when_no_source_terms():
    cfg = CrLossConfig(depth_consistency=0.0, feature=0.0, structure_weighting=False, bidirectional=False)
    out, depth, _ = _run(cfg)
    assert depth.batches == [B]
    assert out.terms["photometric"] > 0
    out.total.backward()


def test_options_run():
    for kw in ({"min_reprojection": False}, {"automask": False}, {"num_scales": 1}, {"bidirectional": False}):
        out, _, _ = _run(CrLossConfig(**kw))
        assert torch.isfinite(out.total), kw
        out.total.backward()


def test_automask_masks_static_scene():
    masked, _, _ = _run(CrLossConfig(depth_consistency=0.0, feature=0.0, smoothness=0.0), static=True)
    assert masked.extras["automask_fraction"] < 0.05
    assert masked.terms["photometric"] < 1e-3
    unmasked, _, _ = _run(
        CrLossConfig(depth_consistency=0.0, feature=0.0, smoothness=0.0, automask=False), static=True
    )
    assert unmasked.terms["photometric"] > 10 * masked.terms["photometric"]



def test_warmup_is_plain_photometric_then_every_term():
    """Decision 8: during the warm-up no auto-mask, L_d, L_feat or structure weight; after it, all of them."""
    loss = CrLoss(CrLossConfig(warmup_fraction=0.25))
    torch.manual_seed(0)
    depth, pose = TinyDepth(), TinyPose()

    def run(static):
        return loss(depth, pose, _images(static), _K(), (0, -1, 1))

    loss.set_progress(24, 100)
    moving, static = run(False), run(True)
    assert moving.terms["depth_consistency"] == 0 and moving.terms["feature"] == 0
    assert static.extras["automask_fraction"] == 1 and static.terms["photometric"] > 1e-3  # nothing masked
    loss.set_progress(25, 100)
    moving, static = run(False), run(True)
    assert moving.terms["depth_consistency"] > 0 and moving.terms["feature"] > 0
    assert static.extras["automask_fraction"] < 0.05
    never = CrLoss(CrLossConfig(warmup_fraction=0.0))
    never.set_progress(0, 100)
    assert not never.warming_up


class ConstantEncoderDepth(TinyDepth):
    def forward(self, x):
        out = super().forward(x)
        out["enc"] = [torch.ones_like(out["enc"][0])]
        return out


@pytest.mark.parametrize("source,zero", [("encoder", True), ("decoder", False)])
def test_feature_term_reads_the_configured_features(source, zero):
    torch.manual_seed(0)
    cfg = CrLossConfig(feature_source=source, automask=False, structure_weighting=False)
    out = CrLoss(cfg)(ConstantEncoderDepth(), TinyPose(), _images(), _K(), (0, -1, 1))
    assert (out.terms["feature"] < 1e-6) == zero


# --------------------------------------------- oracle nets on an analytic scene: pose conventions
Z0, DX = 5.0, 0.3


def _plane_frames():
    """Fronto-parallel textured plane at Z0; frame k's camera sits at x = k * DX (frames 0, -1, 1)."""
    K = _K()[0].double()
    v, u = torch.meshgrid(torch.arange(H).double(), torch.arange(W).double(), indexing="ij")
    rays = torch.linalg.inv(K) @ torch.stack([u.flatten(), v.flatten(), torch.ones(H * W).double()])
    frames = []
    for k in (0, -1, 1):
        x = rays[0] * Z0 + k * DX
        y = rays[1] * Z0
        img = torch.stack(
            [
                0.5 + 0.3 * torch.sin(2 * torch.pi * x / 1.3) * torch.cos(2 * torch.pi * y / 1.1),
                0.5 + 0.2 * torch.cos(2 * torch.pi * (x + y) / 1.7),
                0.5 + 0.2 * torch.sin(2 * torch.pi * x / 2.1 + 1.0),
            ]
        )
        frames.append(img.reshape(3, H, W).float())
    return torch.stack(frames)[None].expand(B, -1, -1, -1, -1).clone()


class ConstDepth(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.level = nn.Parameter(torch.tensor((1.0 / depth - 0.01) / 10.0))  # eq. 12 inverted

    def forward(self, x):
        b, _, h, w = x.shape
        dec = [x.new_zeros(b, 4, h // 2**s, w // 2**s) for s in range(1, 5)]
        return {"disp": [self.level.expand(b, 1, *d.shape[-2:]) for d in dec], "enc": dec, "dec": dec}


class ConstPose(nn.Module):
    """Always 'T_{earlier -> later}': camera moves +DX in x, so points move -DX."""

    def __init__(self, sign=1.0):
        super().__init__()
        self.sign = sign

    def forward(self, x):
        return torch.tensor([[0.0, 0.0, 0.0, -self.sign * DX, 0.0, 0.0]]).expand(x.shape[0], 6)


def test_pose_convention_true_geometry_explains_frames():
    cfg = CrLossConfig(automask=False, smoothness=0.0, feature=0.0)
    images = _plane_frames()
    good = CrLoss(cfg)(ConstDepth(Z0), ConstPose(+1.0), images, _K())
    bad = CrLoss(cfg)(ConstDepth(Z0), ConstPose(-1.0), images, _K())
    assert good.terms["photometric"] < 0.01
    assert good.terms["depth_consistency"] < 1e-4
    assert bad.terms["photometric"] > 5 * good.terms["photometric"]


class LearnedPose(nn.Module):
    def __init__(self):
        super().__init__()
        self.vec = nn.Parameter(torch.zeros(6))

    def forward(self, x):
        return self.vec.expand(x.shape[0], 6)


def test_gradient_descent_on_cr_recovers_the_true_pose():
    torch.manual_seed(0)
    images, pose, depth = _plane_frames()[:1, [0, 2]], LearnedPose(), ConstDepth(Z0)  # frames (0, +1)
    loss = CrLoss(CrLossConfig(smoothness=0.0, feature=0.0, num_scales=1))
    opt = torch.optim.Adam(pose.parameters(), lr=0.03)
    for _ in range(60):
        out = loss(depth, pose, images, _K()[:1], (0, 1))
        opt.zero_grad()
        out.total.backward()
        opt.step()
    assert abs(pose.vec[3].item() + DX) < 0.05, pose.vec
    assert pose.vec[[0, 1, 2, 4, 5]].abs().max() < 0.03, pose.vec


def test_depth_consistency_is_lowest_for_the_true_geometry():
    """L_d (SC-Depth form) on rendered frames: true depth < true depth clipped < uniform depth < swapped frames."""
    import numpy as np

    from fadepth.config import SyntheticConfig
    from fadepth.data.synthetic import SyntheticScenes
    from fadepth.geometry import sample, warp
    from fadepth.losses.cr import masked_mean, structure_difference

    scenes = SyntheticScenes(SyntheticConfig(), 48, 160, "train")
    target, source = scenes.render(0, 10), scenes.render(0, 11)
    T = torch.tensor(np.linalg.inv(source.pose) @ target.pose, dtype=torch.float32)[None]
    K = torch.tensor(target.K, dtype=torch.float32)[None]

    def depth(frame):  # sky (0) at 100 m, like eq. 12's far end
        d = torch.tensor(frame.depth)[None, None]
        return torch.where(d > 0, d, torch.full_like(d, 100.0)).clamp(max=100.0)

    def l_d(d_target, d_source):
        wp = warp(torch.zeros(1, 3, 48, 160), d_target, T, K, torch.linalg.inv(K))
        return masked_mean(structure_difference(wp.depth, sample(d_source, wp.grid)), wp.valid).item()

    dt, ds = depth(target), depth(source)
    true, clipped = l_d(dt, ds), l_d(dt.clamp(5, 50), ds.clamp(5, 50))
    uniform = l_d(torch.full_like(dt, dt.median().item()), torch.full_like(ds, ds.median().item()))
    assert true < 0.015 and true < clipped < uniform < l_d(ds, dt)
