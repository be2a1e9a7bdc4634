"""Trainer config: presets, YAML section, CLI precedence, checks."""
from pathlib import Path

import pytest

from mmdata.errors import ConfigError
from mmdata.train.checkpoint import resumed_config
from mmdata.train.config import PRESETS, TrainConfig, load_yaml, resolve_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_tiny.yaml"


def test_example_yaml_and_precedence():
    section = load_yaml(EXAMPLE)
    cfg = resolve_config({"data": ["a.tar"], "out": "run", "steps": 7}, section)
    assert cfg.steps == 7  # CLI beats the file
    assert cfg.lr == 2.0e-3 and cfg.streams == 2  # the file beats the preset
    assert cfg.model.d_model == PRESETS["tiny"]["model"]["d_model"]  # the preset beats the defaults
    assert cfg.model.fusion == "merge" and cfg.data[0].shards == "a.tar" and cfg.data[0].weight == 1.0


def test_icode_preset_sizes():
    cfg = resolve_config({"preset": "icode"})
    assert (cfg.model.d_model, cfg.model.n_heads, cfg.model.fusion_layers) == (768, 12, 6)
    assert (cfg.mlm_prob, cfg.mvm_ratio, cfg.msm_prob, cfg.msm_span) == (0.3, 0.5, 0.08, 10)
    assert (cfg.w_mlm, cfg.w_mvm, cfg.w_msm, cfg.w_contrastive) == (0.5, 0.6, 1.0, 1.0)


@pytest.mark.parametrize("cli, section, match", [
    ({}, {"bogus": 1}, "unknown TrainConfig option 'bogus'"),
    ({}, {"model": {"heads": 2}}, "unknown ModelConfig option 'heads'"),
    ({}, {"lr": "fast"}, "TrainConfig.lr: expected float"),
    ({"preset": "huge"}, {}, "preset = 'huge'"),
    ({}, {"model": {"fusion": "sum"}}, "model.fusion = 'sum'"),
    ({}, {"batch_size": 10, "accum_steps": 3}, "multiple of accum_steps"),
    ({}, {"data": [{"shards": "a.tar", "weight": 0}]}, "weights must be > 0"),
    ({}, {"mlm_prob": 1.5}, "mlm_prob = 1.5"),
])
def test_bad_values_name_the_key(cli, section, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(cli, section)


def test_yaml_needs_a_train_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 3\n")
    with pytest.raises(ConfigError, match="no 'train:' section"):
        load_yaml(p)


def test_dashes_and_roundtrip():
    cfg = resolve_config({}, {"batch-size": 64, "data": ["x.tar"], "model": {"d-model": 48, "n-heads": 4}})
    assert cfg.batch_size == 64 and cfg.model.d_model == 48
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_resume_takes_the_model_from_the_checkpoint():
    old = resolve_config({"preset": "tiny", "data": ["a.tar"], "out": "run", "steps": 10, "lr": 1e-3})
    new = resolve_config({"preset": "icode", "data": ["a.tar"], "out": "run", "steps": 20})
    cfg = resumed_config(new, {"config": old.to_dict()})
    assert cfg.steps == 20 and cfg.lr == 1e-3 and cfg.model == old.model
