"""Photometric building blocks and L_cr (CrLoss) on tiny local networks obeying the model contracts."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fadepth.config import CrLossConfig
from fadepth.losses.cr import TERMS, CrLoss
import numpy as np

from fadepth.losses.photometric import edge_aware_smoothness, photometric_error, ssim, ssim_dissimilarity

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
    assert torch.allclose(ssim(x, x), torch.ones_like(x), atol=1e-5)
    assert photometric_error(x, x).abs().max() < 1e-5
    assert photometric_error(x, x).shape == (2, 1, 16, 20)
    y = torch.rand(2, 3, 16, 20)
    assert photometric_error(x, y).mean() > 0.1


def _reference_pe(a: np.ndarray, b: np.ndarray, w: float = 0.85):
    """monodepth2's pe written from its definition in float64 numpy: 1-pixel reflection padding, 3x3 means,
    S = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
    pe = w mean_c clamp((1 - S)/2, 0, 1) + (1 - w) mean_c |a - b|.  Returns (pe (B,H,W), S (B,C,H,W))."""
    pad = ((0, 0), (0, 0), (1, 1), (1, 1))
    ap, bp = np.pad(a, pad, mode="reflect"), np.pad(b, pad, mode="reflect")
    h, w_ = a.shape[-2:]

    def mean3(x):
        return sum(x[..., i:i + h, j:j + w_] for i in range(3) for j in range(3)) / 9.0

    mu_a, mu_b = mean3(ap), mean3(bp)
    var_a, var_b = mean3(ap * ap) - mu_a**2, mean3(bp * bp) - mu_b**2
    cov = mean3(ap * bp) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    dssim = np.clip((1 - s) / 2, 0, 1)
    return w * dssim.mean(1) + (1 - w) * np.abs(a - b).mean(1), s


def _negative_ssim_pairs():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 3, 24, 32, generator=g)
    texture = F.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(24, 32), mode="bilinear")
    return {
        "noise_vs_negative": (noise, 1 - noise),
        "texture_vs_shift2": (texture, torch.roll(texture, 2, dims=3)),
        "noise_vs_shift1": (noise, torch.roll(noise, 1, dims=3)),
    }


# mean pe of each pair under monodepth2's definition (the old clamp of S gave 0.5002, 0.3647, 0.4299)
PINNED_PE = {"noise_vs_negative": 0.889770, "texture_vs_shift2": 0.443207, "noise_vs_shift1": 0.502313}


@pytest.mark.parametrize("name", sorted(PINNED_PE))
def test_photometric_error_equals_monodepth2_where_local_ssim_is_negative(name):
    a, b = _negative_ssim_pairs()[name]
    ref, s = _reference_pe(a.double().numpy(), b.double().numpy())
    assert (s < 0).mean() > 0.2  # the pair exercises the clamp
    pe = photometric_error(a, b)
    assert pe.shape == (1, 1, 24, 32)
    np.testing.assert_allclose(pe[:, 0].numpy(), ref, atol=2e-5)
    assert float(pe.mean()) == pytest.approx(PINNED_PE[name], abs=1e-5)
    assert float(pe.mean()) == pytest.approx(float(ref.mean()), abs=1e-6)
    # the SSIM part exceeds 0.5 (impossible when S itself is clamped) and keeps a gradient there
    np.testing.assert_allclose(ssim(a, b).numpy(), s, atol=1e-4)
    assert ssim_dissimilarity(a, b).max() > 0.6
    a = a.clone().requires_grad_(True)
    ssim_dissimilarity(a, b).sum().backward()
    negative = torch.from_numpy(s < -0.05)
    assert (a.grad[negative] != 0).float().mean() > 0.99


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


# ------------------------------------------- the plain monodepth2 machinery, end to end, against a reference
def _ref_pe(pred, target):
    """monodepth2's compute_reprojection_loss, from its definition: 0.85 SSIM loss + 0.15 L1, channel means."""
    x, y = F.pad(pred, (1, 1, 1, 1), mode="reflect"), F.pad(target, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    n = (2 * mu_x * mu_y + 0.01**2) * (2 * sigma_xy + 0.03**2)
    d = (mu_x**2 + mu_y**2 + 0.01**2) * (sigma_x + sigma_y + 0.03**2)
    ssim_loss = torch.clamp((1 - n / d) / 2, 0, 1).mean(1, keepdim=True)
    return 0.85 * ssim_loss + 0.15 * (pred - target).abs().mean(1, keepdim=True)


def _ref_pose(vec, invert):
    """monodepth2's transformation_from_parameters: Rodrigues on axis = v / (|v| + 1e-7); inverse for invert."""
    angle = vec[:, :3].norm(dim=1, keepdim=True)
    x, y, z = (vec[:, :3] / (angle + 1e-7)).unbind(1)
    c, s = torch.cos(angle[:, 0]), torch.sin(angle[:, 0])
    C = 1 - c
    R = torch.stack([x * x * C + c, x * y * C - z * s, z * x * C + y * s,
                     x * y * C + z * s, y * y * C + c, y * z * C - x * s,
                     z * x * C - y * s, y * z * C + x * s, z * z * C + c], dim=1).reshape(-1, 3, 3)
    t = vec[:, 3:6, None]
    if invert:
        R, t = R.transpose(1, 2), -(R.transpose(1, 2) @ t)
    top = torch.cat([R, t], dim=2)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(vec.shape[0], 1, 4)
    return torch.cat([top, bottom], dim=1)


def _ref_warp(source, depth, T, K):
    """BackprojectDepth + Project3D + grid_sample(border).  Pixel normalisation by (W-1), (H-1) as monodepth2,
    sampled with align_corners=True (fadepth's documented pairing; see fadepth/geometry.py)."""
    b, _, h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype), torch.arange(w, dtype=depth.dtype), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)]).reshape(1, 3, -1).expand(b, 3, -1)
    cam = depth.reshape(b, 1, -1) * (torch.linalg.inv(K) @ pix)
    cam = torch.cat([cam, torch.ones_like(cam[:, :1])], dim=1)
    p = (K @ T[:, :3, :]) @ cam
    uv = p[:, :2] / (p[:, 2:3] + 1e-7)
    grid = torch.stack([uv[:, 0] / (w - 1) * 2 - 1, uv[:, 1] / (h - 1) * 2 - 1], dim=-1).reshape(b, h, w, 2)
    return F.grid_sample(source, grid, padding_mode="border", align_corners=True)


def _reference_monodepth2(depth_net, pose_net, images, K, automask, min_reprojection, frame_ids=(0, -1, 1)):
    """monodepth2's compute_losses (mono, 4 scales, upsampled to full resolution) written from its definitions.

    Returns (loss, identity_part): identity_part is the mean over pixels of the identity error where an identity
    term wins the minimum (a constant that fadepth leaves out; its gradient is zero)."""
    target, (h, w) = images[:, 0], images.shape[-2:]
    outputs = depth_net(target)
    poses = {}
    for i, fid in enumerate(frame_ids[1:], start=1):
        pair = (images[:, i], target) if fid < 0 else (target, images[:, i])
        poses[fid] = _ref_pose(pose_net(torch.cat(pair, 1)), invert=fid < 0)
    total, identity_part = 0.0, 0.0
    for s in range(4):
        disp = outputs["disp"][s]
        depth = 1.0 / (10.0 * F.interpolate(disp, (h, w), mode="bilinear", align_corners=False) + 0.01)  # eq. 12
        reproj = torch.cat([_ref_pe(_ref_warp(images[:, i], depth, poses[fid], K), target)
                            for i, fid in enumerate(frame_ids[1:], start=1)], 1)
        identity = torch.cat([_ref_pe(images[:, i], target) for i in range(1, len(frame_ids))], 1)
        if not min_reprojection:
            reproj, identity = reproj.mean(1, keepdim=True), identity.mean(1, keepdim=True)
        combined = torch.cat([identity, reproj], 1) if automask else reproj
        to_optimise, idx = combined.min(1)
        loss = to_optimise.mean()
        if automask:
            identity_part = identity_part + (to_optimise * (idx < identity.shape[1])).mean()
        color = F.interpolate(target, size=disp.shape[-2:], mode="area")
        norm_disp = disp / (disp.mean(2, True).mean(3, True) + 1e-7)
        gx = (norm_disp[..., :-1] - norm_disp[..., 1:]).abs() * torch.exp(
            -(color[..., :-1] - color[..., 1:]).abs().mean(1, keepdim=True))
        gy = (norm_disp[..., :-1, :] - norm_disp[..., 1:, :]).abs() * torch.exp(
            -(color[..., :-1, :] - color[..., 1:, :]).abs().mean(1, keepdim=True))
        loss = loss + 1e-3 * (gx.mean() + gy.mean()) / 2**s
        total = total + loss
    return total / 4, identity_part / 4


@pytest.mark.parametrize("automask,min_reprojection", [(True, True), (False, True), (True, False)])
def test_plain_cr_loss_matches_monodepth2_end_to_end(monkeypatch, automask, min_reprojection):
    """Plain L_cr (no L_d, L_feat, structure weight or reverse direction) = monodepth2's loss on identical inputs:
    min reprojection (or average), auto-mask, 4 scales upsampled to full resolution, smoothness 1e-3 / 2^s.
    fadepth drops the identity error of masked pixels (constant): the values differ by exactly that part and
    every gradient is equal.  The tie-breaking noise is zeroed on both sides (monodepth2 draws one per identity
    channel, fadepth one per pixel; only exact ties could differ)."""
    monkeypatch.setattr(torch, "randn_like", lambda x, **kw: torch.zeros_like(x))
    cfg = CrLossConfig(depth_consistency=0.0, feature=0.0, structure_weighting=False, bidirectional=False,
                       automask=automask, min_reprojection=min_reprojection, num_scales=4, smoothness=1e-3)
    torch.manual_seed(0)
    depth, pose = TinyDepth(), TinyPose(translation=(5.0, 1.0, 3.0))
    with torch.no_grad():
        pose.fc.bias[:3] = torch.tensor([0.5, -1.0, 0.3])  # a real rotation (0.01 x) too
    images, K = _images(), _K()
    ref_depth, ref_pose = TinyDepth(), TinyPose()
    ref_depth.load_state_dict(depth.state_dict())
    ref_pose.load_state_dict(pose.state_dict())

    out = CrLoss(cfg)(depth, pose, images, K, (0, -1, 1))
    ref, identity_part = _reference_monodepth2(ref_depth, ref_pose, images, K, automask, min_reprojection)
    out.total.backward()
    ref.backward()
    assert float(out.total.detach()) == pytest.approx(float((ref - identity_part).detach()), abs=1e-6)
    if automask:
        assert 0 < out.extras["automask_fraction"] < 1  # both branches of the mask are exercised
        assert float(identity_part.detach()) > 1e-3
    for (name, p), q in zip(
        list(depth.named_parameters()) + list(pose.named_parameters()),
        list(ref_depth.parameters()) + list(ref_pose.parameters()),
    ):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=name)


# ------------------------------------------------------------- clean frames for the loss, jittered for the nets
def _jitter(x):
    return (0.5 * x + 0.4).clamp(0.0, 1.0)  # a strong, pointwise stand-in for ColorJitter


class _Recording(nn.Module):
    """Records every input of `net`; with `pre`, applies it to the input first."""

    def __init__(self, net, pre=None):
        super().__init__()
        self.net, self.pre, self.seen = net, pre, []

    def forward(self, x):
        self.seen.append(x)
        return self.net(x if self.pre is None else self.pre(x))


def test_cr_loss_compares_clean_frames_while_the_nets_see_jittered_ones():
    cfg = CrLossConfig()  # every term: L_p, auto-mask, L_d, L_feat, structure weight, both directions, L_s
    clean = _images()
    torch.manual_seed(0)
    depth, pose = TinyDepth(), TinyPose()

    def run(images, net_images=None, pre=None, seed=1):
        d, p = _Recording(depth, pre), _Recording(pose, pre)
        torch.manual_seed(seed)  # same auto-mask noise
        return CrLoss(cfg)(d, p, images, _K(), (0, -1, 1), net_images=net_images), d, p

    out, d, p = run(clean, net_images=_jitter(clean))
    # the networks received only jittered frames (all 3 frames to the depth net, temporal pairs to the pose net)
    jittered_flat = _jitter(clean).transpose(0, 1).reshape(3 * B, 3, H, W)
    assert len(d.seen) == 1 and torch.equal(d.seen[0], jittered_flat)
    assert torch.equal(p.seen[0], torch.cat([_jitter(clean)[:, 1], _jitter(clean)[:, 0]], 1))  # [-1, 0]
    assert torch.equal(p.seen[1], torch.cat([_jitter(clean)[:, 0], _jitter(clean)[:, 2]], 1))  # [0, +1]
    # ... and every loss term is the one of the clean frames: same as nets that jitter their own (clean) input
    same_nets, _, _ = run(clean, pre=_jitter)
    for name in TERMS:
        torch.testing.assert_close(out.terms[name], same_nets.terms[name], rtol=1e-6, atol=1e-7, msg=name)
    # comparing the jittered frames instead gives another photometric loss
    on_jittered, _, _ = run(_jitter(clean))
    assert (on_jittered.terms["photometric"] - out.terms["photometric"]).abs() > 1e-3
    with pytest.raises(ValueError, match="net_images"):
        CrLoss(cfg)(depth, pose, clean, _K(), (0, -1, 1), net_images=clean[:, :2])
