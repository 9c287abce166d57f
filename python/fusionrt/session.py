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
from pathlib import Path
from typing import Any

import numpy as np

from . import backends
from .absent import AbsentPath, absent_modality, open_absent_path
from .backends import RunOptions
from .bundle import BundleError, Manifest, bundle_file, read_manifest, verify_files
from .feeds import FeedChecker
from .graph_io import (
    IMAGE, INPUT_IDS, LOGITS, PRESENCE, SCORE, TEXT, output_name,
)
from .preprocessing import ImageLike, TextTokenizer, feeds_besides_image, raw_feeds, rgb_array

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

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        backend: backends.Backend,
        precision: str,
        tokenizer: TextTokenizer | None = None,
        vocab_size: int | None = None,
        absent_path: AbsentPath | None = None,
    ) -> None:
        """``tokenizer`` None: the bundle ships none (``predict`` then takes images only); ``vocab_size``
        None: ``input_ids`` are not range-checked (a bundle whose vocabulary cannot be known);
        ``absent_path``: runs batches with one modality absent throughout without its backbone
        (:mod:`fusionrt.absent`; None: the whole graph runs)."""
        self.path = root
        self.manifest = manifest
        self.precision = precision
        self.vocab_size = vocab_size
        self._backend = backend
        self._tokenizer = tokenizer
        self._checker = FeedChecker(manifest.inputs, backend.dtype, vocab_size)
        self._absent_path = absent_path

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

        Edge inputs behave the same on every backend:

        * **Token ids** outside ``[0, vocab_size)`` raise ValueError naming the id and its position
          (ONNX Runtime would wrap a negative id to the end of the table and answer).
        * **Attention mask** entries other than 0 / 1 raise ValueError, and so does a row with no 1
          whose text is present: mark absent text with ``presence`` False instead (``predict`` does),
          which the model answers alike everywhere. An all-masked softmax has no defined answer, and
          ONNX Runtime and torch give different ones.
        * **Batch 0** returns empty outputs of the graph's dtypes and shapes (``(0,)``, ``(0, classes)``)
          without calling the backend: not every backend runs an empty batch (torch's program fails).
        * **Strides**: non-contiguous and negative-stride feeds give the contiguous copy's answer;
          a backend that needs contiguous memory copies them (a cost, not an error).
        * **Absent modality**: when ``presence`` marks one modality absent in every sample, late,
          intermediate and decision fusion run only the present backbone and the head, on every backend
          (:mod:`fusionrt.absent`), with the same outputs as the whole graph.

        Example:
            >>> out = session.run({"input_ids": ids, "attention_mask": mask, "image": image})  # doctest: +SKIP
            >>> out["score"].shape  # doctest: +SKIP
            (1,)
        """
        self._checker.names(feeds)
        adopted = {name: self._backend.adopt(value) for name, value in feeds.items()}
        batch = self._checker.batch_of(adopted)
        if batch == 0:
            return self._empty_outputs()
        if len(adopted) < len(self._checker.expected):
            for name, value in self._checker.defaults(adopted, batch).items():
                adopted[name] = self._backend.adopt(value)
        self._checker.values(adopted)
        if self._absent_path is not None:
            absent = absent_modality(adopted.get(PRESENCE))
            if absent is not None:
                out = self._absent_path.run(adopted, absent)
                if out is not None:
                    return out
        return self._backend.run(adopted)

    def _empty_outputs(self) -> dict[str, np.ndarray]:
        """What ``run`` returns for batch 0: each output of the graph's dtype and shape, with no rows."""
        specs = self.manifest.outputs
        return {
            name: np.empty(tuple(0 if isinstance(d, str) else d for d in specs[name].shape), specs[name].dtype)
            for name in self.output_names
        }

    def _text_feeds(self, texts: list[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask, present)`` of ``texts``, as :class:`TextTokenizer` gives them."""
        if self._tokenizer is not None:
            return self._tokenizer(texts)
        if any(t is not None for t in texts):
            raise ValueError(f"bundle {self.path} ships no tokenizer, so predict takes images only; run takes token ids")
        # Absent text, as the tokenizer makes it: zero ids under a mask of ones, presence False.
        shape = (len(texts), self.manifest.text.max_length)
        return np.zeros(shape, np.int64), np.ones(shape, np.int64), np.zeros(len(texts), bool)

    def predict(
        self,
        text: str | Sequence[str | None] | None = None,
        image: ImageLike | Sequence[ImageLike | None] | None = None,
        *,
        video: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | None] | None = None,
    ) -> Prediction | list[Prediction]:
        """Predicts sentiment from raw text and images (or video clips).

        ``text`` is a string or a list of strings; ``image`` a file path, PIL image or HWC uint8 array,
        or a list of them (or an NHWC uint8 array). A single sample gives one :class:`Prediction`, lists
        give a list (empty lists give ``[]``). Either modality may be missing: ``None``, or ``None``
        entries in a list, mark those samples' modality absent and the model uses its learned placeholder.

        ``video`` (instead of ``image``) is a clip path or a list of them: each clip becomes the image
        the way training made one of a clip, as the bundle's ``manifest.image.frame_sampling`` records
        (:func:`fusionrt.video.clip_image`; needs ``pip install fusionrt[video]``). A bundle that records
        no frame sampling takes no video (ValueError).

        Example:
            >>> session.predict(text="great", image=None).sentiment  # doctest: +SKIP
            'positive'
            >>> [p.score for p in session.predict(text=["great", None], image=[None, "face.png"])]  # doctest: +SKIP
            [1.2, -0.4]
        """
        if video is not None:
            if image is not None:
                raise ValueError("give image or video, not both: a clip becomes the sample's image")
            image = self._clip_images(video)
        texts, images, single = _as_batch(text, image)
        if not texts:
            return []
        predictions = _predictions(self._run_raw(self._text_feeds(texts), images))
        return predictions[0] if single else predictions

    def _run_raw(self, text: tuple[np.ndarray, np.ndarray, np.ndarray], images: list[Any]) -> dict[str, np.ndarray]:
        """The graph's outputs for tokenized ``text`` and raw ``images`` (None: absent). A backend that makes
        the image input on its device (:class:`~fusionrt.backends.base.RunsImages`: TensorRT pre-processes
        on the GPU) gets the decoded uint8 frames; otherwise, and for a batch the absent-modality path takes
        (it runs host feeds), the images are pre-processed here, on the host."""
        run_images = getattr(self._backend, "run_images", None)
        if run_images is not None:
            images = [None if image is None else rgb_array(image) for image in images]  # decoded once
            feeds = feeds_besides_image(self.manifest, text, np.array([i is not None for i in images], dtype=bool))
            if self._absent_path is None or absent_modality(feeds.get(PRESENCE)) is None:
                # Names, dtypes and shapes are the tokenizer's by construction; the ids must still fit the vocabulary.
                self._checker.values(feeds)
                return run_images(feeds, images, self.manifest.image)
        return self.run(raw_feeds(self.manifest, text, images))

    def _clip_images(self, video: Any) -> Any:
        """Each clip of ``video`` (a path or a list, None entries kept) as the image training made of it."""
        from .video import FrameSampling, clip_image

        recorded = self.manifest.image.frame_sampling
        if recorded is None:
            raise ValueError(
                f"bundle {self.path} records no frame sampling (manifest.image.frame_sampling), so it takes no "
                "video: export it again from its checkpoint, or give frames as image="
            )
        sampling = FrameSampling(recorded.mode, recorded.num_frames, tuple(self.manifest.image.size))
        if isinstance(video, (list, tuple)):
            return [None if clip is None else clip_image(clip, sampling) for clip in video]
        return clip_image(video, sampling)


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
        backend: "auto" (the first of TensorRT, ONNX Runtime, torch that can run the bundle on
            ``device`` here; each one passed over is logged with its reason), "tensorrt",
            "onnxruntime" or "torch".
        device: "cpu", "cuda", "cuda:N", or "meta" (torch: loads the program without values, to check
            the device move); None means "cuda" for TensorRT and "cpu" otherwise.
        precision: one of the bundle's variants ("fp32", "fp16", "int8").
        threads: ONNX Runtime intra-op threads; None means the physical cores this process may use.
        execution: how ONNX Runtime runs late / intermediate fusion's two branches: "sequential",
            "parallel" (ORT_PARALLEL), "branches" (two branch sessions on two threads), or "auto" (the
            mode :func:`~fusionrt.backends.onnxruntime.execution.choose_execution` recorded for this
            bundle and host, else sequential). Other backends take only "auto" / "sequential".

    The settings become one :class:`~fusionrt.backends.options.RunOptions`, validated before the
    bundle is read.

    Raises:
        BundleError: the bundle is missing, incomplete, tampered with or from a newer fusionrt, or its
            tokenizer file is not a valid tokenizers file (loaded here, not at the first predict).
        ValueError: unknown backend, execution or malformed device, a precision the bundle (or backend)
            does not have, or an execution mode the backend or the fusion strategy cannot run.
        RuntimeError: the requested backend cannot run here (e.g. a device it cannot use), saying why;
            for "auto", no backend can, with each one's reason.

    Example:
        >>> session = fusionrt.load("bundle", backend="onnxruntime", precision="int8")  # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {list(BACKENDS)}")
    options = RunOptions(device=device, precision=precision, threads=threads, execution=execution)
    root = Path(path)
    manifest = read_manifest(root, verify_hashes=False)  # structure, paths and presence; hashes below
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    if backend == "auto":
        backend, why = backends.choose(manifest, options)
        log.info("fusionrt: backend auto chose %s for %s (%s)", backend, root, why)
    # Only what this session reads is hashed; `fusionrt verify` checks every file.
    tokenizer_file = [manifest.text.tokenizer] if manifest.text.tokenizer in manifest.files else []
    verify_files(root, manifest, [*backends.files(backend, manifest, options), *tokenizer_file])
    tokenizer = _open_tokenizer(root, manifest)
    vocab_size = _vocab_size(root, manifest, tokenizer)
    opened = backends.open_backend(backend, root, manifest, options)
    absent_path = open_absent_path(root, manifest, precision, opened)
    return Session(root, manifest, opened, precision, tokenizer, vocab_size, absent_path)


def _open_tokenizer(root: Path, manifest: Manifest) -> TextTokenizer | None:
    """The bundle's tokenizer, loaded now so a corrupt file fails ``load`` (a BundleError naming the file
    and the field), not the first ``predict``; None when the bundle ships none (``read_manifest`` allows
    that, and then the ``tokenizers`` package is never imported)."""
    where = "manifest.text.tokenizer"
    name = manifest.text.tokenizer
    path = bundle_file(root, name, where)
    if not path.exists():
        return None
    try:
        return TextTokenizer(path, manifest.text.max_length)
    except ImportError:
        raise
    except Exception as error:  # tokenizers raises bare Exception for unreadable, non-JSON or wrong-schema files
        raise BundleError(f"bundle file {name} ({where}) is not a valid tokenizers file: {error}") from None


def _vocab_size(root: Path, manifest: Manifest, tokenizer: TextTokenizer | None) -> int | None:
    """How many token ids the graph takes: ``manifest.text.vocab_size`` (the exporter records the
    embedding table's rows); for bundles written before, the tokenizer's vocabulary (added tokens
    included: every id it makes), which equals the table's rows in a consistent bundle and is loaded
    anyway; without a tokenizer, the rows of the fp32 graph's word-embedding table."""
    if manifest.text.vocab_size is not None:
        return manifest.text.vocab_size
    if tokenizer is not None:
        return tokenizer.vocab_size
    size = _graph_vocab_size(bundle_file(root, manifest.variants["fp32"].onnx, "manifest.variants.fp32.onnx"))
    if size is None:
        log.warning("fusionrt: %s records no text.vocab_size and has no tokenizer; input_ids are not range-checked", root)
    return size


def _graph_vocab_size(model: Path) -> int | None:
    """Rows of the initializer that the Gather on ``input_ids`` indexes (the word embeddings), or None
    when onnx is not installed or the graph has no such node."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(model), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == INPUT_IDS:
            dims = shapes.get(node.input[0])
            if dims:
                return int(dims[0])
    return None
