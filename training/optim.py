"""AdamW with separate backbone / head learning rates, and the warm-up + decay schedule.

Example:
    >>> optimizer = build_optimizer(model, OptimSection(lr_backbone=2e-5, lr_head=1e-3))  # doctest: +SKIP
    >>> scheduler = build_scheduler(optimizer, OptimSection(), total_steps=600)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from training.experiment import OptimSection
from training.models import FusionModel


def build_optimizer(model: FusionModel, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW over four groups: backbone / head x decayed / not decayed.

    Biases and normalisation weights (every parameter with fewer than two dims) are not decayed, as
    in BERT's recipe. ``lr_backbone == 0`` freezes the encoders instead of stepping them at rate 0,
    so their gradients are never computed.
    """
    backbones = {id(p) for encoder in (model.text_encoder, model.vision_encoder) for p in encoder.parameters()}
    if optim.lr_backbone == 0:
        for encoder in (model.text_encoder, model.vision_encoder):
            encoder.requires_grad_(False)
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for param in model.parameters():
        if param.requires_grad:
            groups.setdefault((id(param) in backbones, param.ndim >= 2), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": optim.lr_backbone if backbone else optim.lr_head,
            "weight_decay": optim.weight_decay if decayed else 0.0,
            "name": f"{'backbone' if backbone else 'head'}{'' if decayed else '_no_decay'}",
        }
        for (backbone, decayed), params in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSection, total_steps: int) -> LambdaLR:
    """Linear warm-up over ``warmup_ratio * total_steps`` steps, then linear / cosine decay to 0 (or constant)."""
    warmup = int(optim.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)  # never exactly 0: the first step already learns a little
        if optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if optim.schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
