"""Graph feeds: checking them against the manifest's input :class:`~fusionrt.bundle.TensorSpec` s, and
random ones that fit them (calibration, benchmarks, tests).

Runs on every :meth:`Session.run <fusionrt.session.Session.run>` call, so the specs are compiled once
into plain tuples and the per-call work is a few comparisons per feed. It accepts anything with
``shape`` and ``dtype`` (numpy arrays, torch tensors): dtypes are compared as the backend's dtype
objects, because spelling them per call (``np.dtype.name``) costs more than the rest of the check.

Values are checked too where a backend would otherwise answer wrongly or differently from another
(:meth:`FeedChecker.values`): token ids outside the vocabulary (ONNX Runtime wraps negative ids to the
end of the table), attention masks other than 0/1, and present text with no token at all (an all-masked
softmax, whose result differs between runtimes).

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
from .graph_io import ATTENTION_MASK, INPUT_IDS, MODALITIES, OPTIONAL_INPUTS, PRESENCE, TEXT


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


def host_array(value: Any) -> np.ndarray:
    """A numpy array of ``value``'s elements: numpy as is, CPU torch tensors viewed, device arrays copied."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch, on any device
        return value.detach().cpu().numpy()
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):  # CuPy
        return value.get()
    if hasattr(value, "__dlpack__"):
        return np.from_dlpack(value)
    return np.asarray(value)


def _position(index: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


class FeedChecker:
    """Checks feed names, dtypes and shapes (symbolic dims such as ``"batch"`` must agree across
    feeds), and the values of the text inputs (:meth:`values`)."""

    def __init__(
        self,
        inputs: Mapping[str, TensorSpec],
        native_dtype: Callable[[str], Any] = np.dtype,
        vocab_size: int | None = None,
    ) -> None:
        """``native_dtype`` maps a numpy dtype name to the dtype objects the feeds will carry;
        ``vocab_size`` bounds ``input_ids`` (None: ids are not range-checked)."""
        self.expected = tuple(inputs)
        self.vocab_size = vocab_size
        self._presence_text = MODALITIES.index(TEXT) if PRESENCE in inputs else None
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

    def values(self, feeds: Mapping[str, Any]) -> None:
        """Checks the text inputs' values (names, dtypes and shapes already checked), so no backend
        answers for ids or masks the graph does not define, and all backends answer alike:

        * ``input_ids`` in ``[0, vocab_size)``, in every row (absent text's too: a runtime may index
          the embedding table before ``presence`` discards the row),
        * ``attention_mask`` entries 0 or 1,
        * at least one 1 in the mask of every row whose text is present; absent text is marked by
          ``presence`` False, which makes the model ignore that row's ids and mask.

        Raises ValueError naming the feed, the value, its ``[row, column]`` and what is allowed. The
        checks are two reductions per feed on the host (device feeds are copied: they are small).
        """
        ids = feeds.get(INPUT_IDS)
        if ids is not None and self.vocab_size is not None and ids.shape[0]:
            ids = host_array(ids)
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                where = tuple(np.argwhere((ids < 0) | (ids >= self.vocab_size))[0])
                raise ValueError(
                    f"feed {INPUT_IDS!r} has token id {int(ids[where])} at {_position(where)}, expected ids in "
                    f"[0, {self.vocab_size}) (the model's vocabulary has {self.vocab_size} tokens)"
                )
        mask = feeds.get(ATTENTION_MASK)
        if mask is None or not mask.shape[0]:
            return
        mask = host_array(mask)
        if mask.min() < 0 or mask.max() > 1:
            where = tuple(np.argwhere((mask != 0) & (mask != 1))[0])
            raise ValueError(
                f"feed {ATTENTION_MASK!r} has {int(mask[where])} at {_position(where)}, expected 0 (padding) or 1 (token)"
            )
        empty = ~mask.any(axis=1)
        presence = feeds.get(PRESENCE)
        if self._presence_text is not None and presence is not None:
            empty &= host_array(presence)[:, self._presence_text]
        if empty.any():
            row = int(np.argmax(empty))
            absent = (
                f"mark absent text with presence[{row}, {self._presence_text}] = False (the model then ignores "
                "its input_ids and attention_mask)"
                if self._presence_text is not None
                else "this model has no presence input, so every sample needs text"
            )
            raise ValueError(
                f"feed {ATTENTION_MASK!r} row {row} has no 1 (no token) but its text is present; expected at "
                f"least one token per present text: {absent}"
            )

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
