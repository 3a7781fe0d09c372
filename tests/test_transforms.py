"""Training augmentation: the loss's frames stay un-jittered, the networks get the jittered copy."""
from __future__ import annotations

import torch

from fadepth.config import AugmentConfig, DataConfig, SyntheticConfig
from fadepth.data import build_dataset
from fadepth.data.transforms import SnippetAugment, hflip

H, W = 64, 208
SYNTHETIC = SyntheticConfig(train_sequences=1, val_sequences=1, test_sequences=1, frames_per_sequence=4, cache=False)
STRONG = dict(color_jitter_p=1.0, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.3)


def _dataset(augment: bool, **aug):
    cfg = DataConfig(height=H, width=W, synthetic=SYNTHETIC, augment=AugmentConfig(**aug))
    return build_dataset(cfg, "train", augment=augment)


def test_samples_carry_clean_frames_for_the_loss_and_jittered_ones_for_the_nets():
    plain = _dataset(False)[1]
    assert "images_aug" not in plain
    # geometric augmentation off, strong jitter always on: `images` are exactly the rendered frames
    sample = _dataset(True, scale_range=(1.0, 1.0), flip_p=0.0, **STRONG)[1]
    assert torch.equal(sample["images"], plain["images"]) and torch.equal(sample["K"], plain["K"])
    assert sample["images_aug"].shape == sample["images"].shape
    assert (sample["images_aug"] - sample["images"]).abs().mean() > 0.02
    # with a flip, both copies are flipped; only images_aug is jittered
    flipped = _dataset(True, scale_range=(1.0, 1.0), flip_p=1.0, **STRONG)[1]
    images, K, _ = hflip(plain["images"], plain["K"], None)
    assert torch.equal(flipped["images"], images) and torch.equal(flipped["K"], K)
    assert not torch.allclose(flipped["images_aug"], flipped["images"])
    # no jitter drawn: the network input is the clean snippet itself
    calm = _dataset(True, color_jitter_p=0.0)[1]
    assert torch.equal(calm["images_aug"], calm["images"])


def test_jitter_is_one_draw_per_snippet_and_geometry_is_shared():
    aug = SnippetAugment(AugmentConfig(scale_range=(1.1, 1.1), flip_p=0.0, **STRONG))
    frame = torch.rand(1, 3, 32, 48)
    out = aug(frame.expand(3, -1, -1, -1).clone(), torch.eye(3), None, torch.Generator().manual_seed(3))
    assert out.depth is None and "depth" not in out.sample_fields()
    assert torch.allclose(out.images_aug[0], out.images_aug[2]) and torch.allclose(out.images[0], out.images[1])
    assert not torch.allclose(out.images_aug, out.images)


def test_colour_level_frames_are_drawn_per_sample_from_its_seed():
    """build_dataset(color_level=True): every sample also carries ``images_color``, the clean frames under one
    ColorJitter draw (the pyramid's colour level), a function of the sample's seed like the rest of its augmentation."""
    from fadepth.data.stream import SeededSamples

    cfg = DataConfig(height=32, width=96, synthetic={"train_sequences": 1, "frames_per_sequence": 6})
    data = SeededSamples(build_dataset(cfg, "train", augment=True, color_level=True))
    first, again, other = data[(0, 5)], data[(0, 5)], data[(0, 6)]
    assert torch.equal(first["images_color"], again["images_color"])
    assert not torch.equal(first["images_color"], other["images_color"])
    colour = first["images_color"]
    assert colour.shape == first["images"].shape and 0 <= colour.min() and colour.max() <= 1
    assert not torch.allclose(colour, first["images"])  # always jittered (no color_jitter_p)
    assert "images_color" not in SeededSamples(build_dataset(cfg, "train", augment=True))[(0, 5)]
