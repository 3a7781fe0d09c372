"""Typed config: base inheritance, dotted overrides, and errors that name the file and key."""
import pytest

from fadepth.config import ConfigError, ExperimentConfig, check_key, load_config


def test_defaults_are_the_synthetic_smalldepth_recipe():
    cfg = load_config()
    assert cfg.model.name == "smalldepth" and cfg.data.dataset == "synthetic"
    assert cfg.data.frame_ids == [0, -1, 1]
    assert (cfg.model.pb_dsr, cfg.model.pb_sd) == (0.9, 0.5)


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("optim: {lr: 4.0e-4}\ntrain: {iterations: 10}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain: {batch_size: 2}\n")
    cfg = load_config(tmp_path / "child.yaml", ["model.etm.enabled=true", "loss.pyramid.flip.beta=0.3"])
    assert cfg.optim.lr == 4e-4 and cfg.train.iterations == 10 and cfg.train.batch_size == 2
    assert cfg.model.etm.enabled and cfg.loss.pyramid.flip.beta == 0.3


def test_unknown_key_names_the_section_and_known_fields():
    with pytest.raises(ConfigError, match=r"model\.etm has no field 'r3'.*r1, r2"):
        check_key("model.etm.r3")


def test_wrong_type_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {pb_dsr: lots}\n")
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*model\.pb_dsr"):
        load_config(path)


def test_missing_base_and_bad_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="field 'base'.*nowhere.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "b.yaml")


def test_circular_base_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_flat_dict_round_trip():
    flat = ExperimentConfig().to_flat_dict()
    assert flat["model.etm.pb_t"] == 0.1 and flat["loss.pyramid.color.phi"] == "l1"
    assert len(ExperimentConfig().digest()) == 64


def test_partial_nested_override_keeps_the_level_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss: {pyramid: {color: {beta: 0.3}, lr: {enabled: true}}}\n")
    cfg = load_config(path)
    assert cfg.loss.pyramid.color.beta == 0.3 and cfg.loss.pyramid.color.phi == "l1"
    assert cfg.loss.pyramid.lr.enabled and cfg.loss.pyramid.lr.scale == 0.75 and cfg.loss.pyramid.lr.beta == 1.0
