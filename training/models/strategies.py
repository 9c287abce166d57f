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

:data:`STRATEGY_SPECS` holds that table as data (a :class:`Strategy` per name), and
:func:`get_strategy` looks a ``FusionConfig.strategy`` up in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fusionrt.graph_io import IMAGE, TEXT
from training.tables import lookup

from .config import FusionConfig
from .early_blocks import EarlyFusionEncoder
from .fusion_ops import build_operator
from .heads import PredictionHead
from .stream import Stream


class FeatureFusion(nn.Module):
    """late / intermediate / early / hybrid: streams -> operator -> one head.

    The operator joins, in order, the (text, image) streams of each of the strategy's ``joined``
    points, then the two streams of the early path when the strategy has one.
    """

    def __init__(self, cfg: FusionConfig, text_widths: dict[str, int], image_widths: dict[str, int]) -> None:
        super().__init__()
        strategy = get_strategy(cfg.strategy)
        self.joined = strategy.joined
        widths = [w[point] for point in self.joined for w in (text_widths, image_widths)]
        self.early = None
        if strategy.early:
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
        streams = [s[point] for point in self.joined for s in (text, image)]
        if self.early is not None:
            streams += list(self.early(text["tap"], image["tap"]))
        return {None: self.head(self.operator(streams))}


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
        return {None: y, TEXT: y_text, IMAGE: y_image}


@dataclass(frozen=True)
class Strategy:
    """What one fusion strategy reads from the backbones and which module joins it.

    Attributes:
        points: The backbone points the encoders produce (``"tap"``: an inner layer, ``"final"``:
            the pooled output), in the order their placeholders are made.
        fusion: The part after the backbones, built as ``fusion(cfg, text_widths, image_widths)``.
        joined: Points whose (text, image) streams :class:`FeatureFusion`'s operator joins directly.
        early: Whether the tapped token streams also go through the joint attention stack.
    """

    points: tuple[str, ...]
    fusion: type[nn.Module]
    joined: tuple[str, ...] = ()
    early: bool = False


#: Every fusion strategy by name (``FusionConfig.strategy``); the table of this module's docstring.
STRATEGY_SPECS: dict[str, Strategy] = {
    "late": Strategy(points=("final",), fusion=FeatureFusion, joined=("final",)),
    "intermediate": Strategy(points=("tap",), fusion=FeatureFusion, joined=("tap",)),
    "early": Strategy(points=("tap",), fusion=FeatureFusion, early=True),
    "hybrid": Strategy(points=("tap", "final"), fusion=FeatureFusion, joined=("final",), early=True),
    "decision": Strategy(points=("final",), fusion=DecisionFusion),
}


def get_strategy(name: str) -> Strategy:
    """The :class:`Strategy` called ``name``; an unknown name raises a ``ValueError`` listing the valid ones."""
    return lookup(STRATEGY_SPECS, name, "fusion strategy")
