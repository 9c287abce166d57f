"""Tables of named parts (models, fusion operators, strategies, experiments): registering, looking up.

Where a name from a config picks a class or a recipe, the choice is a table lookup, as in timm's
registries, never an ``if name == ...`` chain: a new part is one :func:`register` call, and every
unknown name gets the same error, listing the valid names and suggesting the closest one.

Example:
    >>> SHAPES: dict[str, type] = {}
    >>> @register(SHAPES, "square", "shape")
    ... class Square: ...
    >>> lookup(SHAPES, "squre", "shape")
    Traceback (most recent call last):
      ...
    training.tables.UnknownNameError: unknown shape 'squre', expected one of ['square']; did you mean 'square'?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name that is not in its table. A ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad
    config value), so callers catching either keep working."""

    def __str__(self) -> str:  # KeyError's own would quote the whole message
        return str(self.args[0])


def closest_hint(name: Any, valid: Collection[Any]) -> str:
    """``"; did you mean 'x'?"`` for the valid name closest to ``name``, or ``""`` when none is close."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, [v for v in valid if isinstance(v, str)], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``, or an :class:`UnknownNameError` saying which ``what`` was unknown and the valid names."""
    try:
        return table[name]
    except KeyError:
        valid = sorted(table)
        raise UnknownNameError(f"unknown {what} {name!r}, expected one of {valid}{closest_hint(name, valid)}") from None


def register(table: dict[str, T], name: str, what: str) -> Callable[[T], T]:
    """A decorator putting what it decorates into ``table`` under ``name``; a name taken twice is an error."""

    def wrap(item: T) -> T:
        if name in table:
            raise ValueError(f"{what} {name!r} is already registered")
        table[name] = item
        return item

    return wrap
