"""What the served Python models do with a batch of requests, free of Triton's API so it can be read
and tested alone. A request is ``{input name: array}`` (absent optional inputs missing); each answer is
``{output name: array}`` or the exception that request earned: one bad request fails alone.

Example:
    >>> handler = BundleHandler("bundle", backend="onnxruntime")  # doctest: +SKIP
    >>> handler([{"text": np.array([[b"great"]], dtype=object)}])[0]["score"].shape  # doctest: +SKIP
    (1, 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..bundle import bundle_file, read_manifest
from ..preprocessing import TextTokenizer, raw_feeds
from ..session import load
from .protocol import IMAGE_ARRAY_INPUT, IMAGE_INPUT, TEXT_INPUT, images_of, output_columns, served_outputs, texts_of

Request = Mapping[str, np.ndarray]

#: The errors a request can cause (bad input); anything else is the server's fault and propagates.
REQUEST_ERRORS = (ValueError, TypeError)


def _batch_of(request: Request) -> int:
    sizes = {name: int(np.shape(value)[0]) for name, value in request.items() if np.ndim(value) >= 1}
    if not sizes:
        raise ValueError(f"request has none of the inputs {[TEXT_INPUT, IMAGE_INPUT, IMAGE_ARRAY_INPUT]}, expected at least one")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"request inputs have different batch sizes {sizes}, expected one")
    return next(iter(sizes.values()))


def decode(request: Request) -> tuple[list[str | None], list[Any]]:
    """``(texts, images)`` of one request, one entry per sample (None: that modality is absent)."""
    unknown = set(request) - {TEXT_INPUT, IMAGE_INPUT, IMAGE_ARRAY_INPUT}
    if unknown:
        raise ValueError(f"request has unknown inputs {sorted(unknown)}, expected {[TEXT_INPUT, IMAGE_INPUT, IMAGE_ARRAY_INPUT]}")
    batch = _batch_of(request)
    texts = texts_of(request.get(TEXT_INPUT), batch)
    images = images_of(request.get(IMAGE_INPUT), request.get(IMAGE_ARRAY_INPUT), batch)
    return texts, images


def _answer_each(requests: Sequence[Request], run: Any) -> list[Any]:
    """Runs ``run(texts, images)`` once over every decodable request (Triton's dynamic batch) and splits
    its columns back per request; when the joint call fails on input, each request runs alone, so
    only the bad ones get errors."""
    answers: list[Any] = [None] * len(requests)
    decoded: dict[int, tuple[list, list]] = {}
    for i, request in enumerate(requests):
        try:
            decoded[i] = decode(request)
        except REQUEST_ERRORS as error:
            answers[i] = error
    if not decoded:
        return answers
    texts = [t for i in decoded for t in decoded[i][0]]
    images = [m for i in decoded for m in decoded[i][1]]
    try:
        columns = run(texts, images)
    except REQUEST_ERRORS:
        for i, (t, m) in decoded.items():
            try:
                answers[i] = run(t, m)
            except REQUEST_ERRORS as error:
                answers[i] = error
        return answers
    start = 0
    for i, (t, _) in decoded.items():
        answers[i] = {name: column[start:start + len(t)] for name, column in columns.items()}
        start += len(t)
    return answers


class BundleHandler:
    """The whole-bundle model: ``fusionrt.load`` once, then ``Session.predict`` per batch of requests."""

    def __init__(self, bundle: str | os.PathLike[str], backend: str = "auto", precision: str = "fp32",
                 threads: int | None = None) -> None:
        self.session = load(bundle, backend=backend, precision=precision, threads=threads)
        self.outputs = served_outputs(self.session.output_names)

    def _run(self, texts: list[str | None], images: list[Any]) -> dict[str, np.ndarray]:
        return output_columns(self.session.predict(text=texts, image=images), self.outputs)

    def __call__(self, requests: Sequence[Request]) -> list[Any]:
        """One answer per request, in order."""
        return _answer_each(requests, self._run)


class PreprocessHandler:
    """The ensemble's first step: raw text and images to the graph's inputs, as the manifest says."""

    def __init__(self, bundle: str | os.PathLike[str]) -> None:
        self.manifest = read_manifest(bundle, verify_hashes=False)
        path = bundle_file(bundle, self.manifest.text.tokenizer, "manifest.text.tokenizer")
        self.tokenizer = TextTokenizer(path, self.manifest.text.max_length)

    def _run(self, texts: list[str | None], images: list[Any]) -> dict[str, np.ndarray]:
        return raw_feeds(self.manifest, self.tokenizer(texts), images)  # the feeds Session.predict builds

    def __call__(self, requests: Sequence[Request]) -> list[Any]:
        """One answer per request, in order."""
        return _answer_each(requests, self._run)
