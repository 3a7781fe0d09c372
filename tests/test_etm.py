"""ETM (eqs. 13-19): branch set, training behaviour, exact folding, conversion and deploy."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fadepth.models import create
from fadepth.models.deploy import deploy
from fadepth.models.etm import ETMConv2d, convert_to_etm, sub_shapes

CONVS = {  # name: (Conv2d kwargs, expects identity branch)
    "dense": (dict(in_channels=6, out_channels=6, kernel_size=3, padding=1), True),
    "dense_widen": (dict(in_channels=6, out_channels=12, kernel_size=3, padding=1), False),
    "depthwise": (dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8), True),
    "dilated": (dict(in_channels=8, out_channels=8, kernel_size=3, padding=2, dilation=2, groups=8), True),
    "strided": (dict(in_channels=6, out_channels=12, kernel_size=3, padding=1, stride=2), False),
    "grouped_multiplier": (dict(in_channels=4, out_channels=8, kernel_size=3, padding=1, stride=2, groups=4), False),
    "reflect_5x5_bias": (dict(in_channels=4, out_channels=4, kernel_size=5, padding=2, bias=True,
                              padding_mode="reflect"), True),
    "valid": (dict(in_channels=4, out_channels=4, kernel_size=3, padding=0), False),
}


def trained_etm(conv_kwargs: dict, variance: str = "output", steps: int = 3) -> ETMConv2d:
    """An ETM whose weights, scales and running variances moved under a few SGD steps."""
    torch.manual_seed(0)
    etm = ETMConv2d(nn.Conv2d(**conv_kwargs), pb_t=0.3, r1=0.5, r2=1.0, variance=variance).train()
    opt = torch.optim.SGD(etm.parameters(), lr=0.05)
    for _ in range(steps):
        out = etm(torch.randn(4, conv_kwargs["in_channels"], 11, 13) + 0.5)
        loss = (out - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return etm.eval()


def test_sub_shapes_count_and_order():
    assert sub_shapes(3, 3) == [(1, 1), (1, 3), (3, 1), (3, 3)]
    assert len(sub_shapes(5, 5)) == 9 and sub_shapes(5, 5)[-1] == (5, 5)
    assert len(sub_shapes(7, 3)) == 4 * 2


@pytest.mark.parametrize("variance", ["output", "input"])
@pytest.mark.parametrize("name", list(CONVS))
def test_fold_matches_unfolded_after_training(name, variance):
    kwargs, identity = CONVS[name]
    etm = trained_etm(kwargs, variance)
    assert etm.has_identity == identity
    assert not torch.allclose(etm.running_var, torch.ones_like(etm.running_var))
    folded = etm.fold()
    assert isinstance(folded, nn.Conv2d) and folded.weight.shape == nn.Conv2d(**kwargs).weight.shape
    x = torch.randn(2, kwargs["in_channels"], 11, 13)
    with torch.no_grad():
        reference, result = etm(x), folded(x)
    assert ((result - reference).abs().max() / reference.abs().max()).item() <= 1e-5


def test_training_is_stochastic_and_eval_deterministic():
    etm = ETMConv2d(nn.Conv2d(8, 8, 3, padding=1, groups=8), pb_t=0.5, r1=1.0, r2=1.0)
    x = torch.randn(4, 8, 9, 9)
    etm.train()
    assert not torch.allclose(etm(x), etm(x))
    etm.eval()
    running = etm.running_var.clone()
    torch.testing.assert_close(etm(x), etm(x))
    torch.testing.assert_close(etm.running_var, running)  # eval never updates the statistics


def test_largest_init_copies_centre_crops():
    conv = nn.Conv2d(4, 4, 5, padding=2)
    etm = ETMConv2d(conv, init="largest")
    for (h, w), weight in zip(etm.shapes, etm.weights):
        dh, dw = (5 - h) // 2, (5 - w) // 2
        torch.testing.assert_close(weight, conv.weight[..., dh:dh + h, dw:dw + w])
    torch.testing.assert_close(etm.standard, conv.weight)


def test_convert_replaces_only_kxk_and_keeps_bn():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1),
                          nn.Conv2d(8, 8, (1, 3), padding=(0, 1)), nn.Conv2d(8, 8, 5, padding=2, groups=8))
    convert_to_etm(model)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["ETMConv2d", "BatchNorm2d", "Conv2d", "ETMConv2d", "ETMConv2d"]
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 8, 8, 8)


def test_smalldepth_etm_converts_every_kxk_conv():
    model = create("smalldepth", etm=True)
    remaining = [n for n, m in model.named_modules() if type(m) is nn.Conv2d and max(m.kernel_size) >= 3]
    assert remaining == []
    assert sum(isinstance(m, ETMConv2d) for m in model.modules()) == 1 + 4 + 2 * 6 + 2 * 4 + 2 * 4


@pytest.mark.parametrize("name", ["smalldepth", "mobilenetv3"])
def test_deploy_etm_model_equals_eval_and_plain_param_count(name):
    torch.manual_seed(0)  # float64: an untrained ETM stack (no BN in the mnv3 decoder) amplifies fp32 rounding
    model = create(name, etm=True).double().train()
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 96, dtype=torch.float64))
    model.eval()
    deployed = deploy(model)
    assert not any(isinstance(m, ETMConv2d) for m in deployed.modules())
    n_deployed = sum(p.numel() for p in deployed.parameters())
    assert n_deployed == sum(p.numel() for p in deploy(create(name)).parameters())
    image = torch.rand(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        before, after = model(image)["disp"], deployed(image)["disp"]
    for a, b in zip(before, after):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-8)


def test_dropconv_rescale_makes_the_expected_training_kernel_the_folded_one():
    """Eq. 14 as printed: E[Upsilon * w_T] = (1 - r2 pb_t) w_T; with `dropconv_rescale` it is w_T (what fold uses)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    rate = 0.5 * 1.5  # pb_t = 0.5, r2 = 1.5: pb_w = 0.75
    for rescale, expected in ((False, 1.0 - rate), (True, 1.0)):
        etm = ETMConv2d(conv, pb_t=0.5, r1=0.0, r2=1.5, dropconv_rescale=rescale).train()
        mean_kernel = torch.stack([etm._kernels()[-2] for _ in range(4000)]).mean(0)
        ratio = (mean_kernel * etm.weights[-1]).sum() / etm.weights[-1].pow(2).sum()
        assert ratio.item() == pytest.approx(expected, abs=0.01)
        torch.testing.assert_close(etm.eval()._kernels()[-2], etm.weights[-1])  # eval: no mask, no scale


def test_create_applies_etm_options_once_for_every_model():
    """ETM is a cross-cutting option of `create` (timm style): builders take only architecture arguments."""
    import inspect

    from fadepth.models import ETMOptions, available, entry

    for name in available():
        assert not any(p.startswith("etm") for p in inspect.signature(entry(name).builder).parameters), name
    model = create("smalldepth", etm=ETMOptions(pb_t=0.2, r2=1.0, variance="input", dropconv_rescale=True))
    etms = [m for m in model.modules() if isinstance(m, ETMConv2d)]
    assert etms and all((m.pb_t, m.r2, m.variance, m.dropconv_rescale) == (0.2, 1.0, "input", True) for m in etms)
    assert not any(isinstance(m, ETMConv2d) for m in create("smalldepth", etm=None).modules())
    assert any(isinstance(m, ETMConv2d) for m in create("posenet_rn18", etm={"pb_t": 0.05}).modules())
    with pytest.raises(TypeError, match="smalldepth.*etm options"):
        create("smalldepth", etm={"pbt": 0.1})


def test_initial_depth_model_builds_etm_sharp_from_a_plain_checkpoint(tmp_path):
    """ETM# (Table VI): a trained plain SmallDepth's K x K kernels seed every ETM shape (in the models package)."""
    from fadepth.checkpoint import save_checkpoint
    from fadepth.config import ExperimentConfig
    from fadepth.models import initial_depth_model

    torch.manual_seed(0)
    plain_cfg = ExperimentConfig()
    plain = create("smalldepth")
    path = save_checkpoint(tmp_path / "plain.pt", {"model": plain.state_dict(),
                                                   "config": plain_cfg.model_dump(mode="json")})
    cfg = plain_cfg.model.model_copy(update={"init_checkpoint": str(path), "etm": plain_cfg.model.etm.model_copy(
        update={"enabled": True, "init": "largest"})})
    net = initial_depth_model(cfg)
    stem = net.encoder.stem.conv
    assert isinstance(stem, ETMConv2d)
    torch.testing.assert_close(stem.standard, plain.encoder.stem.conv.weight)
    torch.testing.assert_close(stem.weights[0], plain.encoder.stem.conv.weight[..., 1:2, 1:2])
    # An ETM checkpoint loads as it is (resume-like init, no second conversion).
    etm_cfg = plain_cfg.model_copy(update={"model": cfg}).model_dump(mode="json")
    etm_path = save_checkpoint(tmp_path / "etm.pt", {"model": net.state_dict(), "config": etm_cfg})
    again = initial_depth_model(cfg.model_copy(update={"init_checkpoint": str(etm_path)}))
    torch.testing.assert_close(again.encoder.stem.conv.weights[0], stem.weights[0])


# ------------------------------------------------------------------ switches (decisions rows 35, 36, 39)
@pytest.mark.parametrize("name,heads", [("smalldepth", "decoder.heads"), ("rn18", "decoder.dispconvs")])
def test_etm_heads_switch_keeps_disparity_heads_plain(name, heads):
    def etm_names(model):
        return {n for n, m in model.named_modules() if isinstance(m, ETMConv2d)}

    with_heads, without = etm_names(create(name, etm=True)), etm_names(create(name, etm={"heads": False}))
    assert any(n.startswith(heads + ".") for n in with_heads)  # default: ETM on the heads too (as before)
    assert not any(n.startswith(heads + ".") for n in without)
    assert without == {n for n in with_heads if not n.startswith(heads + ".")}


def test_etm_pb_schedule_follows_eq5():
    from fadepth.config import ModelConfig
    from fadepth.etm_training import apply_etm_drop_rates
    net = create("smalldepth", etm=True)
    convs = [m for m in net.modules() if isinstance(m, ETMConv2d)]
    constant = ModelConfig(etm={"enabled": True, "pb_t": 0.2})
    assert apply_etm_drop_rates(net, 0, 100, constant) == 0.2 and all(m.pb_t == 0.2 for m in convs)
    cosine = ModelConfig(etm={"enabled": True, "pb_t": 0.2, "pb_schedule": "cosine"})
    assert apply_etm_drop_rates(net, 0, 100, cosine) == 0.0 and all(m.pb_t == 0.0 for m in convs)
    assert apply_etm_drop_rates(net, 50, 100, cosine) == pytest.approx(0.2)  # the peak at M = N / 2
    assert apply_etm_drop_rates(net, 0, 100, ModelConfig()) is None  # no ETM


def test_weight_decay_etm_groups_p_t():
    from fadepth.config import OptimConfig
    from fadepth.etm_training import parameter_groups
    net = create("smalldepth", etm=True)
    (group,) = parameter_groups([net], OptimConfig())  # default: one group, every parameter (as before)
    assert group["weight_decay"] == 1e-2 and len(group["params"]) == len(list(net.parameters()))
    plain, etm = parameter_groups([net], OptimConfig(weight_decay_etm=0.0))
    scales = {id(m.scale) for m in net.modules() if isinstance(m, ETMConv2d)}
    assert {id(p) for p in etm["params"]} == scales and etm["weight_decay"] == 0.0
    assert plain["weight_decay"] == 1e-2 and not scales & {id(p) for p in plain["params"]}


def test_training_runs_with_the_etm_switches(tmp_path):
    from fadepth.config import load_config
    from fadepth.train import Trainer, train

    # 64x208: at 32x96 ETM's output variance (reading A) of the 1x3 H/32 maps gives NaN (as before this switch)
    cfg = load_config(overrides=[
        "data.height=64", "data.width=208", "train.batch_size=2", "train.progress=false", "train.iterations=2",
        "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1", "data.synthetic.frames_per_sequence=6",
        "eval.max_images=2", f"train.out_dir={tmp_path}", "model.etm.enabled=true", "model.etm.heads=false",
        "model.etm.pb_schedule=cosine", "optim.weight_decay_etm=0.0"])
    assert [g["weight_decay"] for g in Trainer(cfg).optimizer.param_groups] == [1e-2, 0.0]
    assert torch.isfinite(torch.tensor(train(cfg).metrics["abs_rel"]))
