"""``export_bundle``: a trained FusionModel -> a complete bundle directory (see :mod:`fusionrt.bundle`).

Example:
    >>> settings = ExportSettings(text_max_length=64, precisions=("fp32", "fp16", "int8"))
    >>> manifest = export_bundle(model, "runs/late/bundle", model_name="late_mobilenetv2",
    ...                          tokenizer="tokenizer.json", settings=settings,
    ...                          calibration=train_loader, evaluation=test_loader)  # doctest: +SKIP
    >>> manifest.variants["int8"].metrics["delta_Has0_acc_2"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

import fusionrt
from fusionrt.atomic import atomic_directory
from fusionrt.bundle import (
    MANIFEST_NAME,
    FrameSamplingSpec,
    ImageSpec,
    Manifest,
    OutputSpec,
    TextSpec,
    Variant,
    hash_files,
    write_manifest,
)
from fusionrt.graph_io import input_specs

from .evaluation import check_tolerance, evaluate_variants
from .graph_io import output_specs
from .lean import make_lean
from .onnx_export import check_parity, decompose_once, export_program, write_onnx
from .precision import ONNXRUNTIME_INT8, TENSORRT_INT8, calibration_feeds, convert_fp16, quantize_int8
from .settings import ExportSettings

ONNX_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
#: Graphs for ONNX Runtime where a precision's TensorRT graph does not suit it.
ONNXRUNTIME_FILES = {"int8": "model.int8.ort.onnx"}
PLUGINS_FILE = "model.plugins.onnx"
PROGRAM_FILE = "model.pt2"
TOKENIZER_FILE = "tokenizer.json"
SCORE_RANGE = [-3.0, 3.0]  # CMU-MOSI sentiment


def export_bundle(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    model_name: str,
    tokenizer: str | os.PathLike[str] | Any,
    settings: ExportSettings = ExportSettings(),
    calibration: Iterable[Mapping[str, Any]] | None = None,
    evaluation: Iterable[Mapping[str, Any]] | None = None,
    frame_sampling: FrameSamplingSpec | None = None,
) -> Manifest:
    """Exports ``model`` (a :class:`training.models.FusionModel`) as a bundle at ``path``.

    The bundle is built beside ``path`` and renamed into place when complete, so a failure at any step
    leaves no bundle (and an existing one untouched). It is lean (:mod:`training.export.lean`): only
    the files ``settings.targets`` need, each precision's weights once in its weights file.

    Args:
        model_name: recorded in the manifest (e.g. the registry name the model was created from).
        tokenizer: path to a Hugging Face ``tokenizer.json`` or a ``tokenizers.Tokenizer``.
        settings: text length, precisions, calibration, accuracy tolerance, overwrite
            (:class:`ExportSettings`; its defaults write every precision).
        calibration: collated training batches; required for ``"int8"``.
        evaluation: collated batches with labels; when given, every variant's metrics are measured
            and lower precisions must stay within ``settings.accuracy_tolerance`` of fp32's Has0_acc_2.
        frame_sampling: how training made one image of a clip (``data.frame_sampling`` / ``num_frames``),
            recorded so that ``predict(video=...)`` does the same; None: the bundle takes no video.

    Raises:
        ExportError: a graph fails the ONNX checker, fp32 ONNX Runtime differs from torch by more than
            1e-4, or a variant loses more accuracy than allowed.
        ValueError: ``"int8"`` without ``calibration``.
        FileExistsError: ``path`` exists and ``settings.overwrite`` is False.
    """
    if not isinstance(settings, ExportSettings):
        raise TypeError(f"settings is a {type(settings).__name__}, expected an ExportSettings")
    if "int8" in settings.variants and calibration is None:
        raise ValueError("the int8 variant needs calibration batches (a few hundred training samples), "
                         "or leave 'int8' out of precisions")
    text_max_length, wanted = settings.text_max_length, settings.variants
    image_size = model.config.vision.image_size
    was_training = model.training
    model.eval()
    try:
        with atomic_directory(path, overwrite=settings.overwrite) as root:
            program, outputs = export_program(model, text_max_length)
            with decompose_once():
                write_onnx(program, root / ONNX_FILES["fp32"], list(outputs), plugins=False)
                write_onnx(program, root / PLUGINS_FILE, list(outputs), plugins=True)
            check_parity(model, root / ONNX_FILES["fp32"], text_max_length)
            if "fp16" in wanted:
                convert_fp16(root / ONNX_FILES["fp32"], root / ONNX_FILES["fp16"])
            variants = {
                p: Variant(onnx=ONNX_FILES[p], plugins_onnx=PLUGINS_FILE if p == "fp32" else None,
                           onnxruntime_onnx=ONNXRUNTIME_FILES.get(p))
                for p in wanted
            }
            if "int8" in wanted:
                feeds = calibration_feeds(calibration, text_max_length, image_size, settings.calibration_samples)
                int8 = variants["int8"]
                for file, scheme in ((int8.onnx, TENSORRT_INT8), (int8.onnxruntime_file, ONNXRUNTIME_INT8)):
                    quantize_int8(root / ONNX_FILES["fp32"], root / file, feeds, scheme, settings.calibration_method)
            if evaluation is not None:
                # Each variant is scored on the graph ONNX Runtime runs for it.
                files = {p: root / v.onnxruntime_file for p, v in variants.items()}
                metrics = evaluate_variants(files, evaluation, text_max_length, image_size)
                if settings.accuracy_tolerance is not None:
                    check_tolerance(metrics, settings.accuracy_tolerance)
                    for p in wanted[1:]:
                        metrics[p]["tolerance_Has0_acc_2"] = settings.accuracy_tolerance
                for p, variant in variants.items():
                    variant.metrics = metrics[p]
            _write_tokenizer(tokenizer, root / TOKENIZER_FILE)
            # Last, once the checks and conversions above have read the self-contained graphs.
            make_lean(root, variants, settings.targets, program if "torch" in settings.targets else None,
                      PROGRAM_FILE)
            manifest = Manifest(
                model_name=model_name,
                strategy=model.config.strategy,
                config=model.config.to_dict(),
                inputs=input_specs(text_max_length, image_size),
                outputs=output_specs(outputs),
                text=TextSpec(tokenizer=TOKENIZER_FILE, max_length=text_max_length,
                              vocab_size=model.text_encoder.vocab_size),
                image=_image_spec(model, frame_sampling),
                output=OutputSpec(score_range=SCORE_RANGE),
                variants=variants,
                # Named even when not shipped, so loading for torch names the missing file.
                torch_program=PROGRAM_FILE,
                targets=list(settings.targets),
                metrics=variants["fp32"].metrics,
                fusionrt_version=fusionrt.__version__,
            )
            manifest.files = hash_files(root, [f.name for f in root.iterdir() if f.name != MANIFEST_NAME])
            write_manifest(root, manifest)
    finally:
        model.train(was_training)
    return manifest


def _write_tokenizer(tokenizer: str | os.PathLike[str] | Any, dst: Path) -> None:
    """Copies a ``tokenizer.json`` file, or saves a ``tokenizers.Tokenizer``."""
    if isinstance(tokenizer, (str, os.PathLike)):
        if not Path(tokenizer).is_file():
            raise FileNotFoundError(f"tokenizer file {tokenizer} does not exist (expected a tokenizer.json)")
        shutil.copyfile(tokenizer, dst)
    elif hasattr(tokenizer, "to_str"):
        # Padding and truncation are the Session's job (to max_length), not state to ship.
        dst.write_text(tokenizer.to_str())
    else:
        raise TypeError(f"tokenizer must be a path to tokenizer.json or a tokenizers.Tokenizer, "
                        f"got {type(tokenizer).__name__}")


def _image_spec(model: torch.nn.Module, frame_sampling: FrameSamplingSpec | None = None) -> ImageSpec:
    """Size from the config; mean / std from the timm backbone's data config (what it was pretrained with);
    the training's frame sampling as given."""
    import timm.data

    size = model.config.vision.image_size
    data = timm.data.resolve_model_data_config(model.vision_encoder.model)
    return ImageSpec(size=[size, size], mean=[float(v) for v in data["mean"]], std=[float(v) for v in data["std"]],
                     frame_sampling=frame_sampling)
