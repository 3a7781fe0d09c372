"""Self-supervised training loop (iteration-based, as the paper counts iterations).

``train(cfg, callbacks)`` builds the depth and pose networks, the objective (L_cr, L_py and/or L_apx
from ``cfg.loss``), AdamW and a learning-rate schedule, then runs ``cfg.train.iterations`` steps on
3-frame snippets, driving the drop-rate schedules of eq. 5 from the iteration.  Every step is a pure
function of (seed, iteration, state): the data order comes from a per-epoch seeded permutation and the
random state is re-seeded from (seed, iteration) before each step, so a run resumed from a checkpoint
continues exactly as the uninterrupted run would have.  Checkpoints are written atomically.

A step reads nothing on the host (``fadepth/step_runtime.py``): its loss terms stay on the device and are read in
one transfer every ``log_every`` iterations, together with a device-side non-finite flag that names the first
bad iteration. ``train.compile`` compiles the forward pass and the objective as one graph; ``train.cuda_graphs``
captures the whole step (forward, backward, AdamW) and replays it.

The trainer knows nothing of MLflow: anything that wants numbers passes a callback implementing any of
``on_iteration(iteration)`` (every step, no numbers: e.g. a stop check), ``on_step(iteration, scalars)`` (every
``log_every`` iterations and at the last, host floats), ``on_eval(iteration, metrics)`` (validation split, every ``val_every``
iterations), ``on_test(iteration, metrics)`` (the final evaluation on the test split: never part of the
validation curve), ``on_model(iteration, depth_net)`` (after each validation and after the final evaluation,
e.g. for depth panels) and ``on_end(result)``.  A callback
whose ``on_iteration`` or ``on_step`` raises :class:`StopRequested` (a stop signal, see fadepth/sweep/worker.py) stops the run
after checkpointing the step that just finished.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from fadepth.checkpoint import (
    STATE_NAME,
    CheckpointError,
    WEIGHTS_NAME,
    config_of,
    load_checkpoint,
    remove_stale_tmp,
    save_checkpoint,
    save_weights,
)
from fadepth.config import ExperimentConfig, dump_config
from fadepth.contracts import VAL_CONSTANT
from fadepth.data.stream import EpochSampler, SeededSamples, batches, make_loader, step_seed  # noqa: F401 (API)
from fadepth.etm_training import apply_etm_drop_rates, parameter_groups
from fadepth.models import build_pose_model, initial_depth_model
from fadepth.preflight import check_cuda_graphs, check_precision
from fadepth.runlock import run_lock
from fadepth.schedules import apply_drop_rates
from fadepth.step_runtime import CapturedStep, NonFiniteWatch, read_scalars
from fadepth.utils import resolve_device, seed_everything, to_channels_last

log = logging.getLogger(__name__)

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
CHECKPOINT_NAME = STATE_NAME  # the resumable training state; the deployable weights go to WEIGHTS_NAME


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run cannot continue."""


class StopRequested(KeyboardInterrupt):
    """Raised by a callback's ``on_step`` to stop: the trainer checkpoints the finished step, then re-raises."""


@dataclass
class TrainResult:
    metrics: dict[str, float]
    checkpoint: Path  # resumable training state
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    weights: Path | None = None  # deployable weights (what eval / predict / export and MLflow take)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: ExperimentConfig):
    total = max(cfg.train.iterations, 1)
    kind = cfg.optim.scheduler
    if kind == "step":
        milestone = max(1, int(total * cfg.optim.step_fraction))
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], gamma=cfg.optim.gamma)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Tensors to `device` (non-blocking from pinned memory); 4-D images NHWC with `channels_last`."""
    def move(v: torch.Tensor) -> torch.Tensor:
        v = v.to(device, non_blocking=True)
        return v.contiguous(memory_format=torch.channels_last) if channels_last and v.dim() == 4 else v

    return {k: move(v) if torch.is_tensor(v) else v for k, v in batch.items()}


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str, cache_enabled: bool = True):
    """Mixed-precision context for the forward pass (a no-op for fp32); no weight cache under graph capture."""
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision, torch.float32),
                          enabled=precision in AUTOCAST_DTYPES, cache_enabled=cache_enabled)


def compile_module(fn):
    """torch.compile of the forward pass + objective (tests swap the backend through this hook)."""
    return torch.compile(fn)


def make_optimizer(params: list, cfg: ExperimentConfig, device: torch.device):
    """AdamW, fused (one kernel set for all parameters, no per-parameter host reads on CPU or CUDA); captured
    steps take the learning rate as a device tensor."""
    lr = torch.tensor(cfg.optim.lr, device=device) if cfg.train.cuda_graphs else cfg.optim.lr
    return torch.optim.AdamW(params, lr=lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay,
                             fused=True, capturable=cfg.train.cuda_graphs)


def _call(callbacks: Sequence[Any], hook: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)



def resumable_state(cfg: ExperimentConfig, checkpoint_path: Path, mmap: bool = False) -> dict[str, Any] | None:
    """The training state at `checkpoint_path` that `cfg` resumes (None when there is none); one clear error
    when it was written by a different configuration. `mmap`: tensors are not read (a check before training)."""
    if not checkpoint_path.is_file():
        return None
    state = load_checkpoint(checkpoint_path, mmap=mmap)
    if state["config"] != cfg.model_dump(mode="json"):
        stored = config_of(state, checkpoint_path).to_flat_dict()
        changed = sorted(k for k, v in cfg.to_flat_dict().items() if stored.get(k) != v)
        raise CheckpointError(
            f"train.out_dir: {checkpoint_path} was written by a different configuration "
            f"(differs in {', '.join(changed[:5]) or 'its config'}); use another train.out_dir or "
            "--no-resume to start over")
    return state

class Trainer:
    """Owns the networks, objective, optimiser and loop state of one run."""

    def __init__(self, cfg: ExperimentConfig, callbacks: Iterable[Any] = ()):
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.device = resolve_device(cfg.train.device)
        check_precision(cfg, self.device)  # before any model is built
        check_cuda_graphs(cfg, self.device)
        self.out_dir = Path(cfg.train.out_dir)
        seed_everything(cfg.train.seed)
        if cfg.train.deterministic and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
            # Determinism does not need every fresh tensor pre-filled with NaN (a fifth of a CPU step).
            torch.utils.deterministic.fill_uninitialized_memory = False
        self.depth_net = initial_depth_model(cfg.model).to(self.device)  # ETM# included
        self.pose_net = build_pose_model(cfg.model).to(self.device)
        if cfg.train.channels_last:
            to_channels_last(self.depth_net)
            to_channels_last(self.pose_net)

        from fadepth.losses import build_objective  # heavy imports kept out of module import

        self.objective = build_objective(cfg, self.depth_net, self.device).to(self.device)
        # forward + objective in one callable: one compiled graph when train.compile (states stay the originals')
        self.loss_fn = compile_module(self.forward_loss) if cfg.train.compile else self.forward_loss
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        params = parameter_groups((self.depth_net, self.pose_net, self.objective), cfg.optim)  # decisions row 39
        self.optimizer = make_optimizer(params, cfg, self.device)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.nonfinite = NonFiniteWatch(self.device)
        self.captured = CapturedStep(self.step_body, self.device) if cfg.train.cuda_graphs else None
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self._eval_sets: dict[str, Any] = {}  # split -> (test set, its best constant depth's abs_rel)

    # --------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def weights_path(self) -> Path:
        return self.out_dir / WEIGHTS_NAME

    def state(self) -> dict[str, Any]:
        return {
            "model": self.depth_net.state_dict(),
            "pose": self.pose_net.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "history": self.history,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "config": self.cfg.model_dump(mode="json"),
        }

    def save(self) -> Path:
        """Weights first, then the training state (each atomic); returns the training state's path.
        Refuses (NonFiniteLossError) a state that a non-finite loss reached."""
        self.check_finite()
        state = self.state()
        save_weights(self.weights_path, state)
        return save_checkpoint(self.checkpoint_path, state)

    def try_resume(self) -> bool:
        state = resumable_state(self.cfg, self.checkpoint_path)
        if state is None:
            return False
        self.depth_net.load_state_dict(state["model"])
        self.pose_net.load_state_dict(state["pose"])
        self.objective.load_state_dict(state.get("objective", {}))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        self.history = list(state.get("history", []))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        log.info("resumed %s at iteration %d", self.checkpoint_path, self.iteration)
        return True

    # ---------------------------------------------------------------------------------- loop
    def forward_loss(self, batch: dict[str, Any]):
        """The depth and pose nets on a batch and the objective on their outputs (what train.compile compiles)."""
        return self.objective(self.depth_net, self.pose_net, batch)

    def step_body(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Forward, loss, backward and optimiser on a device batch: no host reads (what cuda_graphs captures)."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, cfg.train.precision, cache_enabled=not cfg.train.cuda_graphs):
            out = self.loss_fn(batch)
        if not out.backward_done:
            self.scaler.scale(out.loss).backward()
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                           cfg.optim.grad_clip, foreach=True)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        loss = out.loss.detach() if not out.backward_done else out.terms["loss"]
        self.nonfinite.observe(loss)
        return {**out.terms, "loss": loss}

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One optimisation step; returns its scalars as 0-dim device tensors (read them with ``read_scalars``)."""
        cfg = self.cfg
        seed_everything(step_seed(cfg.train.seed, self.iteration))
        apply_drop_rates(self.depth_net, self.iteration, cfg.train.iterations, cfg.model)
        apply_etm_drop_rates(self.depth_net, self.iteration, cfg.train.iterations, cfg.model)  # decisions row 35
        self.objective.set_progress(self.iteration, cfg.train.iterations)
        self.depth_net.train()
        self.pose_net.train()
        batch = to_device(batch, self.device, channels_last=cfg.train.channels_last and self.device.type == "cuda")
        if self.captured is not None:
            scalars = self.captured(self.loss_structure(), batch)
        else:
            scalars = self.step_body(batch)
        self.scheduler.step()
        self.iteration += 1
        return scalars

    def loss_structure(self) -> tuple:
        """What decides the shape of the step's graph besides the input shapes (L_cr's warm-up)."""
        return tuple(getattr(m, "warming_up", None) for m in self.objective.modules())

    def read(self, scalars: dict[str, torch.Tensor]) -> dict[str, float]:
        """The step's scalars as host floats (one sync); raises if any loss since the start was not finite."""
        values, first_bad = read_scalars(scalars, self.nonfinite)
        if first_bad >= 0:
            raise NonFiniteLossError(f"loss is not finite at iteration {first_bad} (first such step; "
                                     f"read at iteration {self.iteration})")
        lr = self.optimizer.param_groups[0]["lr"]
        values["lr"] = float(lr)
        return values

    def check_finite(self) -> None:
        """Before a checkpoint or an evaluation: never keep or judge a state a non-finite loss reached."""
        self.read({})

    def fit(self, resume: bool = True) -> TrainResult:
        with run_lock(self.out_dir):  # one writer per train.out_dir, else one line naming the holder (issue 25)
            return self._fit(resume)

    def _fit(self, resume: bool = True) -> TrainResult:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self.out_dir)
        if resume:
            self.try_resume()
        self.nonfinite.reset(self.iteration)
        dump_config(cfg, self.out_dir / "config.yaml")  # after the resume check: it must describe the checkpoint
        t0 = time.perf_counter()
        if self.iteration < cfg.train.iterations:
            self._run_iterations()
        checkpoint = self.save()
        metrics = self.evaluate("test")
        _call(self.callbacks, "on_test", self.iteration, metrics)
        _call(self.callbacks, "on_model", self.iteration, self.depth_net)
        result = TrainResult(metrics, checkpoint, self.history, self.iteration, time.perf_counter() - t0,
                             weights=self.weights_path)
        _call(self.callbacks, "on_end", result)
        return result

    def _run_iterations(self) -> None:
        from fadepth.data import build_dataset

        cfg, total = self.cfg, self.cfg.train.iterations
        dataset = build_dataset(cfg.data, "train", augment=cfg.data.augment.enabled,
                                color_level=self.objective.needs_color_level)
        bar = _progress(total, self.iteration, enabled=cfg.train.progress)
        for batch in batches(dataset, cfg, self.iteration, self.device):
            if self.iteration >= total:
                break
            scalars = self.train_step(batch)
            bar.update(1)
            try:
                _call(self.callbacks, "on_iteration", self.iteration)
                if self.iteration % cfg.train.log_every == 0 or self.iteration == total:
                    values = self.read(scalars)  # the one host read of the interval
                    self.history.append({"iteration": self.iteration, **values})
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
                    _call(self.callbacks, "on_step", self.iteration, values)
            except StopRequested:  # the step is complete: keep it, so a resume starts right after it
                self.save()
                raise
            if cfg.train.val_every and self.iteration % cfg.train.val_every == 0 and self.iteration < total:
                metrics = self.evaluate("val")
                if cfg.train.progress:
                    bar.write(validation_line(self.iteration, metrics))
                _call(self.callbacks, "on_eval", self.iteration, metrics)
                _call(self.callbacks, "on_model", self.iteration, self.depth_net)
            if cfg.train.checkpoint_every and self.iteration % cfg.train.checkpoint_every == 0:
                self.save()
        bar.close()

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Depth metrics on `split`; the validation split's also hold VAL_CONSTANT, the level of collapse."""
        from fadepth.evaluation import evaluate_model

        self.check_finite()
        eval_cfg = self.cfg.eval if split == "test" else self.cfg.eval.model_copy(update={"split": split})
        test_set, constant = self._evaluation_set(split, eval_cfg)
        metrics = evaluate_model(self.depth_net, test_set, align=eval_cfg.align, device=self.device)
        return metrics if split == "test" else {**metrics, VAL_CONSTANT: constant}

    def _evaluation_set(self, split: str, eval_cfg) -> tuple[Any, float]:
        """The split's test set and its best constant depth's abs_rel, built once per run."""
        from fadepth.data import build_test_set
        from fadepth.evaluation import constant_depth_metrics

        if split not in self._eval_sets:
            test_set = build_test_set(self.cfg.data, eval_cfg)
            constant = constant_depth_metrics(test_set)["abs_rel"] if split != "test" else float("nan")
            self._eval_sets[split] = (test_set, constant)
        return self._eval_sets[split]


def validation_line(iteration: int, metrics: dict[str, float]) -> str:
    """One terminal line per validation: abs_rel against the best constant depth (a collapsed net sits at 1.0x)."""
    constant = metrics[VAL_CONSTANT]
    return (f"val @ {iteration}: abs_rel {metrics['abs_rel']:.3f} = {metrics['abs_rel'] / constant:.2f}x the best "
            f"constant depth ({constant:.3f}); a1 {metrics['a1']:.3f}")


def _progress(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="it", disable=not enabled, dynamic_ncols=True)


def train(cfg: ExperimentConfig, callbacks: Iterable[Any] = (), resume: bool = True) -> TrainResult:
    """Train (or resume) one run described by `cfg`; returns final test metrics and the checkpoint."""
    from fadepth.preflight import check_config

    check_config(cfg)  # registry, model options, device: before any model is built
    return Trainer(cfg, callbacks).fit(resume=resume)
