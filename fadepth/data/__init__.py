"""Datasets: synthetic street video (default), KITTI raw (Eigen splits) and DDAD.

``build_dataset(data_cfg, split, augment)`` returns a ``torch.utils.data.Dataset`` of training
samples ``{"images": (F,3,H,W) in [0,1] (frames in data_cfg.frame_ids order, target first),
"K": (3,3) pixel intrinsics at (H,W), "depth": (1,H,W) (synthetic only; 0 = invalid), "id": str}``; with
augmentation also ``"images_aug"``: the same frames colour-jittered, the networks' input (``images`` stay
un-jittered for the photometric loss, as monodepth2's color / color_aug); with ``color_level`` also
``"images_color"``, the pyramid colour level's own jitter of ``images``.

``build_test_set(data_cfg, eval_cfg)`` returns a sequence of ``{"image": (3,H,W) at the network size,
"gt": float32 (Hgt,Wgt) at native resolution, "id": str}`` with a ``protocol`` attribute
(``synthetic``, ``eigen``, ``eigen_benchmark`` or ``ddad``).  KITTI test lists come from
``fadepth/data/splits/<protocol>/test_files.txt`` unless ``data_cfg.split`` is a folder holding its own
``test_files.txt`` (e.g. one written by ``fadepth synthetic write-kitti``); ``eval_cfg.split == "val"``
gives the ``val_files.txt`` list of ``data_cfg.split`` with Eigen (LiDAR) GT computed on the fly.
"""
from __future__ import annotations

from pathlib import Path

SPLITS_DIR = Path(__file__).parent / "splits"
_DEFAULT_PROTOCOL = {"synthetic": "synthetic", "kitti": "eigen", "ddad": "ddad"}
_PROTOCOLS = {"synthetic": {"synthetic"}, "kitti": {"eigen", "eigen_benchmark"}, "ddad": {"ddad"}}


def _augmenter(data_cfg, augment: bool):
    if not (augment and data_cfg.augment.enabled):
        return None
    from .transforms import SnippetAugment

    return SnippetAugment(data_cfg.augment)


def dataset_root(data_cfg) -> Path:
    """`data.path` as a folder, or one clear error naming the key (also the pre-flight's check)."""
    if not data_cfg.path:
        raise FileNotFoundError(f"data.dataset={data_cfg.dataset!r} needs data.path (the dataset root folder)")
    path = Path(data_cfg.path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data.path {str(path)!r} is not a folder (expected the {data_cfg.dataset} root)")
    return path


def build_dataset(data_cfg, split: str = "train", augment: bool = True, color_level: bool = False):
    """Training / validation dataset for `split` ("train", "val"; synthetic also "test"); with `color_level`
    its samples also carry the pyramid colour level's jittered frames (:class:`WithColorLevel`)."""
    dataset = _dataset(data_cfg, split, augment)
    return WithColorLevel(dataset, data_cfg.augment) if color_level else dataset


class WithColorLevel:  # a map-style dataset
    """Samples plus ``images_color``: their clean ``images`` under one ColorJitter draw per snippet, always applied
    (data.augment's strengths, a random order of the four adjustments), the input and loss frames of the pyramid's
    colour level (eq. 20, k = color).  Drawn here with the rest of the augmentation, from the sample's seeded
    stream, so that a training step draws nothing on the host (which a captured CUDA graph would freeze)."""

    def __init__(self, dataset, augment_cfg):
        self.dataset, self.augment_cfg = dataset, augment_cfg

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        from .transforms import color_jitter, generator_from_global

        sample = dict(self.dataset[index])
        sample["images_color"] = color_jitter(sample["images"], self.augment_cfg, generator_from_global())
        return sample


def _dataset(data_cfg, split: str, augment: bool):
    if data_cfg.dataset == "synthetic":
        from .synthetic import SyntheticScenes
        from .synthetic_dataset import SyntheticVideoDataset

        scenes = SyntheticScenes(data_cfg.synthetic, data_cfg.height, data_cfg.width, split)
        return SyntheticVideoDataset(scenes, data_cfg.frame_ids, _augmenter(data_cfg, augment))
    if data_cfg.dataset == "kitti":
        from .kitti import KittiRawDataset, read_split, split_file

        root = dataset_root(data_cfg)
        files = read_split(split_file(data_cfg.split, split))
        return KittiRawDataset(root, files, data_cfg.height, data_cfg.width, data_cfg.frame_ids,
                               augment=_augmenter(data_cfg, augment), image_ext=data_cfg.image_ext)
    if data_cfg.dataset == "ddad":
        from .ddad import DDADDataset

        return DDADDataset(dataset_root(data_cfg), split, data_cfg.height, data_cfg.width, data_cfg.frame_ids,
                           augment=_augmenter(data_cfg, augment))
    raise ValueError(f"unknown dataset {data_cfg.dataset!r}")


def resolve_protocol(data_cfg, eval_cfg) -> str:
    protocol = _DEFAULT_PROTOCOL[data_cfg.dataset] if eval_cfg.protocol == "auto" else eval_cfg.protocol
    if protocol not in _PROTOCOLS[data_cfg.dataset]:
        raise ValueError(f"eval.protocol={protocol!r} does not apply to data.dataset={data_cfg.dataset!r} "
                         f"(use one of {sorted(_PROTOCOLS[data_cfg.dataset])} or 'auto')")
    return protocol


def build_test_set(data_cfg, eval_cfg):
    """Test sequence for the evaluation protocol (``eval_cfg.protocol``, 'auto' = dataset default)."""
    protocol = resolve_protocol(data_cfg, eval_cfg)
    if protocol == "synthetic":
        from .synthetic import SyntheticScenes
        from .synthetic_dataset import SyntheticTestSet

        split = eval_cfg.split if eval_cfg.split in ("val", "test") else "test"
        scenes = SyntheticScenes(data_cfg.synthetic, data_cfg.height, data_cfg.width, split)
        return SyntheticTestSet(scenes, eval_cfg.max_images)
    if protocol in ("eigen", "eigen_benchmark"):
        from .kitti import KittiTestSet, split_file

        root = dataset_root(data_cfg)
        if eval_cfg.split == "val":  # validation during training: data.split's val list, Eigen GT from LiDAR
            return KittiTestSet(root, "eigen", data_cfg.height, data_cfg.width, max_images=eval_cfg.max_images,
                                image_ext=data_cfg.image_ext, split_path=split_file(data_cfg.split, "val"))
        custom = Path(data_cfg.split).expanduser() / "test_files.txt"  # a split folder of one's own
        return KittiTestSet(root, protocol, data_cfg.height, data_cfg.width,
                            gt_path=eval_cfg.gt_path, max_images=eval_cfg.max_images, image_ext=data_cfg.image_ext,
                            split_path=custom if custom.is_file() else None)
    from .ddad import DDADTestSet

    return DDADTestSet(dataset_root(data_cfg), data_cfg.height, data_cfg.width, max_images=eval_cfg.max_images)


__all__ = ["build_dataset", "build_test_set", "resolve_protocol", "SPLITS_DIR"]
