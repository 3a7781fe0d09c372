"""Drop-rate schedule (eq. 5) and the drop function F_d (eq. 4)."""
from __future__ import annotations

import pytest
import torch

from fadepth.config import ModelConfig
from fadepth.models import create
from fadepth.models.blocks import DropFunction
from fadepth.schedules import apply_drop_rates, drop_rate


def test_cosine_hump_start_peak_end():
    total, peak = 1000, 0.9
    assert drop_rate(0, total, peak) == 0.0
    assert drop_rate(250, total, peak) == pytest.approx(0.45)
    assert drop_rate(500, total, peak) == pytest.approx(peak)  # M = floor(N * 0.5)
    assert drop_rate(750, total, peak) == pytest.approx(0.45)
    assert drop_rate(999, total, peak) < 1e-4
    assert drop_rate(1000, total, peak) == 0.0


def test_cosine_is_continuous_at_the_turn():
    total, fraction = 997, 0.3
    turn = int(total * fraction)
    assert drop_rate(turn - 1, total, 0.5, fraction) == pytest.approx(drop_rate(turn, total, 0.5, fraction), abs=1e-3)


def test_constant_mode_and_bad_mode():
    assert drop_rate(0, 10, 0.9, mode="constant") == 0.9
    with pytest.raises(ValueError, match="cosine"):
        drop_rate(0, 10, 0.9, mode="linear")


def test_apply_drop_rates_by_kind():
    model = create("smalldepth")
    rates = apply_drop_rates(model, 500, 1000, ModelConfig(pb_dsr=0.9, pb_sd=0.5))
    assert rates == pytest.approx({"dsr": 0.9, "sd": 0.5})
    drops = [m for m in model.modules() if isinstance(m, DropFunction)]
    assert {m.kind for m in drops} == {"dsr", "sd"}
    assert len(drops) == 2 * 6 + 4
    for m in drops:
        assert m.rate == pytest.approx(rates[m.kind])


def test_drop_function_identity_in_eval_and_at_zero():
    x = torch.randn(8, 3, 4, 4)
    drop = DropFunction("dsr", rate=0.5).eval()
    assert drop(x) is x
    drop.train()
    drop.rate = 0.0
    assert torch.equal(drop(x), x)  # the mask is drawn (no host branch on the rate) and is exactly 1


def test_drop_rates_are_device_tensors_shared_per_kind():
    """One keep-probability tensor per kind, written in place: a compiled or captured step sees new rates."""
    model = create("smalldepth")
    apply_drop_rates(model, 10, 100, ModelConfig(pb_dsr=0.9, pb_sd=0.5))
    drops = [m for m in model.modules() if isinstance(m, DropFunction)]
    shared = {m.kind: m.keep_prob for m in drops}
    assert all(m.keep_prob is shared[m.kind] for m in drops)
    before = {k: v.data_ptr() for k, v in shared.items()}
    rates = apply_drop_rates(model, 50, 100, ModelConfig(pb_dsr=0.9, pb_sd=0.5))
    assert {k: v.data_ptr() for k, v in shared.items()} == before
    assert shared["dsr"].item() == pytest.approx(1 - rates["dsr"])


def test_drop_function_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    drop = DropFunction("sd", rate=0.75).train()
    out = drop(torch.ones(256, 2, 3, 3))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 4.0}
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample
    assert 0.1 < (per_sample[:, 0] > 0).float().mean() < 0.4


def test_drop_function_rejects_unknown_kind():
    with pytest.raises(ValueError, match="dsr"):
        DropFunction("block")


def test_printed_mode_resets_at_m_and_ramps_again():
    """Eq. 5 as typeset (i, not i - M, in the second branch): same rise, pb = 0 at M = N/2, back to pb_max at N."""
    total, peak = 1000, 0.9
    for i in (0, 100, 250, 499):
        assert drop_rate(i, total, peak, mode="printed") == pytest.approx(drop_rate(i, total, peak))
    assert drop_rate(500, total, peak, mode="printed") == pytest.approx(0.0, abs=1e-12)
    assert drop_rate(750, total, peak, mode="printed") == pytest.approx(0.45)
    assert drop_rate(999, total, peak, mode="printed") == pytest.approx(peak, abs=1e-4)
    assert drop_rate(1000, total, peak, mode="printed") == 0.0


def test_printed_mode_is_a_config_value():
    rates = apply_drop_rates(create("smalldepth"), 500, 1000, ModelConfig(drop_schedule="printed"))
    assert rates == pytest.approx({"dsr": 0.0, "sd": 0.0}, abs=1e-12)
