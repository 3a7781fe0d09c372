"""Models from a typed `fadepth.config.ModelConfig`: the one place that turns config into `create` calls.

`build_depth_model(cfg)` is the random-init network a config describes (also what `load_model` rebuilds
before loading a checkpoint's state dict); `initial_depth_model(cfg)` is what training starts from: the same,
or the weights of `cfg.init_checkpoint`, including ETM# (Table VI: ETM over a trained plain SmallDepth).
`load_model(path)` is the trained nets of a checkpoint, in eval mode (eval / predict / export).
`fadepth.checkpoint` below this module is file I/O only.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fadepth.checkpoint import STATE_NAME, WEIGHTS_NAME, CheckpointError, config_of, load_checkpoint
from fadepth.models.etm import ETMOptions, convert_to_etm
from fadepth.models.registry import create
from fadepth.utils import resolve_device


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
    """The depth network a `ModelConfig` describes (random init; see `load_model` for loading)."""
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
    init = load_checkpoint(model_cfg.init_checkpoint)
    options = etm_options(model_cfg.etm)
    if options is not None and not config_of(init, model_cfg.init_checkpoint).model.etm.enabled:
        plain = create(model_cfg.name, **architecture_options(model_cfg))
        plain.load_state_dict(init["model"])
        return convert_to_etm(plain, options)
    net = build_depth_model(model_cfg)
    net.load_state_dict(init["model"])
    return net


def load_model(path: str | Path, device: str | torch.device = "cpu", with_pose: bool = False):
    """Rebuild the depth net (and optionally the pose net) of a checkpoint, in eval mode.

    Returns ``(depth_net, cfg)`` or ``(depth_net, pose_net, cfg)`` when ``with_pose``.
    """
    device = resolve_device(device)
    state = load_checkpoint(path)
    cfg = config_of(state, path)
    try:
        depth_net = build_depth_model(cfg.model)
        depth_net.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the stored config's model ({reason[:300]})") from None
    depth_net.to(device).eval()
    if not with_pose:
        return depth_net, cfg
    if "pose" not in state:
        raise CheckpointError(f"{path}: holds no pose network (a {WEIGHTS_NAME} file); "
                              f"pass the run's {STATE_NAME} instead")
    pose_net = build_pose_model(cfg.model)
    pose_net.load_state_dict(state["pose"])
    return depth_net, pose_net.to(device).eval(), cfg
