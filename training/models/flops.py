"""Parameter and FLOP counts per branch, with torch's own FlopCounterMode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_complexity(
    model: nn.Module, inputs: Sequence[torch.Tensor], branches: Mapping[str, nn.Module]
) -> dict[str, dict[str, int]]:
    """Counts params and forward FLOPs of each submodule in ``branches``; the rest is ``fusion``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        >>> count_complexity(net, (torch.randn(1, 4),), {"first": net[0]})["first"]
        {'params': 40, 'flops': 64}
    """
    names = {module: name for name, module in model.named_modules()}
    root = type(model).__name__
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    # FlopCounterMode keys its per-module totals by "<RootClass>.<qualified name>".
    flops = {key: sum(counts.values()) for key, counts in counter.get_flop_counts().items()}
    out = {}
    for branch, module in branches.items():
        out[branch] = {
            "params": sum(p.numel() for p in module.parameters()),
            "flops": flops.get(f"{root}.{names[module]}", 0),
        }
    total = {"params": sum(p.numel() for p in model.parameters()), "flops": counter.get_total_flops()}
    out["fusion"] = {key: total[key] - sum(b[key] for b in out.values()) for key in total}
    out["total"] = total
    return out
