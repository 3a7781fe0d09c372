"""--workers-per-gpu: several workers share one GPU, each pinned to it through CUDA_VISIBLE_DEVICES."""
import pytest

from fadepth.sweep.launcher import build_parser
from fadepth.sweep.packing import worker_devices


def test_each_gpu_gets_n_workers():
    assert worker_devices(["0", "1"], 2) == ["0", "0", "1", "1"]
    assert worker_devices(["3"], 1) == ["3"]
    assert worker_devices([], 4, cpu_workers=2) == [None, None]  # no GPU: the CPU worker count rules


def test_parser_takes_workers_per_gpu_and_refuses_zero(capsys):
    args = build_parser().parse_args(["spec.yaml", "--workers-per-gpu", "2"])
    assert args.workers_per_gpu == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["spec.yaml", "--workers-per-gpu", "0"])
    assert "--workers-per-gpu: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_started_workers_are_pinned(monkeypatch, tmp_path):
    import types

    from fadepth.sweep import launcher

    started, real_popen = [], launcher.subprocess.Popen

    def fake_popen(cmd, *args, env=None, **kwargs):
        if "fadepth.sweep.worker" not in cmd:
            return real_popen(cmd, *args, env=env, **kwargs)
        started.append(env["CUDA_VISIBLE_DEVICES"])

    monkeypatch.setattr(launcher.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(launcher, "resolve_gpus", lambda text: ["0", "1"])
    plan = types.SimpleNamespace(spec=types.SimpleNamespace(path="s.yaml"), profile="smoke", extra={},
                                 keep_training_state=False, schemes=["a"], seeds=[0])
    sweep = types.SimpleNamespace(plan=plan, study_name="s", storage_url="j", tracking_uri="t", experiment_id="1",
                                  parent_run_id="p", runs_dir=tmp_path, git_commit="c")
    args = build_parser().parse_args(["s.yaml", "--workers-per-gpu", "2"])
    launcher.start_workers(sweep, args)
    assert started == ["0", "0", "1", "1"]


def test_auto_packing_is_bounded_by_memory_and_by_cores():
    from fadepth.sweep.packing import GIB, choose_workers_per_gpu

    h200 = 139 * GIB
    assert choose_workers_per_gpu(int(0.5 * GIB), h200, cpu_cores=16, n_gpus=1) == 16  # cores (and the cap)
    assert choose_workers_per_gpu(int(0.5 * GIB), h200, cpu_cores=8, n_gpus=2) == 4  # cores shared by GPUs
    assert choose_workers_per_gpu(20 * GIB, h200, cpu_cores=64, n_gpus=1) == 4  # memory: 0.8 * 139 / (24 + 0.6)
    assert choose_workers_per_gpu(200 * GIB, h200, cpu_cores=64, n_gpus=1) == 1  # never below one


def test_auto_packing_is_measured_and_printed_when_not_given(monkeypatch, tmp_path, capsys):
    import types

    from fadepth.sweep import launcher, packing

    started = []
    monkeypatch.setattr(launcher.subprocess, "Popen", lambda cmd, *a, env=None, **k: started.append(env))
    monkeypatch.setattr(launcher, "resolve_gpus", lambda text: ["0"])
    monkeypatch.setattr(packing, "measure_run_peak", lambda cfg, gpu: (20 * packing.GIB, 139 * packing.GIB))
    monkeypatch.setattr(packing.os, "cpu_count", lambda: 16)
    spec = types.SimpleNamespace(path="s.yaml", resolve=lambda *a: None)
    plan = types.SimpleNamespace(spec=spec, profile="smoke", extra={}, keep_training_state=False,
                                 schemes=["sch3"], seeds=[0], cells=[types.SimpleNamespace(scheme="sch3", seed=0)])
    sweep = types.SimpleNamespace(plan=plan, study_name="s", storage_url="j", tracking_uri="t", experiment_id="1",
                                  parent_run_id="p", runs_dir=tmp_path, git_commit="c")
    launcher.start_workers(sweep, build_parser().parse_args(["s.yaml"]))
    assert len(started) == 4
    assert "workers per GPU: 4 (one sch3 run peaks at 20.00 GiB of 139 GiB" in capsys.readouterr().out
