"""Baseline DepthNets of Tables IV and VI: torchvision trunks + the monodepth2 depth decoder.

`rn18`: torchvision resnet18 (no FC), features at H/2..H/32 with 64, 64, 128, 256, 512 channels.
`mobilenetv3`: torchvision mobilenet_v3_large().features[:16], taps after blocks 1, 3, 6, 12, 15
(16, 24, 40, 112, 160 channels). Both use `Monodepth2Decoder`: decoder channels 16..256, ConvBlock =
reflection-padded 3x3 conv + ELU, nearest x2, skip concat, sigmoid disparity at scales 0..3 (H .. H/8).
The reflection padding is the conv's own `padding_mode="reflect"` (same numbers as ReflectionPad2d + conv,
and a single conv that ETM can replace with an identity branch). Weights are random (no downloads).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18

from fadepth.models.blocks import resize_to
from fadepth.models.registry import register
from fadepth.models.smalldepth import IMAGE_MEAN, IMAGE_STD

DECODER_CHANNELS = (16, 32, 64, 128, 256)
MOBILENET_TAPS = (1, 3, 6, 12, 15)


class ConvBlock(nn.Module):
    """monodepth2 ConvBlock: reflection-padded 3x3 conv (with bias) + ELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = reflect_conv3x3(cin, cout)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def reflect_conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")


class Monodepth2Decoder(nn.Module):
    """monodepth2 DepthDecoder. For i = 4..0: ConvBlock, nearest x2 (to the skip's size), concat skip i-1,
    ConvBlock; sigmoid disparity heads at scales 0..3. Returns (disp finest first, dec features finest first)."""

    disparity_heads = ("dispconvs",)  # ETM leaves them alone with model.etm.heads=false

    def __init__(self, enc_channels: Sequence[int], dec_channels: Sequence[int] = DECODER_CHANNELS,
                 num_scales: int = 4):
        super().__init__()
        self.enc_channels, self.dec_channels, self.num_scales = list(enc_channels), list(dec_channels), num_scales
        self.upconv0 = nn.ModuleList()
        self.upconv1 = nn.ModuleList()
        for i in range(5):
            cin = enc_channels[4] if i == 4 else dec_channels[i + 1]
            skip = enc_channels[i - 1] if i > 0 else 0
            self.upconv0.append(ConvBlock(cin, dec_channels[i]))
            self.upconv1.append(ConvBlock(dec_channels[i] + skip, dec_channels[i]))
        self.dispconvs = nn.ModuleList(reflect_conv3x3(dec_channels[s], 1) for s in range(num_scales))

    def init_disparity(self, logit: float) -> None:
        """Start every disparity head at pre-sigmoid `logit` (``fadepth.models.disparity.set_start_depth``)."""
        for conv in self.dispconvs:
            nn.init.constant_(conv.bias, logit)

    def forward(self, enc: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = enc[4]
        dec: list[torch.Tensor] = [None] * 5
        for i in range(4, -1, -1):
            x = self.upconv0[i](x)
            if i > 0:
                x = torch.cat([resize_to(x, enc[i - 1].shape[-2:], "nearest"), enc[i - 1]], 1)
            else:
                x = resize_to(x, (2 * x.shape[-2], 2 * x.shape[-1]), "nearest")
            x = self.upconv1[i](x)
            dec[i] = x
        disp = [torch.sigmoid(self.dispconvs[s](dec[s])) for s in range(self.num_scales)]
        return disp, dec


class ResNet18Encoder(nn.Module):
    """torchvision resnet18 trunk without avgpool/FC: features after relu (H/2) and layer1..layer4."""

    fuse_named_pairs = (("conv1", "bn1"),)  # bn1 follows conv1 directly (fadepth.models.deploy)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        trunk = resnet18(weights=None)
        if in_channels != 3:
            trunk.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.channels = [64, 64, 128, 256, 512]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.relu(self.bn1(self.conv1(x)))]
        feats.append(self.layer1(self.maxpool(feats[-1])))
        for layer in (self.layer2, self.layer3, self.layer4):
            feats.append(layer(feats[-1]))
        return feats


class MobileNetV3Encoder(nn.Module):
    """torchvision mobilenet_v3_large().features[:16] (no final 160->960 conv), taps 1, 3, 6, 12, 15."""

    def __init__(self):
        super().__init__()
        self.features = mobilenet_v3_large(weights=None).features[:16]
        self.channels = [16, 24, 40, 112, 160]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for idx, layer in enumerate(self.features):
            x = layer(x)
            if idx in MOBILENET_TAPS:
                feats.append(x)
        return feats


class TrunkDepthNet(nn.Module):
    """Encoder trunk + monodepth2 decoder with the depth-model output contract (docs/architecture.md)."""

    # Even H, W: the last x2 upsampling doubles the H/2 map, so an odd side comes back one pixel larger.
    size_multiple = 2

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = Monodepth2Decoder(encoder.channels)
        self.enc_channels = list(encoder.channels)
        self.dec_channels = list(DECODER_CHANNELS)

    def forward(self, image: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        enc = self.encoder((image - IMAGE_MEAN) / IMAGE_STD)
        disp, dec = self.decoder(enc)
        return {"disp": disp, "enc": enc, "dec": dec}


@register("rn18", kind="depth")
def rn18() -> nn.Module:
    """ResNet-18 DepthNet (monodepth2): 11.18 M / 1.93 G encoder + 3.15 M / 1.55 G decoder at 128x416."""
    return TrunkDepthNet(ResNet18Encoder())


@register("mobilenetv3", kind="depth")
def mobilenetv3() -> nn.Module:
    """MobileNetV3-large DepthNet: 2.82 M / 0.23 G encoder + 1.87 M / 1.09 G decoder at 128x416."""
    return TrunkDepthNet(MobileNetV3Encoder())
