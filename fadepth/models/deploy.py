"""Inference-time export: fold every ETMConv2d (eqs. 18-19) and every BatchNorm2d into its conv.

`deploy(model)` returns a deep copy in eval mode. BN folding follows explicit pairs only:
  * our `ConvBN` (its `fuse()`),
  * consecutive (Conv2d, BatchNorm2d) children of an nn.Sequential (torchvision Conv2dNormActivation,
    ResNet downsample),
  * named attribute pairs of torchvision ResNet / BasicBlock / Bottleneck (conv1/bn1, conv2/bn2, conv3/bn3),
    whose forward applies each bn directly to its conv's output, and modules that list such pairs in a
    `fuse_named_pairs` attribute (our ResNet18Encoder),
A BatchNorm2d outside these patterns stays unfused (there is none in the registered depth models;
`unfused_batchnorms(model)` lists any). Drop functions are left in place: they are identity in eval.
"""
from __future__ import annotations

import copy

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from fadepth.models.blocks import ConvBN, fuse_conv_bn
from fadepth.models.etm import fold_etm

NAMED_PAIRS = {
    ResNet: (("conv1", "bn1"),),
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


def named_pairs(module: nn.Module) -> tuple[tuple[str, str], ...]:
    """conv/bn attribute pairs of a torchvision trunk (or of a module copying ResNet's stem names)."""
    for cls, pairs in NAMED_PAIRS.items():
        if isinstance(module, cls):
            return pairs
    if getattr(module, "fuse_named_pairs", None):
        return tuple(module.fuse_named_pairs)
    return ()


def is_pair(conv: nn.Module, bn: nn.Module) -> bool:
    """Exact types only: subclasses (timm BatchNormAct2d, Conv2dSame) carry extra behaviour."""
    return type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d


def fuse_batchnorms(module: nn.Module) -> nn.Module:
    """Fold BN into the preceding conv, in place, for the explicit pairs listed in the module docstring."""
    if isinstance(module, ConvBN):
        module.fuse()
    for conv_name, bn_name in named_pairs(module):
        conv, bn = getattr(module, conv_name), getattr(module, bn_name)
        if is_pair(conv, bn):
            setattr(module, conv_name, fuse_conv_bn(conv, bn))
            setattr(module, bn_name, nn.Identity())
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if is_pair(conv, bn):
                module._modules[first] = fuse_conv_bn(conv, bn)
                module._modules[second] = nn.Identity()
    for child in module.children():
        fuse_batchnorms(child)
    return module


def unfused_batchnorms(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def deploy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with ETMs folded to single convs and BatchNorms folded into their convs."""
    deployed = copy.deepcopy(model).eval()
    fold_etm(deployed)
    fuse_batchnorms(deployed)
    return deployed
