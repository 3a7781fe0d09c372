"""L_cr on a fixed batch equals the values of the reference implementation (before the step-time work).

The reference numbers were computed by the straightforward L_cr (five separate 3x3 average pools per
SSIM, every statistic recomputed for every warp, each frame's depth upsampled on its own) at commit
5335262 plus monodepth2's SSIM clamp; speed-ups must not change what is computed (issue 11: <= 1e-5
relative on the loss).
"""
import pytest
import torch
import torch.nn.functional as F

from fadepth.config import load_config
from fadepth.data.synthetic import kitti_like_intrinsics
from fadepth.losses.cr import CrLoss
from fadepth.models import build_depth_model, build_pose_model

REFERENCE = {
    "photometric": 0.03521782159805298,
    "depth_consistency": 0.0039449166506528854,
    "feature": 0.21390025317668915,
    "smoothness": 0.015834618359804153,
    "total": 0.05670258030295372,
}
REFERENCE_GRAD_L1 = {"depth": 0.2749493474623421, "pose": 871.3405571310224}


def fixed_batch(b=2, h=64, w=208):
    """Three smooth random frames per sample, shifted sideways against each other, plus a little noise."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(b * 3, 3, h // 8, w // 8 + 2, generator=g)
    base = F.interpolate(base, size=(h, w + 16), mode="bilinear").reshape(b, 3, 3, h, w + 16)
    images = torch.stack([base[:, 0, :, :, 8:8 + w], base[:, 0, :, :, 6:6 + w], base[:, 0, :, :, 10:10 + w]], 1)
    images = (images + 0.05 * base[:, 1:2, :, :, :w].expand(-1, 3, -1, -1, -1)).clamp(0, 1)
    K = torch.tensor(kitti_like_intrinsics(h, w), dtype=torch.float32).expand(b, 3, 3)
    return images, K


def test_cr_loss_on_a_fixed_batch_matches_the_reference():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(overrides=["model.pb_dsr=0.0", "model.pb_sd=0.0"])
        torch.manual_seed(0)
        depth, pose = build_depth_model(cfg.model).eval(), build_pose_model(cfg.model).eval()
        images, K = fixed_batch()
        torch.manual_seed(1)  # the auto-mask's tie-breaking noise
        out = CrLoss(cfg.loss.cr)(depth, pose, images, K, (0, -1, 1))
        out.total.backward()
    finally:
        torch.set_num_threads(threads)
    for name, ref in REFERENCE.items():
        assert float(out.terms[name]) == pytest.approx(ref, rel=1e-5), name
    for name, net in (("depth", depth), ("pose", pose)):
        l1 = sum(float(p.grad.double().abs().sum()) for p in net.parameters() if p.grad is not None)
        assert l1 == pytest.approx(REFERENCE_GRAD_L1[name], rel=1e-4), name


def test_batched_pose_pass_computes_what_one_pass_per_pair_computes():
    """loss.cr.batched_pose: one pose pass over both pairs, BatchNorm per pair, in training mode."""
    cfg = load_config(overrides=["model.pb_dsr=0.0", "model.pb_sd=0.0"])
    images, K = fixed_batch()
    runs = {}
    for batched in (False, True):
        torch.manual_seed(0)
        depth, pose = build_depth_model(cfg.model).train(), build_pose_model(cfg.model).train()
        loss_cfg = cfg.loss.cr.model_copy(update={"batched_pose": batched})
        torch.manual_seed(1)
        out = CrLoss(loss_cfg)(depth, pose, images, K, (0, -1, 1))
        out.total.backward()
        grads = torch.cat([p.grad.flatten() for p in pose.parameters() if p.grad is not None])
        runs[batched] = (float(out.total), grads, [b.clone() for b in pose.buffers()])
    (loss0, grad0, buf0), (loss1, grad1, buf1) = runs[False], runs[True]
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    torch.testing.assert_close(grad1, grad0, rtol=1e-4, atol=1e-6)
    for a, b in zip(buf0, buf1):  # running statistics updated pair after pair, as two passes do
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_pose_input_scale_shows_the_pose_net_downsampled_pairs():
    cfg = load_config(overrides=["model.pb_dsr=0.0", "model.pb_sd=0.0"])
    images, K = fixed_batch()
    seen = []
    torch.manual_seed(0)
    depth, pose = build_depth_model(cfg.model).eval(), build_pose_model(cfg.model).eval()
    pose.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    CrLoss(cfg.loss.cr.model_copy(update={"pose_input_scale": 0.5}))(depth, pose, images, K, (0, -1, 1))
    assert seen == [(4, 6, 32, 104)]  # both pairs of the 2 snippets in one pass, at half resolution
