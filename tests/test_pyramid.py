"""Pyramid loss (eqs. 20-22) and the objective recipes, on tiny stand-in networks (64x96 snippets)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fadepth.config import ExperimentConfig, PyramidConfig, PyramidLevelConfig
from fadepth.losses.objective import build_objective
from fadepth.losses.pyramid import (
    CONSISTENCY_PHI_KINDS,
    PHI_KINDS,
    PyramidLoss,
    jitter_snippets,
    level_size,
    phi,
    round_to_multiple,
)

H, W, FRAMES = 64, 96, (0, -1, 1)


# ------------------------------------------------------------------------------ stand-ins
class TinyDepth(nn.Module):
    """Obeys the depth-model contract: disp x4 (H/2..H/16), enc x4, dec x3, finest first."""

    enc_channels = [4, 6, 8, 8]
    dec_channels = [4, 6, 8]

    def __init__(self):
        super().__init__()
        chans = [3] + self.enc_channels
        self.encoder = nn.ModuleList(nn.Conv2d(a, b, 3, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
        self.decoder = nn.ModuleList(nn.Conv2d(c, c, 3, 1, 1) for c in self.dec_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(b, a, 1) for a, b in zip(self.dec_channels, self.enc_channels[1:]))
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 3, 1, 1) for c in self.dec_channels + [self.enc_channels[-1]])

    def forward(self, x):
        enc = []
        for conv in self.encoder:
            x = torch.relu(conv(x))
            enc.append(x)
        dec, up = [None] * 3, enc[-1]
        for i in reversed(range(3)):
            up = F.interpolate(self.lateral[i](up), size=enc[i].shape[-2:], mode="bilinear", align_corners=False)
            dec[i] = torch.relu(self.decoder[i](enc[i] + up))
            up = dec[i]
        disp = [torch.sigmoid(h(m)) for h, m in zip(self.heads, dec + [enc[-1]])]
        return {"disp": disp, "enc": enc, "dec": dec}


class FlipEquivariant(nn.Module):
    """g(x) = (f(x) + flip f(flip x)) / 2, so flip g(flip x) == g(x)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.enc_channels, self.dec_channels = net.enc_channels, net.dec_channels

    def forward(self, x):
        a, b = self.net(x), self.net(torch.flip(x, dims=(-1,)))
        return {k: [(u + torch.flip(v, dims=(-1,))) / 2 for u, v in zip(a[k], b[k])] for k in a}


class TinyPose(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(6, 4, 5, 4, 2), nn.Linear(4, 6)

    def forward(self, x):
        return 0.01 * self.fc(torch.relu(self.conv(x)).mean((-2, -1)))


@dataclass
class CrOut:
    total: torch.Tensor
    terms: dict
    outputs: dict


class ToyCrLoss(nn.Module):
    """Obeys the CrLoss contract; depends on disp, dec, images, K and the pose net."""

    def __init__(self):
        super().__init__()
        self.calls, self.inputs = [], []

    def forward(self, depth_net, pose_net, images, K, frame_ids, net_images=None):
        self.calls.append((tuple(images.shape), K.clone()))
        self.inputs.append((images, net_images))
        t = list(frame_ids).index(0)
        seen = images if net_images is None else net_images  # the networks' input
        target = images[:, t]
        out = depth_net(seen[:, t])
        gray = target.mean(1, keepdim=True)
        photo = sum(((d - F.interpolate(gray, size=d.shape[-2:], mode="area")) ** 2).mean() for d in out["disp"])
        feat = sum(f.pow(2).mean() for f in out["dec"]) * 0.01
        pairs = (torch.cat([seen[:, t], seen[:, i]], 1) for i in range(1, images.shape[1]))
        pose = sum(pose_net(pair).pow(2).sum(1).mean() for pair in pairs)
        intr = 1e-4 * (K[:, 0, 2] / K.new_tensor(images.shape[-1])).mean()
        total = photo + feat + pose + intr
        return CrOut(total, {"photometric": photo.detach(), "total": total.detach()}, out)


def snippet(batch=2):
    images = torch.rand(batch, len(FRAMES), 3, H, W)
    K = torch.tensor([[40.0, 0, 47.5], [0, 40.0, 31.5], [0, 0, 1]]).expand(batch, 3, 3).clone()
    return images, K


def all_levels(**kw) -> PyramidConfig:
    return PyramidConfig(
        enabled=True,
        lr=PyramidLevelConfig(enabled=True, alpha=0.5, beta=1.0, gamma=0.5, size=(32, 64)),
        hr=PyramidLevelConfig(enabled=True, alpha=0.5, beta=0.5, gamma=0.1, size=(96, 128)),
        flip=PyramidLevelConfig(enabled=True, alpha=1.0, beta=0.1, gamma=0.5),
        color=PyramidLevelConfig(enabled=True, alpha=1.0, beta=0.1, gamma=0.1, phi="l1"),
        **kw,
    )


def gradients(mode, seed=0, **loss_kw):
    torch.manual_seed(seed)
    depth, pose = TinyDepth(), TinyPose()
    images, K = snippet()
    loss = PyramidLoss(all_levels(mode=mode), ToyCrLoss(), **loss_kw)
    out = loss(depth, pose, images, K, FRAMES)
    if not out.backward_done:
        out.total.backward()
    grads = [p.grad.clone() for p in list(depth.parameters()) + list(pose.parameters())]
    return grads, out


def assert_same(ga, gb, rtol=1e-5, atol=1e-7):
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------- phi
@pytest.mark.parametrize("kind", ["sym_ce", "sym_kl", "l1"])
def test_phi_is_symmetric(kind):
    a, b = torch.randn(2, 3, 8, 12), torch.randn(2, 3, 8, 12)
    torch.testing.assert_close(phi(a, b, kind), phi(b, a, kind))


def test_phi_zero_for_identical_inputs_and_sym_ce_is_kl_plus_entropy():
    a, b = torch.randn(2, 3, 8, 12), torch.randn(2, 3, 8, 12)
    assert phi(a, a, "sym_kl").abs() < 1e-6 and phi(a, a, "l1") == 0
    assert phi(a, b, "sym_kl") > 1e-3 and phi(a, b, "l1") > 0
    # sym_ce(a, b) = sym_kl(a, b) + mean entropy, entropy = sym_ce(x, x) (the sign-corrected eq. 22)
    entropy = 0.5 * (phi(a, a, "sym_ce") + phi(b, b, "sym_ce"))
    torch.testing.assert_close(phi(a, b, "sym_ce"), phi(a, b, "sym_kl") + entropy)
    assert phi(a, a, "sym_ce") > 0


def _descend(kind, a, steps=300, lr=1e-2):
    """Minimise phi(a, b) over b from b = a with a fixed (what per-level mode does: cr is detached)."""
    b = a.clone().requires_grad_(True)
    opt = torch.optim.Adam([b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        phi(a, b, kind).backward()
        opt.step()
    return b.detach()


@pytest.mark.parametrize("kind", CONSISTENCY_PHI_KINDS)
def test_consistency_phi_is_minimal_with_zero_gradient_at_b_equal_a(kind):
    torch.manual_seed(0)
    a = 0.3 * torch.rand(2, 3, 12, 16)  # disparity-like maps in [0, 0.3]
    b = a.clone().requires_grad_(True)
    a_live = a.clone().requires_grad_(True)
    value = phi(a_live, b, kind)
    value.backward()
    assert float(value.detach()) == pytest.approx(0.0, abs=1e-6)
    assert b.grad.abs().max() < 1e-7 and a_live.grad.abs().max() < 1e-7
    for scale in (1e-3, 1e-2, 0.1, 1.0):  # every direction costs more, near and far
        for _ in range(5):
            assert phi(a, a + scale * torch.randn_like(a), kind) > float(value.detach()) + 1e-9
    assert (_descend(kind, a) - a).abs().max() < 1e-6  # gradient descent stays at b = a


def test_printed_sym_ce_is_not_a_consistency_loss():
    """sym_ce (eq. 22 as printed) = sym_kl + entropy: not minimal at b = a, hence not in CONSISTENCY_PHI_KINDS."""
    assert set(PHI_KINDS) - set(CONSISTENCY_PHI_KINDS) == {"sym_ce"}
    assert PyramidConfig().phi_kind == "sym_kl"
    torch.manual_seed(0)
    a = 0.3 * torch.rand(2, 3, 12, 16)
    b = a.clone().requires_grad_(True)
    phi(a, b, "sym_ce").backward()
    assert b.grad.abs().max() > 1e-5
    moved = _descend("sym_ce", a)
    assert (moved - a).abs().mean() > 0.05  # it sharpens b away from a (measured 0.076) ...
    assert phi(a, moved, "sym_ce") < phi(a, a, "sym_ce")
    assert moved.std() > 1.8 * a.std()  # ... doubling its spread (0.175 against 0.088)


def test_phi_reduction_sums_over_softmax_axis_and_averages_the_rest():
    a = torch.zeros(1, 1, 4, 6)  # uniform: CE along H = log 4, along W = log 6
    expected = 0.5 * (torch.log(torch.tensor(4.0)) + torch.log(torch.tensor(6.0)))
    torch.testing.assert_close(phi(a, a, "sym_ce"), expected)
    torch.testing.assert_close(phi(a.expand(3, 2, 4, 6), a.expand(3, 2, 4, 6), "sym_ce"), expected)


# ------------------------------------------------------------------------------- levels
def test_level_sizes_snap_to_the_papers_grid_at_kitti():
    """128x416 -> the prose's I_lr 96x320 and I_hr 160x512 (0.75x / 1.25x on the 32-pixel grid)."""
    cfg = PyramidConfig()
    assert level_size(cfg.lr, (128, 416)) == (96, 320)
    assert level_size(cfg.hr, (128, 416)) == (160, 512)
    assert level_size(cfg.lr, (192, 640)) == (144, 480) and level_size(cfg.hr, (192, 640)) == (240, 800)
    assert level_size(PyramidLevelConfig(size=(64, 200)), (128, 416)) == (64, 200)
    assert round_to_multiple(16) == 32 and round_to_multiple(48) == 64 and round_to_multiple(47) == 32


@pytest.mark.parametrize("name,scale", [("lr", 0.75), ("hr", 1.25)])
def test_synthetic_levels_are_the_scale_in_both_axes(name, scale):
    """64x208 (the synthetic profile): within 10 % of 0.75x / 1.25x in both axes, for every student net."""
    level = getattr(PyramidConfig(), name)
    for multiple in (1, 2):  # SmallDepth, RN18 / MobileNetV3 (their size_multiple)
        h, w = level_size(level, (64, 208), multiple)
        assert abs(h / (64 * scale) - 1) <= 0.10 and abs(w / (208 * scale) - 1) <= 0.10, (h, w)
        assert h % multiple == 0 and w % multiple == 0
    assert level_size(level, (64, 208)) == {"lr": (48, 160), "hr": (80, 256)}[name]
    assert level_size(level, (64, 208), tolerance=0.0) == {"lr": (48, 156), "hr": (80, 260)}[name]
    assert level_size(level, (64, 208), 32) == {"lr": (64, 160), "hr": (96, 256)}[name]  # HQDecv2's grid


def test_synthetic_level_view_scales_intrinsics_per_axis():
    """A level that is not a multiple of 32 (48x160 from 64x208) scales fx, cx by 160/208 and fy, cy by 48/64."""
    images, K = torch.rand(1, 3, 3, 64, 208), torch.tensor([[[120.0, 0, 103.5], [0, 123.0, 31.5], [0, 0, 1]]])
    cfg = PyramidConfig(enabled=True, lr=PyramidLevelConfig(enabled=True, scale=0.75))
    view = PyramidLoss(cfg, ToyCrLoss()).level_view("lr", TinyDepth(), images, K)
    assert view.images.shape[-2:] == (48, 160)
    sx, sy = 160 / 208, 48 / 64
    expected = torch.tensor([[[120.0 * sx, 0, (103.5 + 0.5) * sx - 0.5], [0, 123.0 * sy, (31.5 + 0.5) * sy - 0.5],
                              [0, 0, 1]]])
    torch.testing.assert_close(view.K, expected)
    assert (view.K[0, 0, 2], view.K[0, 1, 2]) == pytest.approx(((160 - 1) / 2, (48 - 1) / 2))  # still the centre


def test_level_size_follows_the_nets_grid():
    from fadepth.models import create

    cfg = PyramidConfig(enabled=True, lr=PyramidLevelConfig(enabled=True, scale=0.75))
    loss = PyramidLoss(cfg, ToyCrLoss())
    assert loss.level_size("lr", (64, 208), create("smalldepth")) == (48, 160)
    assert create("rn18").size_multiple == 2 and create("mobilenetv3").size_multiple == 2


def test_level_views_scale_and_flip_intrinsics():
    images, K = snippet()
    loss = PyramidLoss(all_levels(), ToyCrLoss())
    net = TinyDepth()
    lr = loss.level_view("lr", net, images, K)
    assert lr.images.shape[-2:] == (32, 64) and lr.net_images is None
    # fadepth.geometry.resize_intrinsics: f scales, c' = (c + 0.5) s - 0.5 (align_corners=False resize)
    sx, sy = 64 / W, 32 / H
    torch.testing.assert_close(lr.K[:, 0], torch.stack([K[:, 0, 0] * sx, K[:, 0, 1], (K[:, 0, 2] + 0.5) * sx - 0.5], 1))
    torch.testing.assert_close(lr.K[:, 1], torch.stack([K[:, 1, 0], K[:, 1, 1] * sy, (K[:, 1, 2] + 0.5) * sy - 0.5], 1))
    flip = loss.level_view("flip", net, images, K)
    torch.testing.assert_close(flip.images, torch.flip(images, dims=(-1,)))
    torch.testing.assert_close(flip.K[:, 0, 2], W - 1 - K[:, 0, 2])
    color = loss.level_view("color", net, images, K)
    assert color.images.shape == images.shape and torch.equal(color.K, K)


def test_color_jitter_is_one_draw_per_snippet():
    frame = torch.rand(1, 1, 3, H, W)
    images = torch.cat([frame.expand(1, 3, 3, H, W), torch.rand(1, 3, 3, H, W)])
    out = jitter_snippets(images, (0.4, 0.4, 0.4, 0.1))
    assert torch.allclose(out[0, 0], out[0, 1]) and torch.allclose(out[0, 0], out[0, 2])
    assert not torch.allclose(out[0], images[0])


def test_use_cr_feeds_cr_images_to_the_loss_and_resizes_outputs():
    images, K = snippet()
    for use_cr, expected in ((False, (32, 64)), (True, (H, W))):
        cr = ToyCrLoss()
        cfg = PyramidConfig(enabled=True, lr=PyramidLevelConfig(enabled=True, size=(32, 64)), use_cr=use_cr)
        out = PyramidLoss(cfg, cr)(TinyDepth(), TinyPose(), images, K, FRAMES)
        (_, cr_K), (lr_shape, lr_K) = cr.calls
        assert lr_shape[-2:] == expected and torch.equal(lr_K, K) == use_cr
        assert out.level_sizes["lr"] == expected and "lr/phi_disp" in out.terms


def test_flip_consistency_is_zero_for_a_flip_equivariant_network():
    torch.manual_seed(1)
    net, images, K = FlipEquivariant(TinyDepth()).eval(), *snippet()
    for phi_kind, level_phi in (("sym_kl", "prob"), ("sym_kl", "l1")):
        cfg = PyramidConfig(
            enabled=True, phi_kind=phi_kind, flip=PyramidLevelConfig(enabled=True, beta=1, gamma=1, phi=level_phi)
        )
        out = PyramidLoss(cfg, ToyCrLoss())(net, TinyPose(), images, K, FRAMES)
        assert out.terms["flip/phi_disp"] < 1e-6 and out.terms["flip/phi_feat"] < 1e-6
    plain = PyramidLoss(cfg, ToyCrLoss())(TinyDepth(), TinyPose(), images, K, FRAMES)
    assert plain.terms["flip/phi_disp"] > 1e-5  # a generic net is not equivariant


@pytest.mark.parametrize("use_cr", [False, True])
def test_levels_feed_jittered_frames_to_the_nets_and_clean_frames_to_the_loss(use_cr):
    """Data-level jitter reaches the networks only; the colour level jitters the clean frames (its own draw)
    and is the one level whose loss compares jittered images."""
    clean, K = snippet()
    jittered = (0.5 * clean + 0.4).clamp(0, 1)  # a strong, known "jitter"
    cr = ToyCrLoss()
    loss = PyramidLoss(all_levels(use_cr=use_cr), cr, color_jitter=(0.0, 0.0, 0.0, 0.0))
    out = loss(TinyDepth(), TinyPose(), clean, K, FRAMES, net_images=jittered)
    (cr_images, cr_net), (lr_images, lr_net), (hr_images, hr_net), (f_images, f_net), (c_images, c_net) = cr.inputs
    assert torch.equal(cr_images, clean) and torch.equal(cr_net, jittered)
    if use_cr:  # the wrapper resizes the network input itself
        assert torch.equal(lr_images, clean) and torch.equal(lr_net, jittered)
    else:
        from fadepth.losses.pyramid import resize_snippet

        assert torch.equal(lr_images, resize_snippet(clean, (32, 64)))
        assert torch.equal(lr_net, resize_snippet(jittered, (32, 64)))
        assert torch.equal(hr_net, resize_snippet(jittered, (96, 128)))
    assert torch.equal(f_images, torch.flip(clean, dims=(-1,))) and torch.equal(f_net, torch.flip(jittered, dims=(-1,)))
    # colour level: a (here neutral) jitter of the *clean* frames, for the nets and the loss alike
    assert c_net is None and torch.allclose(c_images, clean, atol=1e-5)
    assert out.terms["cr/total"] > 0
    # without net_images every level sees one image set, and cr losses without the keyword still work
    cr2 = ToyCrLoss()
    PyramidLoss(all_levels(use_cr=use_cr), cr2)(TinyDepth(), TinyPose(), clean, K, FRAMES)
    assert all(net is None for _, net in cr2.inputs)


def test_objective_routes_images_aug_to_the_nets_and_the_teacher():
    cfg = ExperimentConfig.model_validate({"data": {"height": H, "width": W}, "loss": {"apx": {"enabled": True}}})
    depth, pose, cr = TinyDepth(), TinyPose(), ToyCrLoss()
    seen = []

    class RecordingTeacher(TinyTeacher):
        def __call__(self, images, ids=None):
            seen.append(images)
            return super().__call__(images, ids)

    objective = build_objective(cfg, depth, "cpu", cr_loss=cr, teacher=RecordingTeacher())
    clean, K = snippet()
    jittered = (0.5 * clean + 0.4).clamp(0, 1)
    objective(depth, pose, {"images": clean, "images_aug": jittered, "K": K, "id": ["a", "b"]})
    (images, net_images), = cr.inputs
    assert torch.equal(images, clean) and torch.equal(net_images, jittered)
    assert torch.equal(seen[0], jittered[:, 0])  # the teacher sees what the student sees


# -------------------------------------------------------------------------- update modes
def test_per_level_equals_sum_with_detached_cr():
    grads_sum, out_sum = gradients("sum", detach_cr=True)
    grads_acc, out_acc = gradients("per_level")
    assert out_acc.backward_done and not out_sum.backward_done
    assert not out_acc.total.requires_grad
    torch.testing.assert_close(out_acc.total, out_sum.total.detach())
    assert_same(grads_sum, grads_acc)


def test_per_level_exact_cr_gradient_equals_plain_sum():
    grads_sum, _ = gradients("sum")
    grads_exact, _ = gradients("per_level", exact_cr_gradient=True)
    assert_same(grads_sum, grads_exact)
    grads_detached, _ = gradients("per_level")
    assert any(not torch.allclose(a, b) for a, b in zip(grads_sum, grads_detached))  # the relation is not trivial


# ---------------------------------------------------------------------------- objective
class TinyTeacher:
    enc_channels, dec_channels = TinyDepth.enc_channels, TinyDepth.dec_channels + [8]

    def __init__(self):
        self.net = TinyDepth().eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, images, ids=None):
        out = self.net(images)
        return {"disp": out["disp"][:1], "enc": out["enc"], "dec": out["dec"] + [out["enc"][-1]]}


@pytest.mark.parametrize("pyramid,apx,mode", [(False, False, "sum"), (True, False, "sum"), (False, True, "sum"),
                                              (True, True, "sum"), (True, True, "per_level")])
def test_objective_recipes(pyramid, apx, mode):
    cfg = ExperimentConfig.model_validate({
        "data": {"height": H, "width": W},
        "loss": {"pyramid": all_levels(mode=mode).model_dump() | {"enabled": pyramid},
                 "apx": {"enabled": apx, "lambda_enc": 0.5}},
    })
    depth, pose = TinyDepth(), TinyPose()
    objective = build_objective(cfg, depth, "cpu", cr_loss=ToyCrLoss(), teacher=TinyTeacher() if apx else None)
    images, K = snippet()
    out = objective(depth, pose, {"images": images, "K": K, "id": ["a", "b"]})
    assert out.backward_done == (pyramid and mode == "per_level")
    if not out.backward_done:
        out.loss.backward()
    assert all(p.grad is not None for p in depth.parameters())
    assert ("apx/total" in out.terms) == apx and ("py/total" in out.terms) == pyramid
    adapters = list(objective.parameters())
    assert bool(adapters) == apx and all(p.grad is not None for p in adapters)
    assert out.outputs["disp"][0].shape[-2:] == (H // 2, W // 2)


@pytest.mark.parametrize("mode", ["sum", "per_level"])
def test_colour_frames_from_the_data_pipeline_are_the_colour_levels_input(mode, monkeypatch):
    """Given ``color_images`` (drawn by the data pipeline), the colour level runs on exactly them, and the loss
    equals the one whose in-step jitter produced the same frames: the draw moved, the computation did not."""
    import fadepth.losses.pyramid as pyramid

    clean, K = snippet()
    drawn = (0.7 * clean + 0.2).clamp(0, 1)
    cfg = all_levels(mode=mode)
    losses = []
    for given in (None, drawn):
        cr = ToyCrLoss()
        torch.manual_seed(0)
        if given is None:
            monkeypatch.setattr(pyramid, "jitter_snippets", lambda images, strengths: drawn)
        out = PyramidLoss(cfg, cr)(TinyDepth(), TinyPose(), clean, K, FRAMES, color_images=given)
        monkeypatch.undo()
        assert torch.equal(cr.inputs[-1][0], drawn) and cr.inputs[-1][1] is None  # the colour level's call
        losses.append(out.total)
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)
