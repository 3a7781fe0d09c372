"""The training step stays GPU-shaped (issue 21): exact counts, no timing (benchmarks/bench_overhead.py prints them).

The `synthetic` profile's step (SmallDepth + L_cr, every term on): no host sync anywhere in it (fused AdamW
included), at most 2,500 aten ops outside the optimizer (7,539 before the batched L_cr), and its forward +
objective is one graph for torch.compile.
"""
import pytest
import torch

from fadepth.config import load_config
from fadepth.opcount import count_step

STEP_OPS_CEILING = 2_500


def step_of(out_dir, overrides=(), color_level=False):
    """A trainer of the `synthetic` profile (every L_cr term on) and one batch, after one warm-up step."""
    from torch.utils.data import default_collate

    from fadepth.data import build_dataset
    from fadepth.train import SeededSamples, Trainer

    cfg = load_config("ablations/base/synthetic.yaml", overrides=[
        "loss.cr.warmup_fraction=0", "train.device=cpu", f"train.out_dir={out_dir}", *overrides])
    trainer = Trainer(cfg)
    data = SeededSamples(build_dataset(cfg.data, "train", augment=True, color_level=color_level))
    batch = default_collate([data[(i, i)] for i in range(cfg.train.batch_size)])
    trainer.train_step(batch)
    return trainer, batch


@pytest.fixture(scope="module")
def synthetic_step(tmp_path_factory):
    return step_of(tmp_path_factory.mktemp("step"))


@pytest.mark.parametrize("from_data", [True, False])
def test_the_pyramid_colour_level_draws_nothing_in_the_step_when_the_data_do(tmp_path, from_data):
    """The colour level's ColorJitter reads host random numbers (torchvision's get_params): drawn inside the step
    they are host reads a captured CUDA graph would freeze; drawn by the data pipeline (``images_color``, what
    `fadepth train` streams) the step reads nothing, and train.cuda_graphs accepts the recipe."""
    from fadepth.preflight import check_cuda_graphs

    colour = ["loss.pyramid.enabled=true", "loss.pyramid.color.enabled=true", "train.batch_size=2"]
    trainer, batch = step_of(tmp_path, colour, color_level=from_data)
    assert trainer.objective.needs_color_level and ("images_color" in batch) == from_data
    counts = count_step(trainer, batch)
    host_reads = sum(counts.syncs.values())
    assert (host_reads == 0 and counts.by_name["lift_fresh"] == 0) if from_data else host_reads > 0
    check_cuda_graphs(trainer.cfg.model_copy(update={"train": trainer.cfg.train.model_copy(
        update={"cuda_graphs": True})}), torch.device("cuda"))  # no refusal: only the device is CUDA's


def test_the_step_reads_nothing_on_the_host(synthetic_step):
    counts = count_step(*synthetic_step)
    assert sum(counts.syncs.values()) == 0, dict(counts.syncs)


def test_the_step_creates_no_tensor_from_host_data(synthetic_step):
    """A tensor built from Python data inside the step (torch.tensor, indexing with a list) is a host-to-device
    copy on a GPU, which CUDA-graph capture refuses (seen on an H200: rigid_matrix's constant row, a list index)."""
    counts = count_step(*synthetic_step)
    assert counts.by_name["lift_fresh"] == 0


def test_the_step_stays_under_its_op_ceiling(synthetic_step):
    counts = count_step(*synthetic_step)
    assert counts.ops["forward"] > 500 and counts.ops["backward"] > 500  # the phases are all counted
    assert counts.outside_optimizer(counts.ops) <= STEP_OPS_CEILING, dict(counts.ops)
    assert counts.ops["optimizer"] <= 10  # fused AdamW: a handful of ops for every parameter


def test_forward_and_objective_compile_without_graph_breaks(synthetic_step):
    import torch._dynamo as dynamo

    from fadepth.train import to_device

    trainer, batch = synthetic_step
    dynamo.reset()
    try:
        explained = dynamo.explain(trainer.forward_loss)(to_device(batch, trainer.device))
    finally:
        dynamo.reset()
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]


def test_a_non_finite_loss_names_its_first_iteration_at_the_next_read(tmp_path):
    """No host read per step: the device-side flag remembers the first bad iteration until the log interval."""
    from fadepth.train import NonFiniteLossError, train

    from test_train import tiny_cfg

    cfg = tiny_cfg(tmp_path, iterations=4, extra=["train.log_every=4", "optim.lr=1e30"])
    with pytest.raises(NonFiniteLossError, match=r"not finite at iteration [0-3]\b"):
        train(cfg)
    assert not (tmp_path / "checkpoint.pt").exists()  # a state a NaN reached is never saved


def test_step_scalars_stay_on_the_device(synthetic_step):
    trainer, batch = synthetic_step
    scalars = trainer.train_step(batch)
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in scalars.values())
    values = trainer.read(scalars)
    assert set(values) >= {"loss", "cr/photometric", "lr"} and all(isinstance(v, float) for v in values.values())
