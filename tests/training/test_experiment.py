"""Tests of training.experiment: loading YAML / TOML, round trips, validation errors, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.experiment import ExperimentConfig
from training.models import FusionConfig

# Experiment configs; study_*.yaml list experiments and are tested with training.study.
CONFIGS = sorted(p for p in (Path(__file__).parents[2] / "training" / "configs").glob("*.yaml")
                 if not p.stem.startswith("study_"))
STUDY = ["late_mobilenetv2", "late_vit", "intermediate_mobilenetv2", "intermediate_vit", "early_mobilenetv2",
         "early_vit"]

YAML = """
model:
  name: late_vit
  overrides: {hidden_size: 64, vision: {pretrained: false}}
data: {root: /data/mosi, modalities: [text], batch_size: 8, image_size: 96}
optim: {epochs: 2, lr_backbone: 1e-5, lr_vision: 1e-3, lr_head: 3.0e-4, schedule: linear}
early_stopping: {metric: MAE}
"""
TOML = """
[model]
name = "late_vit"
overrides = { hidden_size = 64, vision = { pretrained = false } }
[data]
root = "/data/mosi"
modalities = ["text"]
batch_size = 8
image_size = 96
[optim]
epochs = 2
lr_backbone = 1e-5
lr_vision = 1e-3
lr_head = 3.0e-4
schedule = "linear"
[early_stopping]
metric = "MAE"
"""


def test_yaml_and_toml_give_the_same_config_and_it_round_trips(tmp_path):
    (tmp_path / "exp.yaml").write_text(YAML)
    (tmp_path / "exp.toml").write_text(TOML)
    from_yaml = ExperimentConfig.load(tmp_path / "exp.yaml")
    assert from_yaml == ExperimentConfig.load(tmp_path / "exp.toml")
    assert from_yaml.name == "exp" and from_yaml.run_dir == Path("runs/exp")
    assert from_yaml.optim.lr_backbone == 1e-5  # YAML reads 1e-5 as a string; it is converted
    # lr_text is left out, so the text encoder keeps lr_backbone; the vision encoder has its own.
    assert (from_yaml.optim.resolved_lr_text, from_yaml.optim.resolved_lr_vision) == (1e-5, 1e-3)
    assert from_yaml.early_stopping.resolved_mode == "min"
    assert ExperimentConfig.from_dict(from_yaml.to_dict()) == from_yaml
    from_yaml.save(tmp_path / "saved.yaml")
    assert ExperimentConfig.load(tmp_path / "saved.yaml") == from_yaml


def test_fusion_config_takes_the_overrides_and_the_data_image_size(tmp_path):
    (tmp_path / "exp.yaml").write_text(YAML)
    fusion = ExperimentConfig.load(tmp_path / "exp.yaml").fusion_config()
    assert fusion.hidden_size == 64
    assert fusion.vision.name == "vit_base_patch16_224" and not fusion.vision.pretrained
    assert fusion.vision.image_size == 96


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"name": "late_resnet"}}, "expected a registered model"),
        ({"optim": {"epochs": 2, "lr_head": "fast"}}, "optim.lr_head is 'fast'"),
        ({"optim": {"epochs": 0}}, "optim.epochs is 0"),
        ({"optim": {"lr_vision": -1e-3}}, "optim.lr_vision is -0.001"),
        ({"optim": {"lr_head": 0.0}}, "optim.lr_head is 0.0"),
        ({"optim": {"schedule": "step"}}, "optim.schedule is 'step'"),
        ({"data": {"modalities": ["audio"]}}, "data.modalities"),
        ({"data": {"batch_size": True}}, "data.batch_size is True"),
        ({"early_stopping": {"metric": "accuracy"}}, "early_stopping.metric is 'accuracy'"),
        ({"optimizer": {}}, "unknown fields ['optimizer']"),
        ({"optim": {"lr": 1.0}}, "unknown fields ['lr'] in optim"),
    ],
)
def test_invalid_configs_say_which_field_is_wrong(change, message):
    data = {"model": {"name": "late"}, **change}
    with pytest.raises((ValueError, TypeError)) as err:
        ExperimentConfig.from_dict(data)
    assert message in str(err.value)


def test_conflicting_image_sizes_and_unknown_model_fields_are_errors():
    cfg = ExperimentConfig.from_dict({"model": {"name": "late", "overrides": {"vision": {"image_size": 32}}}})
    with pytest.raises(ValueError, match="set data.image_size only"):
        cfg.fusion_config()
    cfg = ExperimentConfig.from_dict({"model": {"name": "late", "overrides": {"hidden": 32}}})
    with pytest.raises(ValueError, match="model.overrides"):
        cfg.fusion_config()


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        ExperimentConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: {name: late\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        ExperimentConfig.load(tmp_path / "bad.yaml")
    (tmp_path / "exp.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown config format"):
        ExperimentConfig.load(tmp_path / "exp.json")
    (tmp_path / "typo.yaml").write_text("model: {name: late}\noptim: {epoch: 3}\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown fields \['epoch'\] in optim"):
        ExperimentConfig.load(tmp_path / "typo.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load_and_describe_a_model(path):
    cfg = ExperimentConfig.load(path)
    assert isinstance(cfg.fusion_config(), FusionConfig)
    assert cfg.fusion_config().vision.image_size == cfg.data.image_size


def test_every_study_model_has_a_config():
    names = {p.stem for p in CONFIGS}
    assert set(STUDY) <= names, sorted(set(STUDY) - names)
    for name in STUDY:
        assert ExperimentConfig.load(CONFIGS[0].parent / f"{name}.yaml").model.name == name
