"""Export from a trainer checkpoint, in Python (:func:`export_checkpoint`) and on the command line.

The checkpoint is read and its model rebuilt by :mod:`training.checkpoint`, and the data read
through :mod:`training.loaders`, as the trainer, ``training.evaluate`` and the study do.

Command line (also ``fusionrt export``)::

    python -m training.export --checkpoint runs/late/best.pt --out runs/late/bundle \\
        --data data/generated/mosi [--text-max-length 64] [--precisions fp32 fp16 int8] [--overwrite] \\
        [--targets tensorrt,onnxruntime,torch]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from fusionrt.bundle import PRECISIONS, RUNTIMES, Manifest
from training.checkpoint import (
    MODEL_KEYS,
    data_from_checkpoint,
    experiment_from_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
)
from training.loaders import bundle_tokenizer, export_loaders, load_tokenizer, resolve_tokenizer

from .bundle_writer import export_bundle
from .precision import CALIBRATION_METHODS
from .settings import ExportSettings

#: Seed of the calibration order for a model-only checkpoint (a trainer checkpoint uses its run's seed).
DEFAULT_SEED = 0


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: ExportSettings = ExportSettings(),
    *,
    model_name: str | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
) -> Manifest:
    """Rebuilds the model of a checkpoint and exports it with :func:`export_bundle`.

    Args:
        checkpoint_path: a trainer checkpoint (``best.pt`` / ``last.pt``) or a model-only one,
            ``{"config": FusionConfig.to_dict(), "model": state_dict}`` (an optional ``"model_name"``
            entry names the bundle); see :mod:`training.checkpoint`.
        settings: text length, precisions, calibration, tolerance, overwrite (:class:`ExportSettings`).
        model_name: recorded in the manifest; default the checkpoint's ``model_name`` or
            ``<strategy>_<vision backbone>``.
        tokenizer: ``tokenizer.json`` (or a directory holding one); default the one the run's texts were
            tokenised with, else the text backbone's (the bundled MiniLM's when ``config.text.name`` is None).
        data: a MOSI-layout dataset root (or ``"generated"``); its train fold calibrates int8 and its test
            fold is evaluated, in the run's modalities and frame sampling for a trainer checkpoint.

    Raises:
        FileNotFoundError, training.checkpoint.CheckpointError: the checkpoint is missing or not one,
            before anything else is read.

    Example:
        >>> export_checkpoint("runs/late/best.pt", "runs/late/bundle", ExportSettings(text_max_length=16),
        ...                   data="data/generated/mosi")  # doctest: +SKIP
    """
    checkpoint = load_checkpoint(checkpoint_path, required=MODEL_KEYS)
    model = model_from_checkpoint(checkpoint)
    config = model.config
    data_settings = data_from_checkpoint(
        checkpoint,
        root=None if data is None else str(data),
        tokenizer=None if tokenizer is None else str(tokenizer),
        text_max_length=settings.text_max_length,
        batch_size=batch_size,
    )
    bundled_tokenizer = bundle_tokenizer(data_settings, config.text)  # a missing one fails before data is read
    calibration = evaluation = None
    if data is not None:
        experiment = experiment_from_checkpoint(checkpoint)
        seed = experiment.seed if experiment is not None else DEFAULT_SEED
        reader = load_tokenizer(resolve_tokenizer(data_settings, config.text))
        calibration, evaluation = export_loaders(data_settings, reader, seed)
    from fusionrt.bundle import FrameSamplingSpec

    # Recorded for predict(video=...): a run that read images made them of clips this way.
    frame_sampling = FrameSamplingSpec(data_settings.frame_sampling, data_settings.num_frames) if (
        "image" in data_settings.modalities) else None
    return export_bundle(
        model,
        out,
        model_name=model_name or checkpoint.get("model_name") or f"{config.strategy}_{config.vision.name}",
        tokenizer=bundled_tokenizer,
        settings=settings,
        calibration=calibration,
        evaluation=evaluation,
        frame_sampling=frame_sampling,
    )


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``fusionrt export`` / ``python -m training.export``: parses ``argv`` and exports; returns the exit code."""
    defaults = ExportSettings()
    parser = argparse.ArgumentParser(prog="fusionrt export", description="Export a trained checkpoint as a bundle.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="trainer checkpoint (.pt)")
    parser.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    parser.add_argument("--data", type=Path, help="MOSI-layout dataset: train fold calibrates int8, test is evaluated")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer.json (default: the run's or the text backbone's)")
    parser.add_argument("--model-name", help="name recorded in the manifest")
    parser.add_argument("--text-max-length", type=int, default=defaults.text_max_length,
                        help="fixed token length of the graph")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(defaults.precisions))
    parser.add_argument("--calibration-samples", type=int, default=defaults.calibration_samples)
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=defaults.calibration_method)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.add_argument("--targets", default=",".join(defaults.targets), type=_names,
                        help=f"comma-separated runtimes the bundle serves, of {','.join(RUNTIMES)} (default all): "
                             "only their files are written")
    args = parser.parse_args(argv)
    if "int8" in args.precisions and args.data is None:
        parser.error("int8 needs --data (its train fold calibrates); or pass --precisions fp32 fp16")
    try:
        settings = ExportSettings(
            text_max_length=args.text_max_length,
            precisions=args.precisions,
            calibration_samples=args.calibration_samples,
            calibration_method=args.calibration_method,
            overwrite=args.overwrite,
            targets=args.targets,
        )
    except ValueError as error:
        parser.error(str(error))
    manifest = export_checkpoint(
        args.checkpoint,
        args.out,
        settings,
        model_name=args.model_name,
        tokenizer=args.tokenizer,
        data=args.data,
        batch_size=args.batch_size,
    )
    print(f"wrote {args.out}: {manifest.model_name} ({manifest.strategy}), variants {sorted(manifest.variants)}, "
          f"for {', '.join(manifest.targets)}")
    for name, variant in manifest.variants.items():
        if variant.metrics:
            print(f"  {name}: Has0_acc_2 {variant.metrics['Has0_acc_2']:.4f}  MAE {variant.metrics['MAE']:.4f}")
    return 0


def _names(text: str) -> tuple[str, ...]:
    """``"tensorrt,onnxruntime"`` -> its names (ExportSettings checks them)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())
