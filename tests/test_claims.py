"""Claims as data (issue 22): ``claims:`` entries validated at spec load (one line naming the file and the
entry), the paper's Δ read from the paper CSV, at least 12 claims over Tables IV-X; and the statistics that judge
them (fadepth.report.stats), pinned against scipy and against hand-computed numbers.
"""
from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from fadepth.report import claims as cl
from fadepth.report import stats
from fadepth.sweep.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"


def spec_with(tmp_path: Path, claims: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: claims_test
        base: {SMOKE_BASE}
        paper_table: table08_pyramid_levels.csv
        profiles: {{smoke: {{}}, paper: {{}}}}
        metrics: {{primary: abs_rel, columns: [abs_rel, a1]}}
        schemes:
          - {{name: a, paper: {{scheme: a1}}}}
          - {{name: b, paper: {{scheme: a2}}}}
          - {{name: c}}
        """) + claims)
    return path


def test_every_table_iv_to_x_declares_claims_with_the_paper_delta_from_the_csv():
    total = 0
    for name in ("iv", "v", "vi", "vii", "viii", "ix", "x"):
        spec = load_spec(REPO / "ablations" / f"table_{name}.yaml")
        assert spec.claims, name
        total += len(spec.claims)
    assert total >= 12
    viii = load_spec(REPO / "ablations" / "table_viii.yaml")
    flip = next(c for c in viii.claims if (c.scheme, c.reference) == ("a2", "a1"))
    assert flip.paper_delta == pytest.approx(0.1458 - 0.1548) and flip.kind == "delta"
    iv = load_spec(REPO / "ablations" / "table_iv.yaml")
    assert {c.kind for c in iv.claims} == {"delta", "collapse"}


def test_claims_do_not_change_the_spec_hash(tmp_path):
    plain = load_spec(spec_with(tmp_path, "")).spec_hash
    claimed = load_spec(spec_with(tmp_path, "claims:\n  - {scheme: b, reference: a}\n"))
    assert claimed.spec_hash == plain and claimed.claims[0].paper_delta == pytest.approx(-0.009)


@pytest.mark.parametrize("entry, says", [
    ("{scheme: x, reference: a}", "claims[0] (x vs a): scheme 'x' is not a scheme"),
    ("{scheme: b, reference: a, kind: trend}", "claims[0]: key 'kind': Input should be 'delta' or 'collapse'"),
    ("{scheme: b, reference: a, paper_delta: -0.009}", "claims[0]: key 'paper_delta' is read from the paper CSV"),
    ("{scheme: b, reference: a, metric: rmse}", "metric 'rmse' is not one of the spec's metrics.columns"),
    ("{scheme: c, reference: a}", "scheme 'c' has no 'paper:' mapping"),
    ("{scheme: b, reference: b}", "scheme and reference are the same scheme"),
    ("{scheme: b, reference: a, colour: red}", "claims[0]: key 'colour': unknown key"),
    ("b minus a", "claims[0]: expected a mapping"),
])
def test_a_bad_claim_is_one_line_naming_the_file_and_the_entry(tmp_path, entry, says):
    path = spec_with(tmp_path, f"claims:\n  - {entry}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and says in message, message


def test_t_and_sign_flip_agree_with_scipy():
    d = [-0.05, -0.061, -0.046, -0.052, -0.058, -0.049, -0.03]
    assert stats.t_pvalue(d) == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    ci = sps.ttest_1samp(d, 0).confidence_interval(0.95)
    est = stats.mean_ci(d)
    assert (est.low, est.high) == pytest.approx((ci.low, ci.high))
    # Exact sign-flip p by enumeration: every sign vector, |mean| at least the observed one.
    flips = np.array(list(itertools.product([-1, 1], repeat=len(d)))) * np.abs(d)
    p_enum = np.mean(np.abs(flips.mean(axis=1)) >= abs(np.mean(d)) - 1e-15)
    assert stats.sign_flip_p(d) == pytest.approx(p_enum) == pytest.approx(2 / 2 ** len(d))
    assert stats.sign_flip_p(d) == pytest.approx(sps.permutation_test(
        (np.asarray(d),), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue)
    low, high = stats.sign_flip_interval(d)
    assert low < np.mean(d) < high and high < 0  # excludes 0 with 7 seeds
    assert stats.sign_flip_p(d, low - 1e-6) <= 0.05 < stats.sign_flip_p(d, low + 1e-6)
    assert stats.sign_flip_interval(d[:5]) == (-math.inf, math.inf)  # 2/2^5 > 0.05: no shift can be rejected


def test_collapse_rate_and_exact_test_agree_with_scipy():
    rate = stats.collapse_rate(3, 8)
    ci = sps.binomtest(3, 8).proportion_ci(method="exact")
    assert (rate.rate, rate.low, rate.high) == pytest.approx((3 / 8, ci.low, ci.high))
    p = stats.collapse_test(stats.collapse_rate(4, 8), stats.collapse_rate(0, 8))
    assert p == pytest.approx(sps.boschloo_exact([[4, 4], [0, 8]]).pvalue)
    assert p < sps.fisher_exact([[4, 4], [0, 8]]).pvalue  # Boschloo is the more powerful exact test
    assert stats.collapse_test(stats.collapse_rate(0, 3), stats.collapse_rate(0, 3)) == 1.0
    assert stats.collapsed(0.73, 0.737, True) and not stats.collapsed(0.70, 0.737, True)
    assert stats.collapsed(0.27, 0.269, False) and not stats.collapsed(0.5, 0.269, False)


def test_holm_and_planned_looks():
    assert stats.holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]  # 0.01 <= .05/3; 0.03 > .05/2
    assert stats.holm([0.01, 0.02, 0.04], 0.05) == [True, True, True]
    assert stats.holm([math.nan, 0.04], 0.05) == [False, True]
    assert stats.planned_looks(3, 16) == [3, 6, 12, 16] and stats.planned_looks(3, 3) == [3]


def test_verdict_rule_picks_the_test_that_fits_the_outcomes():
    constant = 0.737
    ref = {0: 0.37, 1: 0.36, 2: 0.34, 3: 0.35, 4: 0.36, 5: 0.37, 6: 0.35}
    worse = {s: v + 0.03 + 0.002 * s for s, v in ref.items()}
    bimodal = {s: (constant if s % 2 else v + 0.04) for s, v in ref.items()}
    judged = stats.judge_claims([
        stats.ClaimData("delta", 0.048, worse, ref, constant),          # unimodal: t decides
        stats.ClaimData("delta", 0.048, bimodal, ref, constant),        # collapsed runs: sign-flip decides
        stats.ClaimData("collapse", 0.048, bimodal, ref, constant),     # Boschloo on 3/7 vs 0/7
        stats.ClaimData("delta", -0.048, worse, ref, constant),         # the other sign: contradicted
        stats.ClaimData("delta", 0.048, {0: 0.4}, {0: 0.3}, constant),  # one seed: no interval
    ])
    assert [j.test for j in judged] == ["t", "sign-flip", "Boschloo", "t", ""]
    assert judged[1].p == pytest.approx(2 / 2 ** 7)
    assert judged[2].p == pytest.approx(sps.boschloo_exact([[3, 4], [0, 7]]).pvalue)
    assert [j.verdict for j in judged] == [stats.REPRODUCED, stats.REPRODUCED, stats.UNRESOLVED,
                                           stats.CONTRADICTED, stats.NO_INTERVAL]
    # Four looks planned: each at alpha / 4, so the sign-flip test of 7 seeds (p = 1/64) no longer resolves.
    assert stats.judge_claims([stats.ClaimData("delta", 0.048, bimodal, ref, constant)], looks=4)[0].verdict \
        == stats.UNRESOLVED


def test_claims_markdown_has_both_intervals_and_the_collapse_counts():
    from types import SimpleNamespace

    import pandas as pd

    spec = load_spec(REPO / "ablations" / "table_viii.yaml")
    values = pd.DataFrame(
        [(s, seed, v) for s, vals in {"a1": [0.296, 0.293, 0.281], "a2": [0.244, 0.241, 0.224]}.items()
         for seed, v in enumerate(vals)], columns=["scheme", "seed", "abs_rel"]).set_index(["scheme", "seed"])
    summary = SimpleNamespace(seeds_of=lambda s, m: values.loc[s, m].to_dict() if s in values.index.get_level_values(0)
                              else {})
    frame = cl.claims_frame(spec, summary, "synthetic", constants={c.scheme: 0.737 for c in spec.claims})
    text = cl.to_markdown(frame)
    assert "t-interval" in text and "sign-flip interval" in text and "0/3 [0.00, 0.71]" in text
    flip = frame[frame["claim"].str.startswith("a2 − a1")].iloc[0]
    assert flip["verdict"] == stats.REPRODUCED and flip["test"] == "t" and flip["n"] == 3
    assert cl.claims_line(frame) == "claims reproduced=1 contradicted=0 unresolved=2"
