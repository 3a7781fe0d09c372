"""Every scheme implements the paper row it claims (issue 20).

Per spec: a scheme's resolved config differs from its baseline's only in the config keys that the paper's
columns vary (VARIED below, one entry per spec), and where a column holds a number, the config holds the
paper's number. No two schemes of a profile resolve to the same config. Table IV's SmallDepth@1e-4 is Table V's
sch3, and Tables VI / IX's SmallDepth baselines are Table IV's SmallDepth@4e-4.
"""
from __future__ import annotations

import csv
from fnmatch import fnmatch
from pathlib import Path

import pytest

from fadepth.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "ablations").glob("table_*.yaml"))
LEVELS = "{lr,hr,flip,color}"
PYRAMID_LEVEL = [f"loss.pyramid.{lv}.{k}" for lv in ("lr", "hr", "flip", "color")
                 for k in ("enabled", "alpha", "beta", "gamma", "phi", "size")]

# The config keys each table's columns vary (fnmatch patterns). The paper column is named in the comment.
VARIED = {
    "table_i": ["model.name"],  # method
    # method (SmallDepth with ETM + L_py + L_apx at LR 4e-4, or HQDecv2 at 1e-4: decisions rows 25-27) and
    # resolution (the input size and the L_py levels at that size)
    "table_ii": ["model.name", "model.etm.enabled", "optim.lr", "loss.pyramid.*", "loss.apx.*",
                 "data.height", "data.width"],
    "table_iii": ["model.name", "model.etm.enabled", "optim.lr", "loss.apx.*"],  # method
    "table_iv": ["model.name", "optim.lr"],  # scheme (the DepthNet), lr
    "table_v": ["model.pb_dsr", "model.pb_sd", "model.drop_schedule"],  # pb_dsr, pb_sd, constant_rate
    # scheme (DepthNet, +ETM), etm_init_from_smalldepth (#), sup_loss (L_cr or L_py)
    "table_vi": ["model.name", "model.etm.enabled", "model.etm.init", "loss.pyramid.enabled", "loss.pyramid.mode",
                 *PYRAMID_LEVEL],
    "table_vii": ["model.etm.enabled", "model.etm.pb_t", "model.etm.r1", "model.etm.r2", "model.etm.dropconv"],
    # cr / flip / lr / hr / color checkmarks, use_cr (a6: the mean of its three levels, decisions row 29)
    "table_viii": ["loss.pyramid.enabled", "loss.pyramid.use_cr", "loss.pyramid.alpha_cr", *PYRAMID_LEVEL],
    "table_ix": ["loss.pyramid.enabled", *PYRAMID_LEVEL],  # alpha_k, beta_k, gamma_k, l1_consistency
    # per_loss_grad_sum (^), alpha_cr, i with alpha_i, beta_i, gamma_i
    "table_x": ["loss.pyramid.mode", "loss.pyramid.alpha_cr", *PYRAMID_LEVEL],
    # Sup: L_cr and / or L_apx with its terms and mask (no CSV: the text holds only the caption and prose)
    "table_xi": ["loss.cr.photometric", "loss.cr.depth_consistency", "loss.cr.feature", "loss.cr.smoothness",
                 "loss.apx.enabled", "loss.apx.lambda_*", "loss.apx.mask"],
}

# Where a paper column holds a number, the config key that must hold it ("{i}": Table X's level column).
NUMBERS = {
    "table_iv": {"lr": "optim.lr"},
    "table_v": {"pb_dsr": "model.pb_dsr", "pb_sd": "model.pb_sd"},
    "table_vi": {"lr": "optim.lr"},
    "table_vii": {"pb_t": "model.etm.pb_t", "r1": "model.etm.r1", "r2": "model.etm.r2"},
    "table_ix": {f"{w}_{lv}": f"loss.pyramid.{lv}.{'alpha' if w == 'alpha' else w}"
                 for w in ("alpha", "beta", "gamma") for lv in ("lr", "hr", "flip", "color")}
                | {"alpha_cr": "loss.pyramid.alpha_cr"},
    "table_x": {"alpha_cr": "loss.pyramid.alpha_cr", "alpha_i": "loss.pyramid.{i}.alpha",
                "beta_i": "loss.pyramid.{i}.beta", "gamma_i": "loss.pyramid.{i}.gamma"},
}


def flat(spec, scheme: str, profile: str = "paper") -> dict:
    return spec.resolve(scheme, 0, profile).to_flat_dict()


def varied_keys(spec, scheme: str, profile: str = "paper") -> set[str]:
    base, mine = flat(spec, spec.baseline, profile), flat(spec, scheme, profile)
    return {k for k in mine if mine[k] != base[k]}


def paper_row(spec, scheme: str) -> dict | None:
    """The first CSV row the scheme's ``paper`` selector matches (values compared as printed)."""
    selector = spec.scheme(scheme).paper
    if not spec.paper_table or not selector:
        return None
    with open(REPO / "reports" / "paper" / spec.paper_table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if all(str(row.get(col)) == str(val) or _same_number(row.get(col), val) for col, val in selector.items()):
            return row
    raise AssertionError(f"{spec.name}: no paper row matches {scheme!r}'s selector {selector}")


def _same_number(cell, value) -> bool:
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_schemes_differ_from_their_baseline_only_where_the_paper_row_does(path):
    spec = load_spec(path)
    allowed = VARIED[spec.name]
    for scheme in spec.scheme_names:
        keys = varied_keys(spec, scheme)
        stray = sorted(k for k in keys if not any(fnmatch(k, pattern) for pattern in allowed))
        assert not stray, f"{spec.name} {scheme}: differs from {spec.baseline} in {stray}, which the paper does not vary"
        assert keys or scheme == spec.baseline, f"{spec.name} {scheme}: the same config as the baseline"


@pytest.mark.parametrize("table", sorted(NUMBERS))
def test_schemes_hold_the_papers_numbers(table):
    spec = load_spec(REPO / "ablations" / f"{table}.yaml")
    for scheme in spec.scheme_names:
        row, cfg = paper_row(spec, scheme), flat(spec, scheme)
        for column, key in NUMBERS[table].items():
            if row is None or row.get(column) in (None, ""):
                continue  # no such column, or the paper prints '-'
            key = key.format(i=row.get("i"))
            level = key.split(".")[2] if key.count(".") == 3 else None
            if level and not cfg[f"loss.pyramid.{level}.enabled"]:
                assert float(row[column]) == 0.0, (scheme, column)  # a weight of 0 = the level is off
                continue
            assert cfg[key] == pytest.approx(float(row[column])), (table, scheme, column, key)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_two_schemes_of_a_profile_are_the_same_run(path):
    spec = load_spec(path)
    for profile in spec.profiles:
        assert spec.duplicate_schemes(profile) == [], (spec.name, profile)


def test_duplicates_are_found_and_reported_by_the_dry_run(tmp_path, capsys, monkeypatch):
    from fadepth.sweep.launcher import main

    monkeypatch.chdir(tmp_path)
    spec = load_spec(REPO / "ablations" / "table_iv.yaml")
    same_lr = spec.duplicate_schemes("smoke", {"optim.lr": 1e-4})  # --set optim.lr: one run per DepthNet
    assert ("SmallDepth@4e-4", "SmallDepth@1e-4") in same_lr and len(same_lr) == 15
    assert main([str(REPO / "ablations" / "table_iv.yaml"), "--profile", "smoke", "--dry-run",
                 "--set", "optim.lr=1e-4"]) == 0
    out = capsys.readouterr().out
    assert "duplicate scheme: 'SmallDepth@4e-4' resolves to the same config as 'SmallDepth@1e-4'" in out
    assert main([str(REPO / "ablations" / "table_ii.yaml"), "--profile", "synthetic", "--dry-run"]) == 0
    assert "duplicate schemes: none" in capsys.readouterr().out


MODEL_RECIPE = ("model.name", "model.pb_dsr", "model.pb_sd", "model.drop_schedule", "model.drop_fraction",
                "model.etm.enabled")


def model_recipe(table: str, scheme: str, profile: str) -> dict:
    cfg = flat(load_spec(REPO / "ablations" / f"{table}.yaml"), scheme, profile)
    return {k: v for k, v in cfg.items() if k.startswith("model.")}


@pytest.mark.parametrize("profile", ["paper", "synthetic", "smoke"])
def test_table_iv_smalldepth_is_table_v_sch3(profile):
    """Table IV's SmallDepth@1e-4 prints sch3's seven numbers: one model (pb_dsr 0.9, pb_sd 0.0, eq. 5)."""
    iv = model_recipe("table_iv", "SmallDepth@1e-4", profile)
    assert iv == model_recipe("table_v", "sch3", profile)
    assert (iv["model.pb_dsr"], iv["model.pb_sd"], iv["model.drop_schedule"]) == (0.9, 0.0, "cosine")
    # Tables VI / IX's baselines print Table IV's SmallDepth@4e-4 numbers: the same model again
    at_4e4 = model_recipe("table_iv", "SmallDepth@4e-4", profile)
    assert at_4e4 == iv == model_recipe("table_vi", "SmallDepth", profile)
    assert at_4e4 == model_recipe("table_ix", "w/o_L_py", profile)
    paper = load_spec(REPO / "ablations" / "table_iv.yaml").resolve("SmallDepth@1e-4", 0, "paper")
    assert paper == load_spec(REPO / "ablations" / "table_v.yaml").resolve("sch3", 0, "paper")  # the whole run


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_scheme_runs_at_a_size_its_net_accepts(path):
    """HQDecv2 needs sides divisible by 32 (its size_multiple); the L_py students take any (even) size."""
    from fadepth.models import create

    spec = load_spec(path)
    if spec.kind != "train":
        return
    multiples: dict[str, int] = {}
    for profile in spec.profiles:
        for scheme in spec.scheme_names:
            cfg = spec.resolve(scheme, 0, profile)
            name = cfg.model.name
            multiples.setdefault(name, create(name).size_multiple)
            m = multiples[name]
            assert cfg.data.height % m == 0 and cfg.data.width % m == 0, (scheme, profile, name)


@pytest.mark.parametrize("table", ["table_viii", "table_ix", "table_x"])
def test_synthetic_pyramid_levels_are_within_10_percent_of_the_scale(table):
    from fadepth.losses.pyramid import level_size

    spec = load_spec(REPO / "ablations" / f"{table}.yaml")
    for scheme in spec.scheme_names:
        cfg = spec.resolve(scheme, 0, "synthetic")
        cr = (cfg.data.height, cfg.data.width)
        for name, scale in (("lr", 0.75), ("hr", 1.25)):
            level = getattr(cfg.loss.pyramid, name)
            h, w = level_size(level, cr, 1, cfg.loss.pyramid.snap_tolerance)
            assert abs(h / (cr[0] * scale) - 1) <= 0.10 and abs(w / (cr[1] * scale) - 1) <= 0.10, (scheme, h, w)
    kitti = spec.resolve(spec.scheme_names[0], 0, "paper").loss.pyramid
    assert level_size(kitti.lr, (128, 416)) == (96, 320) and level_size(kitti.hr, (128, 416)) == (160, 512)
