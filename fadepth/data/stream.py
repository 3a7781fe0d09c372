"""The training data stream: a seeded permutation per epoch, per-sample augmentation seeds, exact resume.

Every step of a run is a pure function of (seed, iteration, state): the data order comes from a per-epoch seeded
permutation and every sample's random draws from a seed of (train seed, epoch, position), so the data are the
same with any number of loader workers and after a resume (``fadepth.train`` re-seeds the step from
``step_seed``).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from fadepth.config import ExperimentConfig


def step_seed(seed: int, iteration: int) -> int:
    return (seed * 1_000_003 + iteration * 7919) % (2**31 - 1)


class EpochSampler(Sampler[tuple[int, int]]):
    """A seeded permutation per epoch, optionally starting part-way (for exact resume).

    Yields ``(index, sample_seed)``: the seed of every sample's random draws (augmentation) is a function of
    (train seed, epoch, position), so the data are the same with any number of loader workers and after
    a resume, which would otherwise restart the workers' random streams.  ``set_epoch`` repositions one
    sampler, so a DataLoader with persistent workers can serve every epoch.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0):
        self.size, self.seed = size, seed
        self.set_epoch(epoch, start)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=gen).tolist()
        base = step_seed(self.seed, self.epoch * self.size)
        return iter((i, (base + pos * 104_729) % (2**31 - 1)) for pos, i in enumerate(order) if pos >= self.start)

    def __len__(self) -> int:
        return self.size - self.start


class SeededSamples(torch.utils.data.Dataset):
    """``dataset[index]`` with torch's random state (in whichever process loads it) seeded per sample."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        torch.manual_seed(seed)
        return self.dataset[index]


def make_loader(dataset, cfg: ExperimentConfig, sampler: EpochSampler, device: torch.device) -> DataLoader:
    workers = cfg.data.num_workers
    pin = cfg.data.pin_memory if cfg.data.pin_memory != "auto" else device.type == "cuda"
    return DataLoader(SeededSamples(dataset), batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True,
                      num_workers=workers, persistent_workers=workers > 0 and cfg.data.persistent_workers,
                      pin_memory=pin)


def batches(dataset, cfg: ExperimentConfig, start_iteration: int,
            device: torch.device | None = None) -> Iterator[dict[str, Any]]:
    """An endless stream of training batches, positioned at `start_iteration`."""
    per_epoch = len(dataset) // cfg.train.batch_size
    if per_epoch == 0:
        raise ValueError(
            f"training set has {len(dataset)} snippets, fewer than one batch of {cfg.train.batch_size}"
        )
    epoch, skip = divmod(start_iteration, per_epoch)
    sampler = EpochSampler(len(dataset), cfg.train.seed, epoch, skip * cfg.train.batch_size)
    loader = make_loader(dataset, cfg, sampler, device or torch.device("cpu"))
    while True:
        yield from loader
        epoch += 1
        sampler.set_epoch(epoch)
