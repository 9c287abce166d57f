"""Loading a bundle and running it: :func:`load` and :class:`Session`.

Example:
    >>> import fusionrt
    >>> session = fusionrt.load("runs/late_mobilenetv2/bundle")  # doctest: +SKIP
    >>> session.backend  # doctest: +SKIP
    'onnxruntime'
    >>> session.predict(text="what a wonderful film", image="face.png")  # doctest: +SKIP
    Prediction(score=1.83, sentiment='positive', score_text=None, score_image=None, logits=None)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import backends
from .backends import RunOptions
from .bundle import Manifest, read_manifest
from .feeds import FeedChecker
from .graph_io import (
    ATTENTION_MASK, IMAGE, INPUT_IDS, LOGITS, PIXELS, PRESENCE, SCORE, TEXT, output_name,
)
from .preprocessing import ImageLike, TextTokenizer, preprocess_images

log = logging.getLogger("fusionrt")

BACKENDS = ("auto", *backends.NAMES)
#: The graph outputs a :class:`Prediction` carries, each in the field of its name.
PREDICTION_OUTPUTS = (output_name(SCORE), output_name(SCORE, TEXT), output_name(SCORE, IMAGE), output_name(LOGITS))


@dataclass(frozen=True)
class Prediction:
    """One sample's prediction: ``score`` in the manifest's range, ``sentiment`` ("positive" when
    score >= 0, as CMU-MOSI's Has0 binary accuracy), and the branch scores / logits the model outputs
    (each field is named after its graph output, :data:`PREDICTION_OUTPUTS`)."""

    score: float
    sentiment: str
    score_text: float | None = None
    score_image: float | None = None
    logits: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without the fields this model does not output."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Session:
    """A loaded bundle on one backend, device and precision. Safe to call from several threads.

    Create with :func:`load`. ``run`` is the raw graph call; ``predict`` takes raw text and images.
    """

    def __init__(self, root: Path, manifest: Manifest, backend: backends.Backend, precision: str) -> None:
        self.path = root
        self.manifest = manifest
        self.precision = precision
        self._backend = backend
        self._checker = FeedChecker(manifest.inputs, backend.dtype)

    @property
    def backend(self) -> str:
        """The backend's name: "tensorrt", "onnxruntime" or "torch"."""
        return self._backend.name

    @property
    def device(self) -> str:
        """The device the graph runs on ("cpu", "cuda", "cuda:1")."""
        return self._backend.device

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph inputs ``run`` takes (``presence`` may be omitted)."""
        return self._checker.expected

    @property
    def output_names(self) -> tuple[str, ...]:
        """The graph outputs ``run`` returns."""
        return self._backend.output_names

    def __repr__(self) -> str:
        return (
            f"Session({str(self.path)!r}, model={self.manifest.model_name!r}, backend={self.backend!r}, "
            f"device={self.device!r}, precision={self.precision!r})"
        )

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Runs the graph on ``feeds`` (numpy arrays, or torch tensors / DLPack producers the backend
        can use without a copy); returns ``{output name: numpy array}``.

        Feeds are checked against the manifest's input specs: unknown or missing names raise ValueError,
        wrong dtypes TypeError, wrong shapes ValueError. ``presence`` may be omitted (all True).

        Example:
            >>> out = session.run({"input_ids": ids, "attention_mask": mask, "image": image})  # doctest: +SKIP
            >>> out["score"].shape  # doctest: +SKIP
            (1,)
        """
        self._checker.names(feeds)
        adopted = {name: self._backend.adopt(value) for name, value in feeds.items()}
        batch = self._checker.batch_of(adopted)
        if len(adopted) < len(self._checker.expected):
            for name, value in self._checker.defaults(adopted, batch).items():
                adopted[name] = self._backend.adopt(value)
        return self._backend.run(adopted)

    @cached_property
    def _tokenizer(self) -> TextTokenizer:
        return TextTokenizer(self.path / self.manifest.text.tokenizer, self.manifest.text.max_length)

    def predict(
        self,
        text: str | Sequence[str | None] | None = None,
        image: ImageLike | Sequence[ImageLike | None] | None = None,
    ) -> Prediction | list[Prediction]:
        """Predicts sentiment from raw text and images.

        ``text`` is a string or a list of strings; ``image`` a file path, PIL image or HWC uint8 array,
        or a list of them (or an NHWC uint8 array). A single sample gives one :class:`Prediction`, lists
        give a list. Either modality may be missing: ``None``, or ``None`` entries in a list, mark
        those samples' modality absent and the model uses its learned placeholder.

        Example:
            >>> session.predict(text="great", image=None).sentiment  # doctest: +SKIP
            'positive'
            >>> [p.score for p in session.predict(text=["great", None], image=[None, "face.png"])]  # doctest: +SKIP
            [1.2, -0.4]
        """
        texts, images, single = _as_batch(text, image)
        ids, mask, text_present = self._tokenizer(texts)
        pixels, image_present = preprocess_images(images, self.manifest.image)
        feeds = {INPUT_IDS: ids, ATTENTION_MASK: mask, PIXELS: pixels}
        presence = np.stack([text_present, image_present], axis=1)  # in graph_io.MODALITIES order
        if PRESENCE in self.manifest.inputs:
            feeds[PRESENCE] = presence
        elif not presence.all():
            raise ValueError(f"model {self.manifest.model_name!r} has no presence input; give every sample both text and image")
        predictions = _predictions(self.run(feeds))
        return predictions[0] if single else predictions


def _is_batch(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 4)


def _as_batch(text: Any, image: Any) -> tuple[list[Any], list[Any], bool]:
    """Both modalities as equally long lists, and whether the caller gave a single sample."""
    if text is None and image is None:
        raise ValueError("predict needs text, image or both")
    text_batch, image_batch = _is_batch(text), _is_batch(image)
    if not text_batch and not image_batch:
        return [text], [image], True
    size = len(text) if text_batch else len(image)
    if text_batch and image_batch and len(text) != len(image):
        raise ValueError(f"got {len(text)} texts and {len(image)} images, expected as many of each")
    if (not text_batch and text is not None) or (not image_batch and image is not None):
        raise ValueError("give text and image both as lists (use None entries for missing ones), or both single")
    texts = list(text) if text_batch else [None] * size
    images = list(image) if image_batch else [None] * size
    if not texts:
        raise ValueError("predict got empty lists, expected at least one sample")
    return texts, images, False


def _predictions(out: dict[str, np.ndarray]) -> list[Prediction]:
    """One Prediction per sample from the graph outputs."""
    columns = {name: out[name].astype(np.float64).tolist() for name in PREDICTION_OUTPUTS if name in out}
    scores = columns[output_name(SCORE)]
    return [
        Prediction(
            sentiment="positive" if score >= 0 else "negative",
            **{name: column[i] for name, column in columns.items()},
        )
        for i, score in enumerate(scores)
    ]


def load(
    path: str | os.PathLike[str],
    backend: str = "auto",
    device: str | None = None,
    precision: str = "fp32",
    *,
    threads: int | None = None,
    execution: str = "auto",
) -> Session:
    """Loads the bundle at ``path`` and opens it on a backend.

    Args:
        path: bundle directory (validated: manifest fields, format version, every file's hash).
        backend: "auto" (TensorRT when built in and a GPU is usable, else ONNX Runtime, else torch),
            "tensorrt", "onnxruntime" or "torch".
        device: "cpu", "cuda", "cuda:N"; None means "cuda" for TensorRT and "cpu" otherwise.
        precision: one of the bundle's variants ("fp32", "fp16", "int8").
        threads: ONNX Runtime intra-op threads; None means the physical cores this process may use.
        execution: how ONNX Runtime runs late / intermediate fusion's two branches: "sequential",
            "parallel" (ORT_PARALLEL), "branches" (two branch sessions on two threads), or "auto" (the
            mode :func:`~fusionrt.backends.onnxruntime.execution.choose_execution` recorded for this
            bundle and host, else sequential). Other backends take only "auto" / "sequential".

    The settings become one :class:`~fusionrt.backends.options.RunOptions`, validated before the
    bundle is read.

    Raises:
        BundleError: the bundle is missing, incomplete, tampered with or from a newer fusionrt.
        ValueError: unknown backend or execution, a precision the bundle (or backend) does not have, or
            an execution mode the backend or the fusion strategy cannot run.
        RuntimeError: the requested backend cannot run here, saying why.

    Example:
        >>> session = fusionrt.load("bundle", backend="onnxruntime", precision="int8")  # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {list(BACKENDS)}")
    options = RunOptions(device=device, precision=precision, threads=threads, execution=execution)
    root = Path(path)
    manifest = read_manifest(root)
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    if backend == "auto":
        backend, why = backends.choose(manifest, options)
        log.info("fusionrt: backend auto chose %s for %s (%s)", backend, root, why)
    return Session(root, manifest, backends.open_backend(backend, root, manifest, options), precision)
