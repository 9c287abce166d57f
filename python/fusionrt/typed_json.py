"""Parsing untrusted JSON into dataclasses, checking every field against its type hint.

A manifest, a record or a request arrives from elsewhere: a boolean where an integer belongs, a
string where a list belongs or a misspelled key must fail at the door with a message that names the
field's path, not later as an ``AttributeError`` inside a library. :func:`parse` walks a dataclass's
type hints (``int``, ``float``, ``str``, ``bool``, ``list[X]``, ``dict[str, X]``, ``X | None``,
nested dataclasses, ``Any``) and raises ``TypeError`` / ``KeyError``-free :class:`SchemaError`\\ s.

Example:
    >>> @dataclasses.dataclass
    ... class Text:
    ...     max_length: int = 64
    >>> parse(Text, {"max_length": True}, "text")
    Traceback (most recent call last):
    SchemaError: text.max_length is a bool (True), expected an integer
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


class SchemaError(ValueError):
    """A JSON value does not have the shape a dataclass field declares; the message names the field."""


def parse(cls: type[T], data: Any, where: str) -> T:
    """``cls(**data)`` after checking ``data`` against ``cls``'s fields: a JSON object, no unknown keys
    (the closest valid one is suggested), every required key present, every value of its hinted type.
    ``where`` names the object in messages (``"manifest.image"``)."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where} is {_describe(data)}, expected a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SchemaError(f"{where} has an unknown field {key!r}{hint}; expected fields: {sorted(fields)}")
    hints = _hints(cls)
    values = {}
    for name, spec in fields.items():
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where} lacks the field {name!r}")
            continue
        values[name] = _value(data[name], hints[name], f"{where}.{name}")
    return cls(**values)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _value(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _value(value, option, where)
            except SchemaError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise SchemaError(f"{where} is {_describe(value)}, expected {' or '.join(_name(a) for a in args)}")
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where} is {_describe(value)}, expected a list")
        return [_value(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} is {_describe(value)}, expected a JSON object")
        return {key: _value(item, args[1], f"{where}.{key}") for key, item in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{where} is {_describe(value)}, expected true or false")
        return value
    if hint is int:
        # bool is an int subclass in Python, but a JSON true is not a count or a version.
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"{where} is {_describe(value)}, expected an integer")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SchemaError(f"{where} is {_describe(value)}, expected a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{where} is {_describe(value)}, expected a string")
        return value
    raise TypeError(f"typed_json cannot check {where}'s type {hint!r}")  # a programming error, not bad data


def _describe(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text if len(text) <= 40 else text[:37] + '...'})"


def _name(hint: Any) -> str:
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))
