"""APX distillation (eq. 28), its mask, adapters and the frozen, cached teacher (tiny nets, 32x64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fadepth.checkpoint import save_checkpoint
from fadepth.config import ApxConfig, ExperimentConfig, ModelConfig
from fadepth.losses.apx import ApproximationLoss, Teacher, approximation_divergence, median_mask, resize_to
from fadepth.models import available, register

H, W = 32, 64
TEACHER_NAME = "_apx_test_teacher"
ENC, DEC = [4, 6, 8, 8, 8], [4, 6, 8, 8]  # student: 5 encoder, 4 decoder stages (X_dec^4 := X_enc^4)


class TinyTeacherNet(nn.Module):
    """Depth-model contract: disp (full, 1/2, 1/4), enc x5, dec x5."""

    enc_channels = [3, 5, 5, 5, 5]
    dec_channels = [3, 3, 5, 5, 5]

    def __init__(self, **_options):
        super().__init__()
        chans = [3] + self.enc_channels
        self.encoder = nn.ModuleList(nn.Conv2d(a, b, 3, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
        self.decoder = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(self.enc_channels, self.dec_channels))
        self.head = nn.Conv2d(3, 1, 3, 1, 1)

    def forward(self, x):
        size, enc = x.shape[-2:], []
        for conv in self.encoder:
            x = torch.relu(conv(x))
            enc.append(x)
        dec = [conv(e) for conv, e in zip(self.decoder, enc)]
        full = torch.sigmoid(F.interpolate(self.head(dec[0]), size=size, mode="bilinear", align_corners=False))
        disp = [resize_to(full, (size[0] // s, size[1] // s)) for s in (1, 2, 4)]
        return {"disp": disp, "enc": enc, "dec": dec}


if TEACHER_NAME not in available():
    register(TEACHER_NAME, kind="teacher")(TinyTeacherNet)


def student_like(batch=2, seed=0) -> dict:
    """Student outputs whose coarse disparities are resizes of the finest one (so teacher == student is exact)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(H // 2 ** (i + 1), W // 2 ** (i + 1)) for i in range(5)]
    enc = [torch.randn(batch, c, *s, generator=g) for c, s in zip(ENC, sizes)]
    dec = [torch.randn(batch, c, *s, generator=g) for c, s in zip(DEC, sizes)]
    full = torch.rand(batch, 1, H, W, generator=g)
    return {"disp": [resize_to(full, s) for s in sizes[:4]], "enc": enc, "dec": dec, "full": full}


def as_teacher(student: dict) -> dict:
    return {"disp": [student["full"]], "enc": student["enc"], "dec": student["dec"] + [student["enc"][-1]]}


def make_loss(adapter="conv", **cfg) -> ApproximationLoss:
    apx_cfg = ApxConfig(enabled=True, adapter=adapter, **cfg)
    return ApproximationLoss(apx_cfg, ENC, DEC, ENC, DEC + [ENC[-1]], identity_init=True)


# ---------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("adapter", ["mean", "conv"])
def test_apx_is_zero_when_student_equals_teacher(adapter):
    student = student_like()
    total, terms = make_loss(adapter)(student, as_teacher(student))
    assert abs(total.item()) < 1e-6 and set(terms) == {"apx/enc", "apx/dec", "apx/disp", "apx/total"}


@pytest.mark.parametrize("adapter", ["mean", "conv"])
def test_apx_is_positive_otherwise_and_trains_student_and_adapters_only(adapter):
    student, teacher = student_like(seed=0), as_teacher(student_like(seed=1))
    for key in ("enc", "dec", "disp"):
        student[key] = [x.requires_grad_(True) for x in student[key]]
    loss = make_loss(adapter)
    total, terms = loss(student, teacher)
    assert total > 0 and all(v > 0 for v in terms.values())
    total.backward()
    assert all(x.grad is not None for x in student["enc"])
    adapters = list(loss.parameters())
    assert all(p.grad is not None for p in adapters) and bool(adapters) == (adapter == "conv")


def test_conv_adapters_map_student_to_teacher_channels_and_resize_to_teacher_size():
    loss = ApproximationLoss(ApxConfig(enabled=True), [4, 8], [4], [16, 32], [16, 32])
    assert [c.out_channels for c in loss.adapters["dec"]] == [16, 32] and loss.adapters["dec"][1].in_channels == 8
    assert all(c.bias is not None for c in loss.adapters["enc"])
    student = {"enc": [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)], "dec": [torch.randn(1, 4, 8, 8)]}
    teacher = {"enc": [torch.randn(1, 16, 16, 16), torch.randn(1, 32, 8, 8)],
               "dec": [torch.randn(1, 16, 16, 16), torch.randn(1, 32, 8, 8)]}
    assert torch.isfinite(loss.stage_term("enc", student, teacher))


def test_divergence_is_kl_teacher_to_student_along_h_and_w():
    a, b = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7)
    expected = 0
    for dim in (-2, -1):
        p, q = a.softmax(dim), b.softmax(dim)
        expected = expected + 0.5 * (p * (p.log() - q.log())).sum(dim).mean()
    torch.testing.assert_close(approximation_divergence(a, b), expected)
    assert not torch.isclose(approximation_divergence(a, b), approximation_divergence(b, a))


# ---------------------------------------------------------------------------------------- mask
def test_mask_keeps_exactly_the_pixels_above_k_times_the_per_image_median():
    z = torch.rand(3, 1, 5, 5) * torch.tensor([1.0, 10.0, 0.1]).view(3, 1, 1, 1)
    mask = median_mask(z, 0.3)
    for img, m in zip(z.numpy(), mask.numpy()):
        np.testing.assert_array_equal(m.astype(bool), img > 0.3 * np.median(img))  # 25 values: unique median
    assert 0 < mask.sum() < mask.numel()


def test_masked_pixels_are_zeroed_before_the_softmax_and_carry_no_gradient():
    student, teacher = student_like(seed=0), as_teacher(student_like(seed=1))
    student["disp"] = [d.requires_grad_(True) for d in student["disp"]]
    loss = make_loss("mean", lambda_enc=0, lambda_dec=0, mask_k=1.0)
    loss(student, teacher)[0].backward()
    for disp in student["disp"]:
        mask = median_mask(resize_to(teacher["disp"][0], disp.shape[-2:]), 1.0)
        assert torch.all(disp.grad[mask == 0] == 0) and disp.grad[mask == 1].abs().sum() > 0
    unmasked = make_loss("mean", lambda_enc=0, lambda_dec=0, mask="none")(student, teacher)[0]
    assert not torch.isclose(unmasked, loss(student, teacher)[0])


# ------------------------------------------------------------------------------------- teacher
def write_teacher_checkpoint(path, seed):
    torch.manual_seed(seed)
    cfg = ExperimentConfig(model=ModelConfig(name=TEACHER_NAME))
    save_checkpoint(path, {"model": TinyTeacherNet().state_dict(), "config": cfg.model_dump(mode="json")})
    return str(path)


def counting(teacher: Teacher) -> list:
    calls, forward = [], teacher.net.forward
    teacher.net.forward = lambda x: calls.append(x.shape[0]) or forward(x)
    return calls


def test_teacher_is_frozen_and_needs_a_checkpoint_unless_random_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="teacher_checkpoint"):
        Teacher(ApxConfig(teacher=TEACHER_NAME), "cpu")
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        Teacher(ApxConfig(teacher=TEACHER_NAME), "cpu", allow_random_teacher=True)
    checkpoint = write_teacher_checkpoint(tmp_path / "t.pt", 0)
    teacher = Teacher(ApxConfig(teacher=TEACHER_NAME, teacher_checkpoint=checkpoint), "cpu")
    assert not teacher.net.training and not any(p.requires_grad for p in teacher.net.parameters())
    out = teacher(torch.rand(2, 3, H, W))
    assert not out["disp"][0].requires_grad and out["disp"][0].shape[-2:] == (H, W)


def test_teacher_runs_at_its_own_resolution_and_resizes_to_the_students():
    cfg = ApxConfig(teacher=TEACHER_NAME, teacher_height=2 * H, teacher_width=2 * W)
    with pytest.warns(UserWarning):
        teacher = Teacher(cfg, "cpu", allow_random_teacher=True)
    seen = counting(teacher)
    out = teacher(torch.rand(2, 3, H, W))
    assert seen == [2] and out["disp"][0].shape[-2:] == (H, W) and out["enc"][0].shape[-2:] == (H // 2, W // 2)


def test_teacher_cache_hits_misses_and_rebuilds_when_the_checkpoint_changes(tmp_path):
    images, ids = torch.rand(2, 3, H, W), ["s0", "s1"]
    cfg = dict(teacher=TEACHER_NAME, cache_dir=str(tmp_path / "cache"))
    ckpt_a = write_teacher_checkpoint(tmp_path / "a.pt", 0)
    first = Teacher(ApxConfig(teacher_checkpoint=ckpt_a, **cfg), "cpu")
    fresh_a = first(images, ids)
    assert first.cache.rebuilt and len(list((tmp_path / "cache" / "entries").glob("*.pt"))) == 2

    again = Teacher(ApxConfig(teacher_checkpoint=ckpt_a, **cfg), "cpu")
    calls = counting(again)
    cached = again(images, ids)
    assert not again.cache.rebuilt and calls == []
    assert all(torch.equal(x, y) for k in cached for x, y in zip(cached[k], fresh_a[k]))
    again(torch.stack([images[0], images[1].flip(-1)]), ids)  # augmented image, same id: recomputed
    assert calls == [1]

    ckpt_b = write_teacher_checkpoint(tmp_path / "b.pt", 1)
    with pytest.warns(UserWarning, match="stale"):
        rebuilt = Teacher(ApxConfig(teacher_checkpoint=ckpt_b, **cfg), "cpu")
    calls = counting(rebuilt)
    out_b = rebuilt(images, ids)
    assert rebuilt.cache.rebuilt and calls == [2]
    assert not torch.allclose(out_b["disp"][0], fresh_a["disp"][0])
