"""Model zoo: ``create(name, etm=..., **options)``, ``available()``, ``deploy(model)``.

Depth models return ``{"disp": [4 x (B,1,h,w)] finest first, "enc": [...], "dec": [...]}``.
"""
from fadepth.models.build import (
    architecture_options,
    build_depth_model,
    build_pose_model,
    etm_options,
    initial_depth_model,
)
from fadepth.models.deploy import deploy
from fadepth.models.etm import ETMOptions
from fadepth.models.registry import available, create, entry, register

__all__ = ["available", "create", "entry", "register", "deploy", "disp_to_depth", "ETMOptions",
           "architecture_options", "build_depth_model", "build_pose_model", "etm_options", "initial_depth_model"]


def disp_to_depth(disp):
    """Eq. (12): D = 1 / (10 * disp + 0.01)."""
    return 1.0 / (10.0 * disp + 0.01)
