"""Model zoo: ``create(name, **options)``, ``available()``, ``deploy(model)``.

Depth models return ``{"disp": [4 x (B,1,h,w)] finest first, "enc": [...], "dec": [...]}``.
"""
from fadepth.models.deploy import deploy
from fadepth.models.registry import available, create, entry, register

__all__ = ["available", "create", "entry", "register", "deploy", "disp_to_depth"]


def disp_to_depth(disp):
    """Eq. (12): D = 1 / (10 * disp + 0.01)."""
    return 1.0 / (10.0 * disp + 0.01)


def etm_options(etm_cfg) -> dict:
    """`convert_to_etm` arguments from a `fadepth.config.ETMConfig` (r2 is 0 without dropconv)."""
    return dict(pb_t=etm_cfg.pb_t, r1=etm_cfg.r1, r2=etm_cfg.r2 if etm_cfg.dropconv else 0.0,
                init=etm_cfg.init, dropconv=etm_cfg.dropconv, variance=etm_cfg.variance)


def depth_options(model_cfg) -> dict:
    """`create` options for a depth model from a `fadepth.config.ModelConfig`."""
    options = {"etm": model_cfg.etm.enabled, **{f"etm_{k}": v for k, v in etm_options(model_cfg.etm).items()}}
    if model_cfg.widths is not None:
        options["widths"] = list(model_cfg.widths)
    if model_cfg.expansion is not None:
        options["expansion"] = list(model_cfg.expansion)
    return options


def build_depth_model(model_cfg):
    """The depth network a `ModelConfig` describes (random init; see `fadepth.checkpoint` for loading)."""
    return create(model_cfg.name, **depth_options(model_cfg))


def build_pose_model(model_cfg):
    return create(model_cfg.pose)
