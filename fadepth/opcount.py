"""Exact, noise-free cost counts of a training step: aten ops and host syncs per phase (no timing).

On a GPU every aten op that computes is at least one kernel launch and every host sync drains the queue, so
these counts predict how overhead-bound a step is, and they can be taken on any CPU.
``count_step(trainer, batch)`` runs one ``Trainer.train_step`` under a ``TorchDispatchMode`` and splits it into
``forward`` (networks + objective), ``backward``, ``optimizer`` and ``rest`` (batch transfer, schedules, flag).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "item"})
# ops that move no data (views, metadata, allocation): no kernel on a GPU
METADATA_OPS = frozenset({"view", "_unsafe_view", "reshape", "alias", "detach", "slice", "select", "expand",
                          "unsqueeze", "squeeze", "transpose", "permute", "t", "as_strided", "split", "chunk",
                          "unbind", "split_with_sizes", "empty", "empty_like", "empty_strided", "lift_fresh",
                          "_record_function_enter_new", "_record_function_exit", "_to_copy_noop"})
PHASES = ("forward", "backward", "optimizer", "rest")


@dataclass
class StepCount:
    ops: Counter = field(default_factory=Counter)  # phase -> aten ops
    syncs: Counter = field(default_factory=Counter)  # phase -> host syncs
    kernels: Counter = field(default_factory=Counter)  # phase -> ops that are not views / metadata
    by_name: Counter = field(default_factory=Counter)  # op name -> count over the whole step

    def outside_optimizer(self, counter: Counter) -> int:
        return sum(v for k, v in counter.items() if k != "optimizer")


class _Counter(TorchDispatchMode):
    def __init__(self, result: StepCount):
        super().__init__()
        self.result, self.phase = result, "rest"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        self.result.ops[self.phase] += 1
        self.result.by_name[name] += 1
        if name in SYNC_OPS:
            self.result.syncs[self.phase] += 1
        if name not in METADATA_OPS:
            self.result.kernels[self.phase] += 1
        return func(*args, **(kwargs or {}))

    @contextmanager
    def phase_of(self, phase: str):
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous


def count_step(trainer, batch: dict) -> StepCount:
    """Counts of one ``trainer.train_step(batch)`` (run it once before, so lazy initialisation is not counted)."""
    result = StepCount()
    mode = _Counter(result)
    loss_fn, optimizer_step, backward = trainer.loss_fn, trainer.optimizer.step, torch.Tensor.backward

    def counted_loss(b):
        with mode.phase_of("forward"):
            return loss_fn(b)

    def counted_step(*args, **kwargs):
        with mode.phase_of("optimizer"):
            return optimizer_step(*args, **kwargs)

    def counted_backward(tensor, *args, **kwargs):
        with mode.phase_of("backward"):
            return backward(tensor, *args, **kwargs)

    trainer.loss_fn, trainer.optimizer.step = counted_loss, counted_step
    torch.Tensor.backward = counted_backward
    try:
        with mode:
            trainer.train_step(batch)
    finally:
        trainer.loss_fn, trainer.optimizer.step = loss_fn, optimizer_step
        torch.Tensor.backward = backward
    return result


def count_forward(model: torch.nn.Module, x: torch.Tensor) -> int:
    """aten ops of one inference forward of ``model`` on ``x``."""
    result = StepCount()
    with torch.no_grad(), _Counter(result):
        model(x)
    return sum(result.ops.values())
