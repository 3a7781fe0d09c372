"""Model zoo: ``create(name, **options)``, ``available()``, ``deploy(model)``.

Depth models return ``{"disp": [4 x (B,1,h,w)] finest first, "enc": [...], "dec": [...]}``.
"""
from fadepth.models.deploy import deploy
from fadepth.models.registry import available, create, entry, register

__all__ = ["available", "create", "entry", "register", "deploy", "disp_to_depth"]


def disp_to_depth(disp):
    """Eq. (12): D = 1 / (10 * disp + 0.01)."""
    return 1.0 / (10.0 * disp + 0.01)


def depth_options(model_cfg) -> dict:
    """`create` options for a depth model from a `fadepth.config.ModelConfig`."""
    etm = model_cfg.etm
    options = dict(
        etm=etm.enabled,
        etm_pb_t=etm.pb_t,
        etm_r1=etm.r1,
        etm_r2=etm.r2 if etm.dropconv else 0.0,
        etm_init=etm.init,
        etm_dropconv=etm.dropconv,
        etm_variance=etm.variance,
    )
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
