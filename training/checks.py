"""Checks of config values, with the one wording every training config error uses.

Example:
    >>> require_at_least("data.batch_size", 0, 1)
    Traceback (most recent call last):
      ...
    ValueError: data.batch_size is 0, expected >= 1
    >>> require_one_of("optim.schedule", "cosin", ("linear", "cosine"))
    Traceback (most recent call last):
      ...
    ValueError: optim.schedule is 'cosin', expected one of ('linear', 'cosine'); did you mean 'cosine'?
    >>> require_known_keys("text.overrides", {"num_layer": 2}, ["num_layers"], "a config attribute")
    Traceback (most recent call last):
      ...
    ValueError: text.overrides has an unknown key 'num_layer', expected a config attribute; did you mean 'num_layers'?
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from training.tables import closest_hint


def require_one_of(where: str, value: Any, choices: Collection[Any]) -> None:
    """Raises ``ValueError("<where> is <value>, expected one of <choices>")`` unless ``value`` is a choice."""
    if value not in choices:
        raise ValueError(f"{where} is {value!r}, expected one of {choices}{closest_hint(value, choices)}")


def require_at_least(where: str, value: float, minimum: float, expected: str | None = None) -> None:
    """Raises ``ValueError("<where> is <value>, expected <expected>")`` when ``value < minimum``;
    ``expected`` defaults to ``>= <minimum>``."""
    if value < minimum:
        raise ValueError(f"{where} is {value}, expected {expected or f'>= {minimum}'}")


def require_known_keys(where: str, keys: Iterable[Any], known: Collection[Any], expected: str) -> None:
    """Raises ``ValueError("<where> has an unknown key <key>, expected <expected>")``, with the closest
    known key, for the first of ``keys`` not in ``known`` (for mappings passed on to a library, which
    would ignore or misreport the key)."""
    for key in keys:
        if key not in known:
            raise ValueError(f"{where} has an unknown key {key!r}, expected {expected}{closest_hint(key, known)}")
