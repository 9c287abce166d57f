"""Fusion strategies: where the modalities meet, given each backbone's streams.

=============  ================================================================================
strategy       what is joined (by the operator) before the head
=============  ================================================================================
late           the final pooled vectors of both backbones
intermediate   the pooled features at an inner point (text tap layer, vision tap feature)
early          both tapped token streams after a joint stack of attention blocks
hybrid         the late pooled vectors and the early path's two streams (four streams)
decision       nothing: each backbone has its own head; the predictions are averaged / combined
=============  ================================================================================
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import FusionConfig
from .early_blocks import EarlyFusionEncoder
from .fusion_ops import build_operator
from .heads import PredictionHead
from .stream import Stream

#: The backbone points each strategy reads (``"tap"``: an inner layer, ``"final"``: the pooled output).
STRATEGY_POINTS: dict[str, tuple[str, ...]] = {
    "late": ("final",),
    "intermediate": ("tap",),
    "early": ("tap",),
    "hybrid": ("tap", "final"),
    "decision": ("final",),
}


class FeatureFusion(nn.Module):
    """late / intermediate / early / hybrid: streams -> operator -> one head."""

    def __init__(self, cfg: FusionConfig, text_widths: dict[str, int], image_widths: dict[str, int]) -> None:
        super().__init__()
        self.strategy = cfg.strategy
        widths = []
        if cfg.strategy in ("late", "hybrid"):
            widths += [text_widths["final"], image_widths["final"]]
        if cfg.strategy == "intermediate":
            widths += [text_widths["tap"], image_widths["tap"]]
        self.early = None
        if cfg.strategy in ("early", "hybrid"):
            self.early = EarlyFusionEncoder(
                text_widths["tap"], image_widths["tap"], cfg.hidden_size, cfg.fusion_layers, cfg.fusion_heads,
                cfg.dropout,
            )
            widths += [cfg.hidden_size, cfg.hidden_size]
        self.operator = build_operator(cfg.operator, widths, cfg.hidden_size, cfg.fusion_heads, cfg.dropout)
        self.head = PredictionHead(self.operator.out_features, cfg.hidden_size, cfg.num_classes, cfg.dropout)

    def forward(
        self, text: dict[str, Stream], image: dict[str, Stream], presence: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        streams = []
        if self.strategy in ("late", "hybrid"):
            streams += [text["final"], image["final"]]
        if self.strategy == "intermediate":
            streams += [text["tap"], image["tap"]]
        if self.early is not None:
            streams += list(self.early(text["tap"], image["tap"]))
        return {"": self.head(self.operator(streams))}


class DecisionFusion(nn.Module):
    """Score-level late fusion: a head per branch, predictions combined.

    ``fixed`` / ``learned``: weighted average over the modalities present in each sample (weights
    renormalised, so a missing modality's branch is ignored; learned weights stay positive through a
    softmax). ``mlp``: a small network over both branch predictions and the presence flags.
    """

    def __init__(self, cfg: FusionConfig, text_widths: dict[str, int], image_widths: dict[str, int]) -> None:
        super().__init__()
        outputs = 1 + cfg.num_classes
        self.text_head = PredictionHead(text_widths["final"], cfg.hidden_size, cfg.num_classes, cfg.dropout)
        self.image_head = PredictionHead(image_widths["final"], cfg.hidden_size, cfg.num_classes, cfg.dropout)
        self.combiner = cfg.decision_combiner
        self.mlp = None
        if self.combiner == "mlp":
            self.mlp = nn.Sequential(nn.Linear(2 * outputs + 2, cfg.hidden_size), nn.GELU(),
                                     nn.Linear(cfg.hidden_size, outputs))
        logits = torch.tensor([math.log(w) for w in cfg.decision_weights])
        if self.combiner == "learned":
            self.weight_logits = nn.Parameter(logits)
        else:
            self.register_buffer("weight_logits", logits)

    def weights(self) -> torch.Tensor:
        """The (text, image) averaging weights, summing to 1."""
        return self.weight_logits.softmax(dim=0)

    def forward(
        self, text: dict[str, Stream], image: dict[str, Stream], presence: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        y_text = self.text_head(text["final"].pooled)
        y_image = self.image_head(image["final"].pooled)
        if self.mlp is not None:
            y = self.mlp(torch.cat([y_text, y_image, presence.to(y_text.dtype)], dim=-1))
        else:
            w = self.weights().to(y_text.dtype) * presence.to(y_text.dtype)
            y = (w[:, :1] * y_text + w[:, 1:] * y_image) / w.sum(dim=1, keepdim=True)
        return {"": y, "_text": y_text, "_image": y_image}


def build_fusion(cfg: FusionConfig, text_widths: dict[str, int], image_widths: dict[str, int]) -> nn.Module:
    """The fusion part (everything after the backbones) of strategy ``cfg.strategy``."""
    if cfg.strategy == "decision":
        return DecisionFusion(cfg, text_widths, image_widths)
    return FeatureFusion(cfg, text_widths, image_widths)
