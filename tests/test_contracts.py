"""Names with one owner (fadepth.contracts) and the spec fields that feed MLflow and the report:
``figures`` (validated against the figures that exist) and a profile's ``val_every``."""
from __future__ import annotations

from pathlib import Path

import pytest

from fadepth import contracts as c
from fadepth.sweep.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]


def test_figures_registry_matches_the_contract():
    from fadepth.report.figures import FIGURES

    assert tuple(FIGURES) == c.FIGURES
    assert load_spec(ROOT / "ablations/table_v.yaml").figures == ["drop_rates"]


def test_unknown_figure_is_a_spec_error(tmp_path):
    text = (ROOT / "ablations/table_v.yaml").read_text().replace("figures: [drop_rates]", "figures: [nope]")
    (tmp_path / "base").symlink_to(ROOT / "ablations/base")
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(SpecError, match="figures.0.*drop_rates"):
        load_spec(tmp_path / "t.yaml")


def test_val_every_per_profile(tmp_path):
    spec = load_spec(ROOT / "ablations/table_v.yaml")
    assert spec.resolve("sch1", 0, "paper").train.val_every == 5000  # profile field
    assert spec.resolve("sch1", 0, "smoke").train.val_every == 20  # smoke: 2 validations of 60 iterations (curves)
    assert spec.resolve("sch1", 0, "paper", {"train.val_every": 7}).train.val_every == 7  # --set wins
    text = (ROOT / "ablations/table_v.yaml").read_text().replace(
        "  paper:\n", "  longer:\n    overrides: {train.iterations: 400}\n  paper:\n")
    (tmp_path / "base").symlink_to(ROOT / "ablations/base")
    (tmp_path / "t.yaml").write_text(text)
    assert load_spec(tmp_path / "t.yaml").resolve("sch1", 0, "longer").train.val_every == 20  # 20 per run


def test_complexity_row_round_trip():
    row = c.ComplexityRow.from_counts({"params": 2.5e6, "params_enc": 2e6, "gflops": 0.4, "fps": None})
    assert row.params_m == pytest.approx(2.5) and row.params_enc_m == pytest.approx(2.0) and row.fps is None
    assert c.ComplexityRow.from_metrics(row.metrics()) == row
    assert c.run_name("sch4*", 2) == "sch4*/seed2"
    assert c.lower_is_better("abs_rel") and not c.lower_is_better("a1")
