"""The bundle: the one artifact between training and deployment, and its ``manifest.json``.

A bundle is a directory::

    manifest.json          this module's Manifest
    model.onnx             fp32, standard ONNX ops (ONNX Runtime, TensorRT)
    model.plugins.onnx     the same graph with fusionrt plugin nodes (TensorRT + libfusionrt_plugins.so)
    model.fp16.onnx        precision carried by the graph (strongly typed TensorRT 11)
    model.int8.onnx        Q/DQ nodes, symmetric int8 activations (TensorRT 10/11 INT8)
    model.int8.ort.onnx    Q/DQ nodes, uint8 activations on weight MatMuls and conv stacks (ONNX Runtime on CPU)
    model.pt2              torch.export program (the torch backend)
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic

# 2: a variant may name a separate graph for ONNX Runtime (``onnxruntime_onnx``).
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")


class BundleError(ValueError):
    """A bundle is missing, incomplete, tampered with, or from a newer fusionrt."""


@dataclass
class TensorSpec:
    """One graph input or output: dtype name (numpy spelling) and shape, ``"batch"`` for the dynamic axis."""

    dtype: str
    shape: list[int | str]
    description: str = ""


@dataclass
class TextSpec:
    """How raw text becomes ``input_ids`` / ``attention_mask``."""

    tokenizer: str = "tokenizer.json"
    max_length: int = 64


@dataclass
class ImageSpec:
    """How a raw image becomes the ``image`` input: RGB, resized to ``size``, scaled to [0, 1],
    normalised with ``mean`` / ``std``, laid out as NCHW."""

    size: list[int] = field(default_factory=lambda: [224, 224])
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    channel_order: str = "RGB"
    layout: str = "NCHW"
    interpolation: str = "bilinear"


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
    """

    onnx: str
    plugins_onnx: str | None = None
    onnxruntime_onnx: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

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
    metrics: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 hex
    fusionrt_version: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parses and validates a manifest dict; raises :class:`BundleError` naming what is wrong."""
        if not isinstance(data, dict):
            raise BundleError(f"manifest is a {type(data).__name__}, expected a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise BundleError(f"manifest has format_version {version!r}, expected an integer")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {version} is newer than this fusionrt reads ({FORMAT_VERSION}); "
                "upgrade fusionrt"
            )
        try:
            fields = dict(data)
            fields["inputs"] = {k: TensorSpec(**v) for k, v in data["inputs"].items()}
            fields["outputs"] = {k: TensorSpec(**v) for k, v in data["outputs"].items()}
            fields["text"] = TextSpec(**data["text"])
            fields["image"] = ImageSpec(**data["image"])
            fields["output"] = OutputSpec(**data["output"])
            fields["variants"] = {k: Variant(**v) for k, v in data["variants"].items()}
            manifest = cls(**fields)
        except KeyError as error:
            raise BundleError(f"manifest lacks the field {error.args[0]!r}") from None
        except (TypeError, AttributeError) as error:
            raise BundleError(f"manifest is malformed: {error}") from None
        unknown = set(manifest.variants) - set(PRECISIONS)
        if unknown or "fp32" not in manifest.variants:
            raise BundleError(
                f"manifest variants are {sorted(manifest.variants)}, expected 'fp32' and optionally "
                f"'fp16' / 'int8'"
            )
        return manifest


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


def read_manifest(root: str | os.PathLike[str], verify_hashes: bool = True) -> Manifest:
    """Reads and validates the manifest of the bundle at ``root``.

    Raises :class:`BundleError` when the directory or a file it lists is missing, the JSON is
    malformed, the format version is newer than this fusionrt reads, or (``verify_hashes``) a file's
    content differs from the hash recorded at export.
    """
    root = Path(root)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"no bundle at {root}: not a directory")
    if not path.is_file():
        raise BundleError(f"{root} is not a fusionrt bundle: {MANIFEST_NAME} is missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from None
    manifest = Manifest.from_dict(data)
    for name, expected in manifest.files.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle file {name} is missing from {root}")
        if verify_hashes and sha256_file(file) != expected:
            raise BundleError(f"bundle file {name} does not match its hash in the manifest (modified or corrupt)")
    return manifest
