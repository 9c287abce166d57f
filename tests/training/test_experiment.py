"""Tests of training.experiment: loading YAML / TOML, round trips, validation errors, the shipped configs
(base configs, and the studies' experiments as base + overrides, each trainable on its own)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from training import train as train_module
from training.experiment import SCHEDULES, ExperimentConfig
from training.models import FusionConfig, FusionModel
from training.models.fusion_ops import OPERATOR_CLASSES
from training.models.strategies import STRATEGY_SPECS
from training.optim import DECAYS
from training.study_config import StudyConfig, load_experiment

CONFIG_DIR = Path(__file__).parents[2] / "training" / "configs"
# Experiment configs (the bases); study_*.yaml list experiments as {config: base, name, overrides}.
CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("study_"))
STUDIES = sorted(CONFIG_DIR.glob("study_*.yaml"))
STUDY_EXPERIMENTS = [(path, c.name) for path in STUDIES for c in StudyConfig.load(path).experiment_configs()]
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
    for study in STUDIES:
        # One entry per experiment (a seeded study runs each as <name>_seed<n>: its group is the experiment).
        models = {group.removeprefix("demo_"): c.model.name for group, c in StudyConfig.load(study).experiment_groups()}
        assert set(STUDY) <= set(models), (study.name, sorted(set(STUDY) - set(models)))
        assert all(models[name] == name for name in STUDY)
        assert {"text_only", "image_only"} <= set(models)  # the unimodal baselines are overrides of the base


def test_study_configs_are_a_base_per_size_plus_overrides():
    assert [p.name for p in CONFIGS] == ["base_demo.yaml", "base_full.yaml"]
    for study in STUDIES:
        entries = StudyConfig.load(study).experiments
        assert {e.config for e in entries} == {f"base_{study.stem.removeprefix('study_')}.yaml"}
        assert all(e.name for e in entries)
    demo = StudyConfig.load(CONFIG_DIR / "study_demo.yaml")
    baselines = {c.name: c.data.modalities for c in demo.experiment_configs()}
    assert (baselines["demo_text_only"], baselines["demo_image_only"]) == (["text"], ["image"])


def _tiny_backbones(fusion: FusionConfig) -> FusionConfig:
    """``fusion`` with random, small backbones: the full-size ones are hub downloads (none offline)."""
    tiny_bert = dict(hidden_size=32, num_hidden_layers=fusion.text.tap_layer, num_attention_heads=2,
                     intermediate_size=64)
    text = dataclasses.replace(fusion.text, name=None, pretrained=False, overrides=tiny_bert)
    vit = "vit" in fusion.vision.name
    vision_overrides = dict(embed_dim=32, depth=fusion.vision.tap + 1, num_heads=2) if vit else {}
    vision = dataclasses.replace(fusion.vision, pretrained=False, image_size=32, overrides=vision_overrides)
    return dataclasses.replace(fusion, text=text, vision=vision)


@pytest.mark.parametrize(("study", "name"), STUDY_EXPERIMENTS, ids=[f"{p.stem}-{n}" for p, n in STUDY_EXPERIMENTS])
def test_study_experiments_resolve_and_build_a_model(study, name):
    config = StudyConfig.load(study).experiment_config(name)
    fusion = config.fusion_config()
    assert fusion.vision.image_size == config.data.image_size
    # The names the config uses pick parts from the tables.
    assert fusion.strategy in STRATEGY_SPECS and fusion.operator in (None, *OPERATOR_CLASSES)
    assert config.optim.schedule in DECAYS
    # Demo models are built as configured (bundled MiniLM, random vision nets); full-size ones shrunk.
    model = FusionModel(fusion if study.stem == "study_demo" else _tiny_backbones(fusion)).eval()
    assert model(*model.example_inputs(batch=2, text_length=8))["score"].shape == (2,)


@pytest.mark.parametrize(("study", "name"), STUDY_EXPERIMENTS, ids=[f"{p.stem}-{n}" for p, n in STUDY_EXPERIMENTS])
def test_an_experiment_trains_on_its_own_exactly_as_the_study_resolves_it(study, name, monkeypatch):
    resolved = StudyConfig.load(study).experiment_config(name)
    assert load_experiment(study, name) == resolved
    assert resolved.run_dir == StudyConfig.load(study).resolved_work_dir / name / "run"  # where the study looks
    trained = []
    monkeypatch.setattr(train_module, "train", lambda config, **kwargs: trained.append(config) or {})
    with pytest.raises(KeyError):  # the stub's empty result: main got as far as training
        train_module.main(["--config", str(study), "--experiment", name])
    assert trained == [resolved]


def test_a_plain_config_trains_without_an_experiment(monkeypatch):
    trained = []
    monkeypatch.setattr(train_module, "train", lambda config, **kwargs: trained.append(config) or {})
    with pytest.raises(KeyError):
        train_module.main(["--config", str(CONFIG_DIR / "base_demo.yaml")])
    assert trained == [ExperimentConfig.load(CONFIG_DIR / "base_demo.yaml")]
    assert trained[0].name == "demo_late_mobilenetv2" and trained[0].run_dir == Path("runs/demo_late_mobilenetv2")


#: The demo study's experiments, counted in its YAML text (the entries not commented out).
DEMO_EXPERIMENTS = sum(line.lstrip().startswith("- {config:") for line in (CONFIG_DIR / "study_demo.yaml").read_text().splitlines())


@pytest.mark.parametrize(("args", "message"), [
    (["--experiment", "demo_late_vt"], "unknown experiment 'demo_late_vt', expected one of ['demo_decision_mobilenetv2', 'demo_early_mobilenetv2'"),
    (["--experiment", "demo_late_vt"], "did you mean 'demo_late_vit'?"),
    ([], f"is a study of {DEMO_EXPERIMENTS} experiments; pick one with --experiment: demo_late_mobilenetv2, "),
])
def test_train_cli_says_which_experiments_a_study_has(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--config", str(CONFIG_DIR / "study_demo.yaml"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_experiment_needs_a_study_file(capsys):
    with pytest.raises(SystemExit):
        train_module.main(["--config", str(CONFIG_DIR / "base_demo.yaml"), "--experiment", "demo_late_vit"])
    assert "is one experiment's config, not a study" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a study"):
        load_experiment(CONFIG_DIR / "base_demo.yaml", "demo_late_vit")


def test_study_entries_merge_overrides_into_their_base(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(
        {"name": "base_run", "model": {"name": "late", "overrides": {"hidden_size": 64, "vision": {"tap": 2}}},
         "optim": {"epochs": 3, "lr_head": 1e-3}}))
    (tmp_path / "study_s.yaml").write_text(yaml.safe_dump({"experiments": [
        "base.yaml",
        {"config": "base.yaml", "name": "wide", "overrides": {"model": {"overrides": {"vision": {"pretrained": False}}},
                                                              "optim": {"epochs": 5}}},
    ], "overrides": {"seed": 7}}))
    plain, wide = StudyConfig.load(tmp_path / "study_s.yaml").experiment_configs()
    assert plain.name == "base_run" and plain.seed == wide.seed == 7
    assert wide.model.overrides == {"hidden_size": 64, "vision": {"tap": 2, "pretrained": False}}  # mappings merge
    assert (wide.optim.epochs, wide.optim.lr_head) == (5, 1e-3)
    assert wide.run_dir == Path("runs/study/s/wide/run")


def test_the_name_tables_cover_every_name_configs_accept():
    assert set(DECAYS) == set(SCHEDULES)
