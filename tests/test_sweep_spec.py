"""Sweep specs: validation errors name file, scheme, key and expectation, before any store is written."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fadepth.sweep.launcher import main
from fadepth.sweep.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"
SPECS = sorted((REPO / "ablations").glob("table_*.yaml"))

GOOD = f"""
name: tiny
title: tiny test spec
base: {SMOKE_BASE}
baseline: a
seeds: [0, 1]
profiles:
  smoke:
    overrides: {{data.height: 32, data.width: 96, train.iterations: 2}}
  paper: {{}}
schemes:
  - name: a
    overrides: {{model.pb_dsr: 0.1}}
    paper: {{scheme: sch2, pb_dsr: 0.1}}
  - name: b
    overrides: {{model.pb_dsr: 0.5, loss.pyramid.color.beta: 0.3}}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refused(tmp_path: Path, spec: Path, *fragments: str, capsys) -> None:
    """The CLI exits 2 with every fragment in the message, and wrote no store."""
    runs = tmp_path / "runs"
    assert main([str(spec), "--profile", "smoke", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert not runs.exists()


def test_good_spec_loads_and_resolves(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert [s.name for s in spec.schemes] == ["a", "b"]
    assert spec.schemes[0].paper == {"scheme": "sch2", "pb_dsr": 0.1}
    assert len(spec.spec_hash) == 12
    cfg = spec.resolve("b", 1, "smoke")
    assert (cfg.model.pb_dsr, cfg.train.seed, cfg.data.height, cfg.train.iterations) == (0.5, 1, 32, 2)
    # a partial override keeps the level's own defaults (color: phi=l1, alpha=1.0)
    assert (cfg.loss.pyramid.color.beta, cfg.loss.pyramid.color.phi) == (0.3, "l1")
    assert spec.resolve("a", 0, "paper").data.height == 64  # smoke.yaml is this spec's base


def test_editing_a_spec_changes_its_hash(tmp_path):
    first = load_spec(write(tmp_path, GOOD)).spec_hash
    assert load_spec(write(tmp_path, GOOD)).spec_hash == first
    edited = load_spec(write(tmp_path, GOOD.replace("model.pb_dsr: 0.5", "model.pb_dsr: 0.6"))).spec_hash
    assert edited != first


def test_a_changed_code_default_changes_the_hash(tmp_path, monkeypatch):
    """Upgrading fadepth to new defaults (e.g. a loss weight) must not resume the old study."""
    import fadepth.sweep.spec as spec_module

    first = load_spec(write(tmp_path, GOOD)).spec_hash
    real = spec_module.default_tree
    monkeypatch.setattr(spec_module, "default_tree", lambda: {**real(), "loss": {"changed": True}})
    assert load_spec(write(tmp_path, GOOD)).spec_hash != first


def test_earlier_studies_of_an_edited_spec_are_found(tmp_path, capsys):
    """After an edit (a description is enough) the same command is a new study: the launcher names the old one."""
    import optuna

    from fadepth.sweep import study as st

    old = load_spec(write(tmp_path, GOOD))
    new = load_spec(write(tmp_path, GOOD.replace("title: tiny test spec", "title: tiny test spec, edited")))
    assert new.spec_hash != old.spec_hash
    storage = st.open_storage(str(tmp_path / "optuna.journal"))
    for spec, profile, extra in ((old, "smoke", None), (old, "paper", None), (old, "smoke", {"a": 1}), (new, "smoke", None)):
        study = st.create_study(spec, st.study_name(spec, profile, extra), storage)
        study.add_trial(optuna.trial.create_trial(value=0.5))
    optuna.create_study(study_name="tiny-notahash-smoke", storage=storage)
    assert st.earlier_studies(storage, new, "smoke") == {st.study_name(old, "smoke"): 1}
    assert st.earlier_studies(storage, new, "smoke", {"a": 1}) == {st.study_name(old, "smoke", {"a": 1}): 1}
    assert st.earlier_studies(storage, old, "paper") == {}
    from types import SimpleNamespace

    from fadepth.sweep.session import Sweep

    sweep = SimpleNamespace(storage=storage, plan=SimpleNamespace(spec=new, profile="smoke", extra=None),
                            study_name=st.study_name(new, "smoke"))
    Sweep._note_earlier_studies(sweep)
    err = capsys.readouterr().err
    assert f"spec.yaml changed since {st.study_name(old, 'smoke')} (1 finished)" in err and "re-runs every cell" in err


def test_unknown_key_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("model.pb_dsr: 0.5", "model.pb_dsrr: 0.5"))
    with pytest.raises(SpecError, match="scheme 'b'"):
        load_spec(spec)
    refused(tmp_path, spec, str(spec), "scheme 'b'", "model.pb_dsrr", "pb_dsr", capsys=capsys)


def test_wrong_type_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("model.pb_dsr: 0.1", "model.pb_dsr: high"))
    refused(tmp_path, spec, str(spec), "scheme 'a'", "model.pb_dsr", "valid number", "'high'", capsys=capsys)


def test_out_of_range_value_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("model.pb_dsr: 0.1", "model.pb_dsr: 1.5"))
    refused(tmp_path, spec, "scheme 'a'", "model.pb_dsr", "less than 1", capsys=capsys)


def test_empty_schemes_are_refused(tmp_path, capsys):
    text = GOOD.split("schemes:")[0].replace("baseline: a\n", "") + "schemes: []\n"
    refused(tmp_path, write(tmp_path, text), "schemes", "at least 1 item", capsys=capsys)


def test_unknown_base_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace(str(SMOKE_BASE), "base/nope.yaml"))
    refused(tmp_path, spec, str(spec), "base", "nope.yaml", "not found", capsys=capsys)


def test_duplicate_scheme_names_are_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("- name: b", "- name: a"))
    refused(tmp_path, spec, "duplicate scheme name", "a", capsys=capsys)


def test_bad_yaml_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD + "  - name: [unclosed\n")
    refused(tmp_path, spec, str(spec), "not valid YAML", capsys=capsys)


def test_duplicate_yaml_key_is_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: [0, 1]\nseeds: [2]"))
    refused(tmp_path, spec, "duplicate key 'seeds'", capsys=capsys)


def test_unknown_spec_field_and_unknown_baseline_are_refused(tmp_path, capsys):
    refused(tmp_path, write(tmp_path, GOOD + "colour: red\n"), "colour", "unknown field", capsys=capsys)
    refused(tmp_path, write(tmp_path, GOOD.replace("baseline: a", "baseline: zz")), "baseline 'zz'",
            capsys=capsys)


def test_bad_cli_overrides_are_refused(tmp_path, capsys):
    spec = write(tmp_path, GOOD)
    runs = tmp_path / "runs"
    assert main([str(spec), "--profile", "smoke", "--runs-dir", str(runs), "--only", "a,zz"]) == 2
    assert "unknown scheme(s) zz" in capsys.readouterr().err
    assert main([str(spec), "--profile", "smoke", "--runs-dir", str(runs), "--set", "train.iterations=-1"]) == 2
    assert "train.iterations" in capsys.readouterr().err
    assert main([str(spec), "--profile", "nope", "--runs-dir", str(runs)]) == 2
    assert "no profile 'nope'" in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_every_table_spec_dry_runs(spec, profile, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The paper profile reads KITTI / DDAD and teacher checkpoints, absent here: check everything else.
    no_data = ["--no-data-check"] if profile == "paper" else []
    assert main([str(spec), "--profile", profile, "--dry-run", *no_data]) == 0
    out = capsys.readouterr().out
    loaded = load_spec(spec)
    for scheme in loaded.scheme_names:
        assert f"\n{scheme} " in out
    assert not (tmp_path / "runs").exists()
    if loaded.paper_table:
        assert (REPO / "reports" / "paper" / loaded.paper_table).is_file()


def test_table_specs_cover_the_paper_rows():
    counts = {"table_i": 5, "table_iv": 18, "table_v": 8, "table_vi": 6, "table_vii": 17, "table_viii": 7,
              "table_ix": 7, "table_x": 40, "table_xi": 10, "table_ii": 4, "table_iii": 2}
    for name, n in counts.items():
        spec = load_spec(REPO / "ablations" / f"{name}.yaml")
        assert spec.name == name and len(spec.schemes) == n, name
    v = load_spec(REPO / "ablations" / "table_v.yaml")
    assert v.scheme("sch2a").paper == {"scheme": "sch2", "pb_dsr": 0.1}
    assert v.scheme("sch2b").paper == {"scheme": "sch2", "pb_dsr": 0.5}
    assert v.resolve("sch4*", 0, "paper").model.drop_schedule == "constant"
    x = load_spec(REPO / "ablations" / "table_x.yaml")
    assert x.resolve("a3_2_5_hat", 0, "paper").loss.pyramid.mode == "per_level"
    assert x.resolve("a3", 0, "paper").loss.pyramid.lr.alpha == 0.5


def test_search_block_is_validated(tmp_path):
    search = "search:\n  n_trials: 4\n  sampler: tpe\n  pruner: median\n  space:\n"
    good = GOOD + search + "    optim.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"
    spec = load_spec(write(tmp_path, good))
    assert spec.search.n_trials == 4 and spec.search.space["optim.lr"].log
    with pytest.raises(SpecError, match="search space: unknown key 'optim.lrr'"):
        load_spec(write(tmp_path, GOOD + search + "    optim.lrr: {type: float, low: 0.1, high: 0.2}\n"))
    with pytest.raises(SpecError, match="low' < 'high"):
        load_spec(write(tmp_path, GOOD + search + "    optim.lr: {type: float, low: 0.2, high: 0.1}\n"))


SATURATION, SHORT = 100_000, 50_000  # docs/decisions.md: saturation runs; Sec. IV-D: Tables VII, VIII, X


@pytest.mark.parametrize("table,iterations,lrs", [
    ("table_ii", SATURATION, {"SmallDepth@128x416": 4e-4, "HQDecv2@192x640": 1e-4}),
    ("table_iii", SATURATION, {"SmallDepth": 4e-4, "HQDecv2": 1e-4}),
    ("table_iv", SATURATION, {"SmallDepth@4e-4": 4e-4, "RN18@1e-3": 1e-3}),
    ("table_v", SATURATION, {"sch3": 1e-4}),
    ("table_vi", SATURATION, {"SmallDepth": 4e-4}),
    ("table_vii", SHORT, {"SmallDepth": 1e-4}),
    ("table_viii", SHORT, {"a1": 1e-4}),
    ("table_ix", SATURATION, {"lr": 4e-4}),
    ("table_x", SHORT, {"a3": 1e-4}),
    ("table_xi", SATURATION, {"L_cr": 4e-4}),
])
def test_paper_profiles_follow_the_papers_iterations_and_lr(table, iterations, lrs):
    spec = load_spec(REPO / "ablations" / f"{table}.yaml")
    for scheme in spec.scheme_names:
        cfg = spec.resolve(scheme, 0, "paper")
        assert cfg.train.iterations == iterations and cfg.train.val_every > 0, scheme
        if table != "table_iii":
            assert (cfg.data.dataset, cfg.data.split) == ("kitti", "eigen_zhou"), scheme
    for scheme, lr in lrs.items():
        assert spec.resolve(scheme, 0, "paper").optim.lr == pytest.approx(lr), scheme
        assert spec.resolve(scheme, 0, "smoke").train.iterations < 1000


def test_final_recipes_use_per_level_pyramid_and_etm():
    ii = load_spec(REPO / "ablations" / "table_ii.yaml")
    for scheme in ("SmallDepth@128x416", "SmallDepth@192x640"):
        cfg = ii.resolve(scheme, 0, "paper")
        assert cfg.model.etm.enabled and cfg.loss.pyramid.enabled and cfg.loss.pyramid.mode == "per_level"
        assert cfg.loss.apx.enabled and (cfg.loss.apx.teacher_height, cfg.loss.apx.teacher_width) == (192, 640)
    assert not ii.resolve("HQDecv2@128x416", 0, "paper").model.etm.enabled  # Sec. IV-B: no ETM / L_py in HQDecv2
    assert load_spec(REPO / "ablations" / "table_iii.yaml").resolve("SmallDepth", 0, "paper").model.etm.enabled
    vi = load_spec(REPO / "ablations" / "table_vi.yaml").resolve("SmallDepth+ETM+L_py", 0, "paper")
    assert vi.loss.pyramid.mode == "per_level" and vi.model.etm.enabled
    ix = load_spec(REPO / "ablations" / "table_ix.yaml")
    assert all(ix.resolve(s, 0, "paper").loss.pyramid.mode == "per_level" for s in ix.scheme_names)
    assert not any(ix.resolve(s, 0, "paper").model.etm.enabled for s in ix.scheme_names)  # = Table VI's SmallDepth


def test_table_xi_teacher_at_128x416_and_apx_alone_rows():
    xi = load_spec(REPO / "ablations" / "table_xi.yaml")
    for scheme in xi.scheme_names:
        cfg = xi.resolve(scheme, 0, "paper")
        assert cfg.model.etm.enabled, scheme  # caption: "SmallDepth with ETM"
        assert (cfg.loss.apx.teacher_height, cfg.loss.apx.teacher_width) == (128, 416), scheme
        assert cfg.loss.apx.teacher_checkpoint.endswith("hqdecv2_kitti_128x416.pt")
    alone = [s for s in xi.scheme_names if s.startswith("L_apx")]
    assert len(alone) == 3
    for scheme in alone:  # L_apx alone: every L_cr weight is 0
        cr = xi.resolve(scheme, 0, "paper").loss.cr
        assert (cr.photometric, cr.depth_consistency, cr.feature, cr.smoothness) == (0, 0, 0, 0)
    assert xi.resolve("L_cr+L_apx:disp", 0, "paper").loss.cr.photometric == 1.0


def test_table_viii_a6_is_the_mean_of_three_levels():
    a6 = load_spec(REPO / "ablations" / "table_viii.yaml").resolve("a6", 0, "paper").loss.pyramid
    assert a6.alpha_cr == a6.lr.alpha == a6.hr.alpha == pytest.approx(1 / 3)


@pytest.mark.parametrize("table", ["table_ii", "table_ix", "table_vi", "table_xi"])
def test_dry_run_shows_the_recipe(table, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([str(REPO / "ablations" / f"{table}.yaml"), "--profile", "paper", "--dry-run", "--seeds", "0",
                 "--no-data-check"]) == 0  # no KITTI here
    header = capsys.readouterr().out.splitlines()[2].split()
    for key in ("train.iterations", "optim.lr", "train.val_every", "model.etm.enabled", "loss.pyramid.mode",
                "data.split"):
        assert key in header, key


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_apx_teachers_run_at_sizes_they_accept(spec):
    """HQDecv2 needs H and W divisible by 32: the smoke profiles' 64x208 students get a 64x224 teacher."""
    loaded = load_spec(spec)
    for profile in loaded.profiles:
        for scheme in loaded.scheme_names:
            cfg = loaded.resolve(scheme, 0, profile)
            if cfg.loss.apx.enabled:
                h = cfg.loss.apx.teacher_height or cfg.data.height
                w = cfg.loss.apx.teacher_width or cfg.data.width
                assert h % 32 == 0 and w % 32 == 0, (scheme, profile, h, w)


def test_profile_scheme_overrides_apply_last_and_are_validated(tmp_path):
    text = GOOD.replace("  paper: {}", "  paper: {}\n  wide:\n    overrides: {data.width: 96}\n"
                                       "    scheme_overrides: {b: {data.width: 128}}")
    spec = load_spec(write(tmp_path, text))
    assert (spec.resolve("a", 0, "wide").data.width, spec.resolve("b", 0, "wide").data.width) == (96, 128)
    assert "data.width" in spec.dry_run_keys(["a", "b"], "wide")
    with pytest.raises(SpecError, match="scheme_overrides: 'zz' is not a scheme"):
        load_spec(write(tmp_path, text.replace("{b: {data.width", "{zz: {data.width")))
    with pytest.raises(SpecError, match="unknown key 'data.widht'"):
        load_spec(write(tmp_path, text.replace("{b: {data.width", "{b: {data.widht")))
