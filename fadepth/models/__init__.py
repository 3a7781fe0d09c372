"""Model zoo: ``create(name, etm=..., start_depth=..., **options)``, ``available()``, ``deploy(model)``.

Depth models return ``{"disp": [4 x (B,1,h,w)] finest first, "enc": [...], "dec": [...]}``.
"""
from fadepth.models.build import (
    architecture_options,
    build_depth_model,
    build_pose_model,
    etm_options,
    initial_depth_model,
    load_model,
)
from fadepth.models.deploy import deploy
from fadepth.models.disparity import disp_to_depth, set_start_depth
from fadepth.models.etm import ETMOptions
from fadepth.models.registry import available, create, entry, register

__all__ = ["available", "create", "entry", "register", "deploy", "disp_to_depth", "ETMOptions",
           "architecture_options", "build_depth_model", "build_pose_model", "etm_options", "initial_depth_model", "load_model",
           "set_start_depth"]
