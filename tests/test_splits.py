"""The KITTI split lists shipped as package data (eigen_zhou train/val, eigen and eigen_benchmark test)."""
from __future__ import annotations

import pytest

from fadepth.data.kitti import SPLITS_DIR, read_split, split_file


@pytest.mark.parametrize("split,which,lines", [("eigen_zhou", "train", 39810), ("eigen_zhou", "val", 4424),
                                               ("eigen", "test", 697), ("eigen_benchmark", "test", 652)])
def test_shipped_split_lists(split, which, lines):
    path = split_file(split, which)
    assert path.parent == SPLITS_DIR / split
    entries = read_split(path)
    assert len(entries) == lines
    assert {side for _, _, side in entries} <= {"l", "r"}


def test_eigen_zhou_train_and_val_are_disjoint_and_avoid_the_test_drives():
    train = {(f, i, s) for f, i, s in read_split(split_file("eigen_zhou", "train"))}
    val = {(f, i, s) for f, i, s in read_split(split_file("eigen_zhou", "val"))}
    test_drives = {f for f, _, _ in read_split(split_file("eigen", "test"))}
    assert not train & val
    assert not {f for f, _, _ in train} & test_drives
