"""Backbone overrides (``text.overrides`` for transformers, ``vision.overrides`` for timm): a misspelt key
is an error naming the field and the closest valid key, raised before any weights are loaded; every key
the repo's configs use, and timm's keywords passed on through ``**kwargs``, are accepted and take effect.
Also the name tables of text pooling and of the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from training.models import FusionModel, TextBackboneConfig, VisionBackboneConfig
from training.models import text_encoder, vision_encoder
from training.models.config import TEXT_POOLINGS
from training.models.text_encoder import POOLINGS, TextEncoder, check_text_overrides
from training.models.vision_encoder import VisionEncoder, check_vision_overrides, timm_model_options
from training.study_config import StudyConfig
from training.trainer import LOSSES, score_metrics

CONFIG_DIR = Path(__file__).parents[2] / "training" / "configs"
STUDY_EXPERIMENTS = [
    (study.stem, config)
    for study in sorted(CONFIG_DIR.glob("study_*.yaml"))
    for config in StudyConfig.load(study).experiment_configs()
]
# The backbones the configs and registry use, and a few other timm families.
BACKBONES = ["mobilenetv2_100", "mobilenetv2_050", "vit_base_patch16_224", "resnet18", "efficientnet_b0",
             "convnext_atto"]
# timm keywords that reach the model class only through **kwargs (create_model -> entrypoint -> builder).
FORWARDED = dict(drop_rate=0.1, drop_path_rate=0.1, num_classes=0, in_chans=1, global_pool="avg",
                 pretrained_cfg_overlay={})
BUILDER_OPTIONS = dict(features_only=True, out_indices=(1,), feature_cls="getter")
TINY_TEXT = dict(name=None, pretrained=False, tap_layer=1,
                 overrides=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))


def _refuse_loading(monkeypatch) -> None:
    """Makes any load of text weights or creation of a timm model an error, so a check must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a backbone was loaded before its overrides were checked")

    monkeypatch.setattr(text_encoder.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(text_encoder.AutoModel, "from_config", refuse)
    monkeypatch.setattr(vision_encoder.timm, "create_model", refuse)


# ------------------------------------------------------------------------------------ misspelt keys


@pytest.mark.parametrize("pretrained", [False, True])
def test_a_misspelt_text_override_names_the_field_and_the_closest_key(pretrained, monkeypatch) -> None:
    _refuse_loading(monkeypatch)
    cfg = TextBackboneConfig(pretrained=pretrained, overrides={"hidden_size": 32, "num_hidden_layer": 1})
    with pytest.raises(ValueError, match=r"^text\.overrides has an unknown key 'num_hidden_layer', expected an "
                                         r"attribute of BertConfig; did you mean 'num_hidden_layers'\?$"):
        TextEncoder(cfg, ["final"])


@pytest.mark.parametrize(("backbone", "typo", "meant"), [
    ("mobilenetv2_050", "drop_rat", "drop_rate"),
    ("vit_base_patch16_224", "embed_dims", "embed_dim"),
    ("resnet18", "drop_path", "drop_path_rate"),
    ("convnext_atto", "depth", "depths"),
])
@pytest.mark.parametrize("points", [["final"], ["tap"], ["tap", "final"]])
def test_a_misspelt_vision_override_names_the_field_and_the_closest_key(backbone, typo, meant, points,
                                                                       monkeypatch) -> None:
    _refuse_loading(monkeypatch)
    cfg = VisionBackboneConfig(backbone, pretrained=True, tap=1, overrides={typo: 1})
    with pytest.raises(ValueError, match=rf"^vision\.overrides has an unknown key '{typo}', expected a keyword "
                                         rf"of timm's '{backbone}'; did you mean '{meant}'\?$"):
        VisionEncoder(cfg, points)


def test_a_typo_in_an_experiment_fails_when_the_model_is_built_before_any_weights(monkeypatch) -> None:
    (_, demo), *_ = STUDY_EXPERIMENTS
    fusion = demo.fusion_config()
    fusion.vision.overrides = {"drop_rate": 0.1, "dropp_rate": 0.1}
    _refuse_loading(monkeypatch)
    with pytest.raises(ValueError, match="vision.overrides has an unknown key 'dropp_rate'"):
        FusionModel(fusion)


def test_keys_timm_may_not_know_are_left_to_timm() -> None:
    # hf-hub models name their architecture in the hub's config; byobnet's **kwargs fill a config
    # dataclass: signatures cannot list their keywords, and timm raises its own TypeError for those.
    assert timm_model_options("hf-hub:timm/resnet18.a1_in1k") is None
    assert timm_model_options("resnet18.a1_in1k") == timm_model_options("resnet18")
    assert timm_model_options("gernet_s") is None
    check_vision_overrides(VisionBackboneConfig("gernet_s", overrides={"whatever": 1}))
    with pytest.raises(TypeError, match="whatever"):
        with torch.device("meta"):
            timm.create_model("gernet_s", pretrained=False, whatever=1)


# -------------------------------------------------------------------------------------- valid keys


@pytest.mark.parametrize(("study", "config"), STUDY_EXPERIMENTS,
                         ids=[f"{study}-{config.name}" for study, config in STUDY_EXPERIMENTS])
def test_every_override_the_configs_use_is_accepted(study, config) -> None:
    fusion = config.fusion_config()
    assert timm_model_options(fusion.vision.name) is not None  # the check is not skipped
    check_vision_overrides(fusion.vision)
    # Full-size text (bert-base-uncased, whose config is a hub download) has no overrides: nothing to read.
    assert fusion.text.overrides or study == "study_full"
    check_text_overrides(fusion.text)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_keywords_timm_forwards_through_kwargs_are_accepted(backbone) -> None:
    overrides = dict(FORWARDED, **({"img_size": 64} if "vit" in backbone else {}))
    for options in (overrides, BUILDER_OPTIONS):
        check_vision_overrides(VisionBackboneConfig(backbone, overrides=options))
        with torch.device("meta"):  # and timm does take them (no weights are allocated)
            timm.create_model(backbone, pretrained=False, **options)


def test_keywords_of_timm_helpers_between_entrypoint_and_class_are_accepted() -> None:
    # efficientnet_b0 -> _gen_efficientnet(channel_divisor=...) -> EfficientNet: not in the class signature.
    check_vision_overrides(VisionBackboneConfig("efficientnet_b0", overrides={"channel_divisor": 16}))
    check_vision_overrides(VisionBackboneConfig("mobilenetv2_100", overrides={"fix_stem_head": True}))


def test_accepted_overrides_change_the_built_model() -> None:
    text = TextEncoder(TextBackboneConfig(**dict(TINY_TEXT, overrides=dict(TINY_TEXT["overrides"],
                                                                           num_hidden_layers=1))), ["final"])
    assert len(text.model.encoder.layer) == 1 and text.width == 32
    for points in (["final"], ["tap"]):
        cnn = VisionEncoder(VisionBackboneConfig("resnet18", pretrained=False, tap=1, image_size=32,
                                                 overrides={"drop_rate": 0.25, "in_chans": 1}), points)
        assert cnn(torch.randn(2, 1, 32, 32))  # one input channel
    assert VisionEncoder(VisionBackboneConfig("resnet18", pretrained=False, image_size=32,
                                              overrides={"drop_rate": 0.25}), ["final"]).model.drop_rate == 0.25
    tiny_vit = dict(embed_dim=24, depth=2, num_heads=2, patch_size=8, global_pool="avg")
    vit = VisionEncoder(VisionBackboneConfig("vit_base_patch16_224", pretrained=False, tap=1, image_size=32,
                                             overrides=tiny_vit), ["final"])
    assert (vit.widths["final"], len(vit.model.blocks), vit.model.global_pool) == (24, 2, "avg")


# -------------------------------------------------------------------------------------- name tables


def test_text_pooling_is_a_table_lookup() -> None:
    assert set(POOLINGS) == set(TEXT_POOLINGS)
    cfg = TextBackboneConfig(**TINY_TEXT)
    cfg.pooling = "maen"  # past the config's own check: the encoder's table says the same
    with pytest.raises(ValueError, match=r"unknown text pooling 'maen', expected one of \['cls', 'mean', "
                                         r"'pooler'\]; did you mean 'mean'\?"):
        TextEncoder(cfg, ["final"])
    tokens, mask = torch.randn(2, 5, 32), torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(POOLINGS["cls"](None, tokens, mask), tokens[:, 0])
    torch.testing.assert_close(POOLINGS["mean"](None, tokens, mask)[0], tokens[0, :2].mean(0))


def test_the_scored_loss_is_the_training_loss_from_the_table() -> None:
    rng = np.random.default_rng(0)
    preds, labels = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    errors = preds.astype(np.float64) - labels
    assert score_metrics(preds, labels, "l1")["loss"] == pytest.approx(np.mean(np.abs(errors)), abs=1e-12)
    assert score_metrics(preds, labels, "mse")["loss"] == pytest.approx(np.mean(errors**2), abs=1e-12)
    assert set(LOSSES) == {"l1", "mse"}
    with pytest.raises(ValueError, match=r"unknown loss 'mae', expected one of \['l1', 'mse'\]"):
        score_metrics(preds, labels, "mae")
