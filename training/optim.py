"""AdamW with separate text / vision / head learning rates, and the warm-up + decay schedule.

Example:
    >>> optimizer = build_optimizer(model, OptimSection(lr_text=2e-5, lr_vision=1e-3, lr_head=1e-3))  # doctest: +SKIP
    >>> scheduler = build_scheduler(optimizer, OptimSection(), total_steps=600)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from training.experiment import OptimSection
from training.models import FusionModel
from training.tables import lookup

#: The decay after warm-up of each ``optim.schedule`` (experiment.SCHEDULES): the learning-rate
#: factor at ``progress``, the fraction of the post-warm-up steps done.
DECAYS: dict[str, Callable[[float], float]] = {
    "linear": lambda progress: 1.0 - progress,
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress)),
    "constant": lambda progress: 1.0,
}


def build_optimizer(model: FusionModel, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW over up to six groups: text / vision / head x decayed / not decayed.

    Groups are named ``text``, ``vision``, ``head`` with a ``_no_decay`` suffix for biases and
    normalisation weights (every parameter with fewer than two dims), which are not decayed, as in
    BERT's recipe. An encoder whose learning rate is 0 is frozen instead of stepped at rate 0, so
    its gradients are never computed.
    """
    encoders = {"text": (model.text_encoder, optim.resolved_lr_text),
                "vision": (model.vision_encoder, optim.resolved_lr_vision)}
    lrs = {"head": optim.lr_head}
    owner: dict[int, str] = {}
    for name, (encoder, lr) in encoders.items():
        if lr == 0:
            encoder.requires_grad_(False)
        lrs[name] = lr
        owner.update((id(p), name) for p in encoder.parameters())
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for param in model.parameters():
        if param.requires_grad:
            groups.setdefault((owner.get(id(param), "head"), param.ndim >= 2), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": lrs[name],
            "weight_decay": optim.weight_decay if decayed else 0.0,
            "name": f"{name}{'' if decayed else '_no_decay'}",
        }
        for (name, decayed), params in sorted(groups.items())
    ]
    # fused: one kernel per step for all tensors (CPU and CUDA); on CPU the default per-tensor loop took
    # ~30 % of a demo step, most of it on the text encoder's word-embedding table.
    return torch.optim.AdamW(param_groups, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSection, total_steps: int) -> LambdaLR:
    """Linear warm-up over ``warmup_ratio * total_steps`` steps, then linear / cosine decay to 0 (or constant)."""
    warmup = int(optim.warmup_ratio * total_steps)
    decay = lookup(DECAYS, optim.schedule, "optim.schedule")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)  # never exactly 0: the first step already learns a little
        return decay(min(1.0, (step - warmup) / max(1, total_steps - warmup)))

    return LambdaLR(optimizer, factor)
