"""What makes a training step cheap on a GPU: no host reads inside it, and the option to replay it as a graph.

* :class:`NonFiniteWatch`: the non-finite-loss check on the device. Each step folds ``isfinite(loss)`` into a
  device flag that remembers the first bad iteration; the trainer reads it (one host sync) only where it reads
  anything else: at the log interval, before a checkpoint, before an evaluation.
* :func:`read_scalars`: every 0-dim device scalar of a step read in ONE transfer.
* :class:`CapturedStep` (``train.cuda_graphs``): the whole step (forward, loss, backward, optimizer) captured in
  a ``torch.cuda.CUDAGraph`` and replayed, with the batch copied into static input tensors. A loss whose
  structure changes during training (L_cr's warm-up, decision 8 in ``fadepth/losses/cr.py``) gets one capture
  per structure. Before each capture a few steps run eagerly on a side stream (PyTorch's whole-network capture
  recipe: lazy initialisation, autograd's stream bookkeeping). Random draws (drop masks, ETM branches, the
  auto-mask noise) stay random across replays: the default CUDA generator is graph-safe and re-seeded per step.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Hashable, Mapping

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before each capture


class NonFiniteWatch:
    """Device-side record of the first iteration whose loss was NaN or infinite (-1: none yet)."""

    def __init__(self, device: torch.device, iteration: int = 0):
        self.counter = torch.tensor(iteration, device=device, dtype=torch.int64)
        self.first_bad = torch.tensor(-1, device=device, dtype=torch.int64)

    def reset(self, iteration: int) -> None:
        self.counter.fill_(iteration)
        self.first_bad.fill_(-1)

    def observe(self, loss: torch.Tensor) -> None:
        """Fold this step's loss into the flag (in place: capturable, no host read)."""
        newly_bad = ~torch.isfinite(loss.detach().float()) & (self.first_bad < 0)
        self.first_bad.copy_(torch.where(newly_bad, self.counter, self.first_bad))
        self.counter.add_(1)


def read_scalars(scalars: Mapping[str, Any], watch: NonFiniteWatch | None = None) -> tuple[dict[str, float], int]:
    """Host floats of every tensor in ``scalars`` (plain numbers pass through) and the first non-finite
    iteration (-1: none), in one device-to-host transfer."""
    names = [k for k, v in scalars.items() if torch.is_tensor(v)]
    values = [scalars[k].detach().float().reshape(()) for k in names]
    if watch is not None:
        values.append(watch.first_bad.float())
    read = torch.stack(values).tolist() if values else []
    out = {k: float(v) for k, v in scalars.items() if not torch.is_tensor(v)}
    out.update(zip(names, read))
    return out, int(read[-1]) if watch is not None else -1


def _static_copy(batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}


class CapturedStep:
    """``step_fn(batch) -> dict of 0-dim tensors`` captured per structure key and replayed."""

    def __init__(self, step_fn: Callable[[dict], dict], device: torch.device):
        if device.type != "cuda":
            raise ValueError(f"train.cuda_graphs needs a CUDA device, got {device}")
        self.step_fn, self.device = step_fn, device
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, dict, dict]] = {}
        self.eager_steps: Counter = Counter()
        self.side_stream = torch.cuda.Stream(device)

    @property
    def captures(self) -> int:
        return len(self.graphs)

    def __call__(self, key: Hashable, batch: dict) -> dict:
        entry = self.graphs.get(key)
        if entry is None and self.eager_steps[key] < WARMUP_STEPS:
            self.eager_steps[key] += 1
            return self._on_side_stream(batch)
        if entry is None:
            entry = self.graphs[key] = self._capture(batch)
        graph, static_batch, static_out = entry
        for name, value in batch.items():
            if torch.is_tensor(value):
                static_batch[name].copy_(value, non_blocking=True)
        graph.replay()
        return {k: v.clone() for k, v in static_out.items()}  # the next replay overwrites the static outputs

    def _on_side_stream(self, batch: dict) -> dict:
        self.side_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side_stream):
            out = self.step_fn(batch)
        torch.cuda.current_stream(self.device).wait_stream(self.side_stream)
        return out

    def _capture(self, batch: dict):
        """Record one step on static tensors; recording runs nothing, so the caller's replay is this step."""
        static_batch = _static_copy(batch)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.step_fn(static_batch)
        return graph, static_batch, static_out
