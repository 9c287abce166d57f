"""Graph feeds: checking them against the manifest's input :class:`~fusionrt.bundle.TensorSpec` s, and
random ones that fit them (calibration, benchmarks, tests).

Runs on every :meth:`Session.run <fusionrt.session.Session.run>` call, so the specs are compiled once
into plain tuples and the per-call work is a few comparisons per feed. It accepts anything with
``shape`` and ``dtype`` (numpy arrays, torch tensors): dtypes are compared as the backend's dtype
objects, because spelling them per call (``np.dtype.name``) costs more than the rest of the check.

Example:
    >>> check = FeedChecker({"image": TensorSpec("float32", ["batch", 3, 32, 32])})  # doctest: +SKIP
    >>> feeds = {"image": np.zeros((2, 3, 32, 32), np.float32)}  # doctest: +SKIP
    >>> check.names(feeds); check.batch_of(feeds)  # doctest: +SKIP
    2
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .bundle import Manifest, TensorSpec
from .graph_io import ATTENTION_MASK, INPUT_IDS, OPTIONAL_INPUTS


def dtype_name(value: Any) -> str:
    """The numpy spelling of ``value.dtype`` (``float32``, ``int64``, ``bool``) for numpy and torch alike."""
    dtype = value.dtype
    if isinstance(dtype, np.dtype):
        return dtype.name
    return str(dtype).removeprefix("torch.")


def _spelled(shape: Iterable[int | str]) -> str:
    """``(batch, 3, 32, 32)``, the way shapes appear in error messages."""
    dims = tuple(shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


class FeedChecker:
    """Checks feed names, dtypes and shapes; symbolic dims (``"batch"``) must agree across feeds."""

    def __init__(self, inputs: Mapping[str, TensorSpec], native_dtype: Callable[[str], Any] = np.dtype) -> None:
        """``native_dtype`` maps a numpy dtype name to the dtype objects the feeds will carry."""
        self.expected = tuple(inputs)
        self.required = frozenset(name for name in inputs if name not in OPTIONAL_INPUTS)
        self._all = frozenset(inputs)
        # Per input: name, dtype name, native dtype, dims, (index, symbol) and (index, size) pairs, so a
        # call loops over the few dims that need a check instead of testing each dim's kind.
        self._specs = tuple(
            (
                name,
                spec.dtype,
                native_dtype(spec.dtype),
                tuple(spec.shape),
                tuple((i, d) for i, d in enumerate(spec.shape) if isinstance(d, str)),
                tuple((i, d) for i, d in enumerate(spec.shape) if not isinstance(d, str)),
            )
            for name, spec in inputs.items()
        )

    def names(self, feeds: Mapping[str, Any]) -> None:
        """Raises ValueError naming unknown and missing feeds, and listing the expected ones."""
        given = feeds.keys()
        if given == self._all or given == self.required:
            return
        unknown = given - self._all
        missing = self.required - given
        if unknown or missing:
            problems = [f"unknown feed(s) {sorted(unknown)}"] if unknown else []
            problems += [f"missing feed(s) {sorted(missing)}"] if missing else []
            raise ValueError(f"{' and '.join(problems)}; expected {list(self.expected)}")

    def batch_of(self, feeds: Mapping[str, Any]) -> int:
        """Checks dtypes and shapes of ``feeds`` (names already checked); returns the batch size.

        Raises TypeError for a wrong dtype and ValueError for a wrong shape, e.g. ``feed 'image' has
        shape (1, 3, 64, 64), expected (batch, 3, 32, 32)``.
        """
        symbols: dict[str, tuple[int, str]] = {}
        for name, dtype, native, dims, symbolic, fixed in self._specs:
            value = feeds.get(name)
            if value is None:
                continue
            if value.dtype != native:
                raise TypeError(f"feed {name!r} is {dtype_name(value)}, expected {dtype}")
            shape = value.shape
            if len(shape) != len(dims):
                raise ValueError(f"feed {name!r} has shape {_spelled(shape)}, expected {_spelled(dims)}")
            for i, size in fixed:
                if shape[i] != size:
                    raise ValueError(f"feed {name!r} has shape {_spelled(shape)}, expected {_spelled(dims)}")
            for i, symbol in symbolic:
                seen = symbols.setdefault(symbol, (shape[i], name))
                if seen[0] != shape[i]:
                    raise ValueError(
                        f"feed {name!r} has {symbol} {shape[i]}, expected {seen[0]} (the {symbol} of feed {seen[1]!r})"
                    )
        return symbols["batch"][0] if "batch" in symbols else 1

    def defaults(self, given: Iterable[str], batch: int) -> dict[str, np.ndarray]:
        """Numpy values for the optional inputs not in ``given`` (``presence`` → all True)."""
        return {
            name: np.full((batch, *dims[1:]), OPTIONAL_INPUTS[name], dtype=dtype)
            for name, dtype, _, dims, _, _ in self._specs
            if name in OPTIONAL_INPUTS and name not in given
        }


def random_feeds(
    manifest: Manifest, batch: int, rng: np.random.Generator | int = 0, presence_probability: float = 1.0
) -> dict[str, np.ndarray]:
    """Random graph feeds of ``batch`` samples in the manifest's input specs.

    Token ids stay below 1000 (inside any real vocabulary) and every token is real (mask all ones); each
    modality is present with ``presence_probability`` (1: every modality present).

    Example:
        >>> feeds = random_feeds(manifest, batch=2, rng=0)  # doctest: +SKIP
        >>> FeedChecker(manifest.inputs).batch_of(feeds)  # doctest: +SKIP
        2
    """
    rng = np.random.default_rng(rng)
    feeds = {}
    for name, spec in manifest.inputs.items():
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if spec.dtype == "bool":
            feeds[name] = rng.random(shape) < presence_probability
        elif name == INPUT_IDS:
            feeds[name] = rng.integers(0, 1000, shape).astype(spec.dtype)
        elif name == ATTENTION_MASK:
            feeds[name] = np.ones(shape, spec.dtype)
        else:
            feeds[name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds
