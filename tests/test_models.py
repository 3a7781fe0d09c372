"""Depth/pose model contracts, shapes, parameter counts, registry errors and deploy (docs/architecture.md)."""
from __future__ import annotations

import math

import pytest
import torch

from fadepth.models import available, create
from fadepth.models.deploy import deploy, unfused_batchnorms

DEPTH_MODELS = ["smalldepth", "rn18", "mobilenetv3"]
# (encoder M, decoder M): ours measured, Table IV's printed values within 0.06 M.
PARAM_TARGETS = {"smalldepth": (2.124, 0.289), "rn18": (11.177, 3.153), "mobilenetv3": (2.816, 1.872)}
PAPER_PARAMS = {"smalldepth": (2.07, 0.28), "rn18": (11.18, 3.15), "mobilenetv3": (2.82, 1.87)}


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create(name).eval() for name in DEPTH_MODELS}


def test_registry_lists_models():
    assert set(DEPTH_MODELS) <= set(available("depth"))
    assert {"posenet_rn18", "posenet_fbnetv3"} <= set(available("pose"))


def test_registry_unknown_model_names_it_and_lists_known():
    with pytest.raises(KeyError) as err:
        create("smalldepht")
    assert "smalldepht" in str(err.value) and "smalldepth" in str(err.value) and "rn18" in str(err.value)


def test_registry_unknown_option_names_model():
    with pytest.raises(TypeError, match="smalldepth"):
        create("smalldepth", width=3)


@pytest.mark.parametrize("name", DEPTH_MODELS)
def test_output_contract(models, name):
    model = models[name]
    assert hasattr(model, "encoder") and hasattr(model, "decoder")
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert len(out["disp"]) == 4
    for disp in out["disp"]:
        assert disp.shape[:2] == (2, 1) and disp.min() > 0 and disp.max() < 1
    assert [d.shape[-1] for d in out["disp"]] == sorted((d.shape[-1] for d in out["disp"]), reverse=True)
    assert [f.shape[1] for f in out["enc"]] == model.enc_channels
    assert [f.shape[1] for f in out["dec"]] == model.dec_channels


SIZES = [(128, 416), (192, 640), (384, 640), (100, 150)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", DEPTH_MODELS)
def test_output_shapes(models, name, size):
    height, width = size
    with torch.no_grad():
        out = models[name](torch.rand(1, 3, height, width))
    first = 1 if name == "smalldepth" else 0  # SmallDepth predicts at H/2..H/16, the baselines at H..H/8
    for s, disp in enumerate(out["disp"]):
        stride = 2 ** (s + first)
        expected = (math.ceil(height / stride), math.ceil(width / stride))
        assert tuple(disp.shape[-2:]) == expected, (name, s, disp.shape)
    assert tuple(out["enc"][-1].shape[-2:]) == (math.ceil(height / 32), math.ceil(width / 32))


@pytest.mark.parametrize("name", DEPTH_MODELS)
def test_param_counts(models, name):
    enc, dec = millions(models[name].encoder), millions(models[name].decoder)
    assert enc == pytest.approx(PARAM_TARGETS[name][0], abs=0.002)
    assert dec == pytest.approx(PARAM_TARGETS[name][1], abs=0.002)
    assert enc == pytest.approx(PAPER_PARAMS[name][0], abs=0.06)
    assert dec == pytest.approx(PAPER_PARAMS[name][1], abs=0.06)


def test_smalldepth_widths_option():
    model = create("smalldepth", widths=[32, 48, 96, 192, 448], expansion=[2, 2, 2, 2]).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in out["enc"]] == [32, 48, 96, 192, 448]
    with pytest.raises(ValueError, match="5 widths"):
        create("smalldepth", widths=[64, 128])


@pytest.mark.parametrize("name", DEPTH_MODELS)
def test_deploy_keeps_outputs_and_folds_every_bn(models, name):
    torch.manual_seed(0)
    model = create(name).train()
    with torch.no_grad():  # move BN running statistics away from their initial values
        model(torch.rand(2, 3, 64, 96))
    model.eval()
    deployed = deploy(model)
    assert unfused_batchnorms(deployed) == []
    assert not deployed.training and model is not deployed
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before, after = model(image), deployed(image)
    for a, b in zip(before["disp"] + before["enc"], after["disp"] + after["enc"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["posenet_rn18", "posenet_fbnetv3"])
def test_pose_output_shape(name):
    model = create(name).eval()
    with torch.no_grad():
        pose = model(torch.rand(2, 6, 64, 96))
    assert pose.shape == (2, 6)
    with pytest.raises(ValueError, match="B,6,H,W"):
        model(torch.rand(1, 3, 64, 96))


@pytest.mark.parametrize("name", ["smalldepth", "rn18", "mobilenetv3", "hqdecv2"])
def test_start_depth_sets_where_the_disparity_heads_start(name):
    """model.start_depth (decisions row 32): the median eq. 12 depth of an untrained net is the asked one."""
    from fadepth.models import disp_to_depth

    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 192)
    medians = {}
    for depth in (None, 1.0, 5.0):
        torch.manual_seed(1)
        with torch.no_grad():
            medians[depth] = float(disp_to_depth(create(name, start_depth=depth).eval()(x)["disp"][0]).median())
    assert medians[None] == pytest.approx(0.2, rel=0.15)  # sigmoid ~ 1/2: twice eq. 12's floor
    tolerance = 0.35 if name == "hqdecv2" else 0.1  # HQDecv2's gated heads: approximate (their docstring)
    assert medians[1.0] == pytest.approx(1.0, rel=tolerance)
    assert medians[5.0] == pytest.approx(5.0, rel=tolerance)


def test_start_depth_out_of_eq12_range_is_refused():
    from fadepth.models.disparity import disparity_logit

    with pytest.raises(ValueError, match="outside eq. 12"):
        disparity_logit(150.0)
    assert disparity_logit(1.0 / (10.0 * 0.5 + 0.01)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["posenet_rn18"])
def test_pose_translation_scale_scales_only_the_translation(name):
    """model.pose_translation_scale (decisions row 32): monodepth2's x0.01 stays on the rotation."""
    x = torch.rand(2, 6, 64, 96)
    out = {}
    for scale in (0.01, 0.05):
        torch.manual_seed(0)
        with torch.no_grad():
            out[scale] = create(name, translation_scale=scale).eval()(x)
    torch.testing.assert_close(out[0.05][:, :3], out[0.01][:, :3], rtol=0, atol=0)
    torch.testing.assert_close(out[0.05][:, 3:], 5 * out[0.01][:, 3:], rtol=1e-5, atol=1e-9)
