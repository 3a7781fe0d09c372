"""Models from a typed `fadepth.config.ModelConfig`: the one place that turns config into `create` calls.

`build_depth_model(cfg)` is the random-init network a config describes (also what `fadepth.checkpoint`
rebuilds before loading a state dict); `initial_depth_model(cfg)` is what training starts from: the same,
or the weights of `cfg.init_checkpoint`, including ETM# (Table VI: ETM over a trained plain SmallDepth).
"""
from __future__ import annotations

from torch import nn

from fadepth.models.etm import ETMOptions, convert_to_etm
from fadepth.models.registry import create


def etm_options(etm_cfg) -> ETMOptions | None:
    """`ETMOptions` from a `fadepth.config.ETMConfig`, or None when ETM is off (r2 is 0 without dropconv)."""
    if not etm_cfg.enabled:
        return None
    return ETMOptions(pb_t=etm_cfg.pb_t, r1=etm_cfg.r1, r2=etm_cfg.r2 if etm_cfg.dropconv else 0.0,
                      init=etm_cfg.init, dropconv=etm_cfg.dropconv, variance=etm_cfg.variance,
                      dropconv_rescale=etm_cfg.dropconv_rescale, heads=etm_cfg.heads)


def architecture_options(model_cfg) -> dict:
    """Builder options of a depth model (SmallDepth's widths / expansion when set)."""
    options = {}
    if model_cfg.widths is not None:
        options["widths"] = list(model_cfg.widths)
    if model_cfg.expansion is not None:
        options["expansion"] = list(model_cfg.expansion)
    return options


def build_depth_model(model_cfg) -> nn.Module:
    """The depth network a `ModelConfig` describes (random init; see `fadepth.checkpoint` for loading)."""
    return create(model_cfg.name, etm=etm_options(model_cfg.etm), start_depth=model_cfg.start_depth,
                  **architecture_options(model_cfg))


def build_pose_model(model_cfg) -> nn.Module:
    return create(model_cfg.pose, translation_scale=model_cfg.pose_translation_scale)


def initial_depth_model(model_cfg) -> nn.Module:
    """The depth net training starts from: random init, or the weights of `model_cfg.init_checkpoint`.

    ETM# (Table VI): when the checkpoint holds a plain net and this config asks for ETM, the plain net is
    loaded and then converted, so with `etm.init="largest"` every ETM shape starts from the trained K x K
    kernel (its centre crop)."""
    if model_cfg.init_checkpoint is None:
        return build_depth_model(model_cfg)
    from fadepth.checkpoint import config_of, load_checkpoint

    init = load_checkpoint(model_cfg.init_checkpoint)
    options = etm_options(model_cfg.etm)
    if options is not None and not config_of(init, model_cfg.init_checkpoint).model.etm.enabled:
        plain = create(model_cfg.name, **architecture_options(model_cfg))
        plain.load_state_dict(init["model"])
        return convert_to_etm(plain, options)
    net = build_depth_model(model_cfg)
    net.load_state_dict(init["model"])
    return net
