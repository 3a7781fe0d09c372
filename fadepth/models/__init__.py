"""Model zoo: ``create(name, **options)``, ``available()``, ``deploy(model)``.

Depth models return ``{"disp": [4 x (B,1,h,w)] finest first, "enc": [...], "dec": [...]}``.
"""
from fadepth.models.registry import available, create, entry, register

__all__ = ["available", "create", "entry", "register", "deploy", "disp_to_depth"]


def deploy(model):
    """A copy of `model` with every ETM folded into one conv and every BatchNorm into its conv."""
    from fadepth.models.deploy import deploy as _deploy

    return _deploy(model)


def disp_to_depth(disp):
    """Eq. (12): D = 1 / (10 * disp + 0.01)."""
    return 1.0 / (10.0 * disp + 0.01)
