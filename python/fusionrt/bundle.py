"""The bundle: the one artifact between training and deployment, and its ``manifest.json``.

A bundle is a directory::

    manifest.json          this module's Manifest
    model.onnx             fp32, standard ONNX ops (ONNX Runtime, TensorRT)
    model.plugins.onnx     the same graph with fusionrt plugin nodes (TensorRT + libfusionrt_plugins.so)
    model.fp16.onnx        precision carried by the graph (strongly typed TensorRT 11)
    model.int8.onnx        Q/DQ nodes, symmetric int8 activations (TensorRT 10/11 INT8)
    model.int8.ort.onnx    Q/DQ nodes, uint8 activations on weight MatMuls and conv stacks (ONNX Runtime on CPU)
    model.weights          (format 3) the fp32 weights, once: both fp32 graphs' external data and the torch
                           program's state; model.int8.weights / model.fp16.weights the same per precision,
                           less (format 4) the tensors equal to fp32 ones, which they read from model.weights
    model.pt2              torch.export program (the torch backend), without weights from format 3 on
    tokenizer.json         Hugging Face tokenizers file
    engines/               TensorRT engines built on a device, keyed by GPU, TensorRT version, precision

Writers build the directory under a temporary name beside the target and rename it into place
(:func:`fusionrt.atomic.atomic_directory`), so a bundle is either complete or absent. Readers call
:func:`read_manifest`, which validates the format version, the fields and every file's hash.

Example:
    >>> manifest = read_manifest("runs/late_mobilenetv2/bundle")  # doctest: +SKIP
    >>> manifest.variants["int8"].metrics["Has0_acc_2"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .typed_json import SchemaError, parse

# 2: a variant may name a separate graph for ONNX Runtime (``onnxruntime_onnx``).
# 3: lean bundles: a variant's graphs keep their weights in one shared file (``weights``, ONNX external
#    data), the torch program carries none, and ``targets`` says which runtimes the bundle serves (the
#    files of the others may be absent). Bundles of versions 1 and 2 load as before.
# 4: a tensor equal across precisions is stored once: an int8 / fp16 graph reads it from the fp32
#    weights file (the variant's ``shared_weights``). Format 3 bundles load as before.
FORMAT_VERSION = 4
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")
#: Each precision's weights file in a lean bundle (format 3), shared by that precision's graphs.
WEIGHTS_FILES = {"fp32": "model.weights", "fp16": "model.fp16.weights", "int8": "model.int8.weights"}
#: The runtimes a bundle can serve (``Manifest.targets``), the backends' names.
RUNTIMES = ("tensorrt", "onnxruntime", "torch")


#: dtype names (numpy spelling) a graph input or output may have.
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
CHANNEL_ORDERS = ("RGB", "BGR")


class BundleError(ValueError):
    """A bundle is missing, incomplete, tampered with, malformed, or from a newer fusionrt."""


@dataclass
class TensorSpec:
    """One graph input or output: dtype name (numpy spelling) and shape, ``"batch"`` for the dynamic axis."""

    dtype: str
    shape: list[int | str]
    description: str = ""


@dataclass
class TextSpec:
    """How raw text becomes ``input_ids`` / ``attention_mask``, and which ids the graph takes.

    ``vocab_size`` is the rows of the graph's word-embedding table: ``input_ids`` must lie in
    ``[0, vocab_size)``. None in bundles written before it was recorded; the Session then takes it
    from the tokenizer file, else from the graph (:func:`fusionrt.session.load`).
    """

    tokenizer: str = "tokenizer.json"
    max_length: int = 64
    vocab_size: int | None = None


@dataclass
class FrameSamplingSpec:
    """How training turned a video clip into one image (:class:`fusionrt.video.FrameSampling`, at
    ``image.size``): ``"middle"`` frame, or ``num_frames`` frames ``"uniform"`` ly spread and averaged."""

    mode: str = "middle"
    num_frames: int = 1


@dataclass
class ImageSpec:
    """How a raw image becomes the ``image`` input: RGB, resized to ``size``, scaled to [0, 1],
    normalised with ``mean`` / ``std``, laid out as NCHW. ``frame_sampling``: how a clip became the
    image in training, which ``predict(video=...)`` repeats (None: not recorded, no video input)."""

    size: list[int] = field(default_factory=lambda: [224, 224])
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    channel_order: str = "RGB"
    layout: str = "NCHW"
    interpolation: str = "bilinear"
    frame_sampling: FrameSamplingSpec | None = None


@dataclass
class OutputSpec:
    """What the ``score`` output means: sentiment in ``score_range``; >= 0 is positive (CMU-MOSI)."""

    score_range: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    classes: list[str] = field(default_factory=list)


@dataclass
class Variant:
    """One precision of the graph: its ONNX files and the metrics measured on it at export.

    ``onnx`` is the graph TensorRT builds from; ``onnxruntime_onnx`` a graph of the same precision
    shaped for ONNX Runtime's CPU kernels where that differs (int8), which ``metrics`` are measured on.
    ``weights`` (format 3) the one file all of them read their weights from (:mod:`fusionrt.weights`);
    None where the graphs hold their weights themselves. ``shared_weights`` (format 4) another
    precision's weights file they also read, for the tensors equal to that precision's (an int8 graph's
    float embedding table is the fp32 one); None where they read only their own.
    """

    onnx: str
    plugins_onnx: str | None = None
    onnxruntime_onnx: str | None = None
    weights: str | None = None
    shared_weights: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def weights_files(self) -> tuple[str, ...]:
        """Every file this variant's graphs may read external data from: the only ones a graph of it may
        name (:func:`fusionrt.weights.check_graph_data`), and the ones a runtime running it reads."""
        return tuple(name for name in (self.weights, self.shared_weights) if name is not None)

    @property
    def onnxruntime_file(self) -> str:
        """The graph ONNX Runtime runs for this precision."""
        return self.onnxruntime_onnx or self.onnx


@dataclass
class Manifest:
    """Everything a deployment needs to know about a bundle without running Python training code."""

    model_name: str
    strategy: str
    config: dict[str, Any]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    text: TextSpec
    image: ImageSpec
    output: OutputSpec
    variants: dict[str, Variant]
    torch_program: str | None = None
    #: The runtimes whose files the bundle ships (``export --targets``, ``fusionrt pack``); bundles before
    #: format 3 ship every runtime's.
    targets: list[str] = field(default_factory=lambda: list(RUNTIMES))
    metrics: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 hex
    fusionrt_version: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parses and validates a manifest dict; raises :class:`BundleError` naming the field that is wrong."""
        if not isinstance(data, dict):
            raise BundleError(f"manifest is a {type(data).__name__}, expected a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"manifest has format_version {version!r}, expected an integer >= 1")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {version} is newer than this fusionrt reads ({FORMAT_VERSION}); "
                "upgrade fusionrt"
            )
        try:
            manifest = parse(cls, data, "manifest")
        except SchemaError as error:
            raise BundleError(f"manifest is malformed: {error}") from None
        manifest.check()
        return manifest

    def check(self) -> None:
        """Checks the values a type cannot express; raises :class:`BundleError` naming the field."""
        unknown = set(self.variants) - set(PRECISIONS)
        if unknown or "fp32" not in self.variants:
            raise BundleError(
                f"manifest variants are {sorted(self.variants)}, expected 'fp32' and optionally 'fp16' / 'int8'"
            )
        for group, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            for name, spec in specs.items():
                _check_tensor_spec(spec, f"manifest.{group}.{name}")
        if self.text.max_length < 1:
            raise BundleError(f"manifest.text.max_length is {self.text.max_length}, expected >= 1")
        if self.text.vocab_size is not None and self.text.vocab_size < 1:
            raise BundleError(f"manifest.text.vocab_size is {self.text.vocab_size}, expected >= 1 (or absent)")
        image = self.image
        if len(image.size) != 2 or min(image.size) < 1:
            raise BundleError(f"manifest.image.size is {image.size}, expected [height, width], both >= 1")
        if image.channel_order not in CHANNEL_ORDERS:
            raise BundleError(f"manifest.image.channel_order is {image.channel_order!r}, expected one of {list(CHANNEL_ORDERS)}")
        channels = len(image.channel_order)
        for name, values in (("mean", image.mean), ("std", image.std)):
            if len(values) != channels:
                raise BundleError(f"manifest.image.{name} has {len(values)} values, expected {channels} (one per channel)")
        if min(image.std) <= 0:
            raise BundleError(f"manifest.image.std is {image.std}, expected every value > 0")
        if image.frame_sampling is not None:
            from .video import FrameSampling

            try:
                FrameSampling(image.frame_sampling.mode, image.frame_sampling.num_frames, tuple(image.size))
            except ValueError as error:
                raise BundleError(f"manifest.image.frame_sampling: {error}") from None
        for where, name in self.named_paths():
            _check_relative(name, where)
        owned = {v.weights for v in self.variants.values()}
        for precision, variant in self.variants.items():
            shared = variant.shared_weights
            if shared is not None and (shared == variant.weights or shared not in owned):
                raise BundleError(f"manifest.variants.{precision}.shared_weights is {shared!r}, expected another "
                                  f"variant's weights file, one of {sorted(owned - {variant.weights, None})}")
        unknown = [t for t in self.targets if t not in RUNTIMES]
        if unknown or len(set(self.targets)) != len(self.targets):
            raise BundleError(f"manifest.targets is {self.targets}, expected distinct names among {list(RUNTIMES)}")

    def named_paths(self) -> list[tuple[str, str]]:
        """``(field, path)`` for every file path the manifest names, ``files``' keys included."""
        paths = [(f"manifest.files[{name!r}]", name) for name in self.files]
        for precision, variant in self.variants.items():
            for attribute in ("onnx", "plugins_onnx", "onnxruntime_onnx", "weights", "shared_weights"):
                name = getattr(variant, attribute)
                if name is not None:
                    paths.append((f"manifest.variants.{precision}.{attribute}", name))
        if self.torch_program is not None:
            paths.append(("manifest.torch_program", self.torch_program))
        paths.append(("manifest.text.tokenizer", self.text.tokenizer))
        return paths


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(root: str | os.PathLike[str], names: list[str]) -> dict[str, str]:
    """``{name: sha256}`` for files under ``root``, for :attr:`Manifest.files`."""
    return {name: sha256_file(Path(root) / name) for name in sorted(names)}


def write_manifest(root: str | os.PathLike[str], manifest: Manifest) -> None:
    """Writes ``manifest.json`` under ``root`` atomically (temporary file + rename)."""
    write_text_atomic(Path(root) / MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")


def read_manifest(root: str | os.PathLike[str], verify_hashes: bool | Collection[str] = True) -> Manifest:
    """Reads and validates the manifest of the bundle at ``root``.

    A bundle is untrusted input: the manifest must parse (UTF-8 JSON, every field of its type), every
    path it names must stay inside the bundle (relative, no ``..``, no symlink leading out), it must
    list the files it ships with their hashes, and every graph a variant or the torch program names
    must be among them. Raises :class:`BundleError` naming the file and the field when not, when a
    listed file is missing, the format version is newer than this fusionrt reads, or a verified file's
    content differs from the hash recorded at export.

    ``verify_hashes``: True hashes every listed file (``fusionrt verify``); a collection of names hashes
    only those (:func:`fusionrt.load` passes the files its backend opens, so a cold start does not read
    the graphs of other runtimes); False hashes none. Every listed file must exist either way.

    A bundle replaced while it is read (:func:`fusionrt.atomic.atomic_directory` swaps the new directory
    in) is read again, so the manifest and the files checked against it always come from one bundle.
    """
    root = Path(root)
    attempts = READ_ATTEMPTS
    while True:
        identity = _directory_identity(root)
        try:
            return _read_manifest_once(root, verify_hashes)
        except (BundleError, OSError):
            attempts -= 1
            # Another directory at the path now: the manifest and the files may have come from two
            # bundles. Read the new one, unless the path keeps changing.
            if attempts == 0 or _directory_identity(root) == identity:
                raise


#: How often :func:`read_manifest` starts over when the bundle is replaced while it reads.
READ_ATTEMPTS = 3


def _directory_identity(root: Path) -> tuple[int, int, int] | None:
    """(device, inode, change time) of the directory at ``root``, which a replacement changes (the time
    too: a new directory may reuse a deleted one's inode); None when absent."""
    try:
        info = os.stat(root)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns


def _read_manifest_once(root: Path, verify_hashes: bool | Collection[str]) -> Manifest:
    """One reading of :func:`read_manifest`: the checks its docstring lists, over whatever directory is at
    ``root`` as each file is opened."""
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"no bundle at {root}: not a directory")
    if not path.is_file():
        raise BundleError(f"{root} is not a fusionrt bundle: {MANIFEST_NAME} is missing")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BundleError(f"{path} is not UTF-8 text: {error}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from None
    manifest = Manifest.from_dict(data)
    if not manifest.files:
        raise BundleError(f"{path}: manifest.files is empty or absent; a bundle lists every file it ships with its hash")
    for where, name in manifest.named_paths():
        if where.startswith("manifest.files["):
            continue
        # The tokenizer is optional, and from format 3 on so are the files of runtimes a bundle does not
        # serve (a lean copy names them so the layout stays one); a named file that is present must be listed.
        optional = where == "manifest.text.tokenizer" or manifest.format_version >= 3
        if name not in manifest.files and (not optional or (root / name).exists()):
            raise BundleError(f"{path}: {where} names {name!r}, which manifest.files does not list (so it is not hash-checked)")
    for name in manifest.files:
        if not bundle_file(root, name, f"manifest.files[{name!r}]").is_file():
            raise BundleError(f"bundle file {name} is missing from {root}")
    if verify_hashes is True:
        verify_files(root, manifest, manifest.files)
    elif verify_hashes:
        verify_files(root, manifest, verify_hashes)
    return manifest


def verify_files(root: str | os.PathLike[str], manifest: Manifest, names: Iterable[str]) -> None:
    """Checks that each of ``names`` is listed in ``manifest.files`` and still has the hash recorded at
    export; raises :class:`BundleError` naming the first that is not."""
    for name in dict.fromkeys(names):  # each once, in order
        expected = manifest.files.get(name)
        if expected is None:
            raise BundleError(f"bundle file {name} is not listed in manifest.files, so it cannot be verified")
        if sha256_file(bundle_file(root, name, f"manifest.files[{name!r}]")) != expected:
            raise BundleError(f"bundle file {name} does not match its hash in the manifest (modified or corrupt)")


def bundle_file(root: str | os.PathLike[str], name: str, where: str) -> Path:
    """The path of bundle file ``name`` under ``root``, checked to stay inside the bundle once symlinks
    are followed; ``where`` names the manifest field in the error."""
    _check_relative(name, where)
    root = Path(root)
    path = root / name
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise BundleError(f"{where}: {name!r} leads outside the bundle (to {real})")
    return path


def _check_relative(name: str, where: str) -> None:
    """A manifest path must be a plain relative path inside the bundle."""
    parts = Path(name).parts
    if not name or "\\" in name or "\0" in name or Path(name).is_absolute() or ".." in parts or name.startswith("~"):
        raise BundleError(
            f"{where} is {name!r}, expected a relative path inside the bundle (no absolute path, '..' or '\\')"
        )


def _check_tensor_spec(spec: TensorSpec, where: str) -> None:
    if spec.dtype not in DTYPES:
        raise BundleError(f"{where}.dtype is {spec.dtype!r}, expected one of {list(DTYPES)}")
    for i, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim < 0:
            raise BundleError(f"{where}.shape[{i}] is {dim}, expected a size >= 0 or a named dynamic axis")
