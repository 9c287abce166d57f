"""Several seeds of one experiment in the study report: records grouped by experiment, mean ± std.

Each study record names the experiment it is one seed of (``group``); tables and figures show one row
or point per group.

Example:
    >>> spread([0.70, 0.72, 0.74])
    '0.7200 ± 0.0200'
    >>> spread([0.7]), mean_std([0.7])
    ('0.7000', (0.7, None))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Strategy order in tables and legends: fusion strategies, then unimodal baselines.
STRATEGY_ORDER = ("late", "intermediate", "early", "hybrid", "decision", "text only", "image only")


def ordered(models: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``models`` by strategy (:data:`STRATEGY_ORDER`), experiment, then name (seed)."""
    rank = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return sorted(models, key=lambda m: (rank.get(m["strategy"], len(rank)), group_of(m), m["name"]))


def group_of(model: Mapping[str, Any]) -> str:
    """The experiment a record is one seed of (records without a group are their own)."""
    return model.get("group") or model["name"]


def grouped(models: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """``(experiment, its records: one per seed)`` in report order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for model in ordered(models):
        groups.setdefault(group_of(model), []).append(model)
    return list(groups.items())


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the seeds' values; std None for one seed, both
    None when a value is missing."""
    if not values or any(v is None for v in values):
        return None, None
    data = [float(v) for v in values]  # type: ignore[arg-type]
    mean = sum(data) / len(data)
    if len(data) == 1:
        return mean, None
    return mean, (sum((v - mean) ** 2 for v in data) / (len(data) - 1)) ** 0.5


def spread(values: Sequence[float | None], digits: int = 4) -> str:
    """``0.7123`` for one seed, ``0.7123 ± 0.0100`` for several, ``–`` when missing."""
    mean, std = mean_std(values)
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
