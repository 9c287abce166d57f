"""Export from a trainer checkpoint, in Python (:func:`export_checkpoint`) and on the command line.

Command line (also ``fusionrt export``)::

    python -m training.export --checkpoint runs/late/best.pt --out runs/late/bundle \\
        --data data/generated/mosi [--text-max-length 64] [--precisions fp32 fp16 int8] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fusionrt.bundle import PRECISIONS, Manifest

from .bundle_writer import export_bundle
from .precision import CALIBRATION_SAMPLES


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    text_max_length: int = 64,
    data: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    **options: Any,
) -> Manifest:
    """Rebuilds the model of a trainer checkpoint and exports it with :func:`export_bundle`.

    Args:
        checkpoint_path: ``torch.save`` of ``{"config": FusionConfig.to_dict(), "model": state_dict, ...}``
            (an optional ``"model_name"`` entry names the bundle).
        tokenizer: ``tokenizer.json``; default: the one beside the text backbone (the bundled MiniLM's
            when ``config.text.name`` is None).
        data: a MOSI-layout dataset root; its train fold calibrates int8 and its test fold is evaluated.
        options: passed on to :func:`export_bundle` (``precisions``, ``overwrite``, ...).

    Example:
        >>> export_checkpoint("runs/late/best.pt", "runs/late/bundle", data="data/generated/mosi")  # doctest: +SKIP
    """
    from training.models import FusionConfig, FusionModel

    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    missing = {"config", "model"} - set(checkpoint) if isinstance(checkpoint, dict) else {"config", "model"}
    if missing:
        raise ValueError(f"{checkpoint_path} is not a fusionrt checkpoint: it lacks {sorted(missing)}")
    config = FusionConfig.from_dict(checkpoint["config"])
    # The weights come from the checkpoint: don't fetch pretrained ones to overwrite them.
    config.text.pretrained = config.vision.pretrained = False
    model = FusionModel(config)
    model.load_state_dict(checkpoint["model"])
    if tokenizer is None:
        tokenizer = _default_tokenizer(config.text.name)
    loaders = _loaders(data, tokenizer, text_max_length, config.vision.image_size, batch_size) if data else {}
    return export_bundle(
        model,
        out,
        model_name=model_name or checkpoint.get("model_name") or f"{config.strategy}_{config.vision.name}",
        tokenizer=tokenizer,
        text_max_length=text_max_length,
        calibration=loaders.get("train"),
        evaluation=loaders.get("test"),
        **options,
    )


def _default_tokenizer(text_name: str | None) -> Path:
    from training.models.text_encoder import default_text_source

    path = Path(text_name if text_name is not None else default_text_source()) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}; pass tokenizer= (a tokenizer.json)")
    return path


def _loaders(
    root: str | os.PathLike[str], tokenizer: str | os.PathLike[str], text_length: int, image_size: int, batch_size: int
) -> dict[str, torch.utils.data.DataLoader]:
    """Train (shuffled, for calibration) and test loaders over a MOSI-layout dataset."""
    from tokenizers import Tokenizer

    from training.data.dataset import MosiCollator, MosiDataset
    from training.data.frames import FrameSampling
    from training.data.mosi import build_index

    index = build_index(root)
    collate = MosiCollator(Tokenizer.from_file(str(tokenizer)), text_length, (image_size, image_size))
    sampling = FrameSampling(size=(image_size, image_size))
    return {
        fold: torch.utils.data.DataLoader(
            MosiDataset(index[fold], sampling), batch_size=batch_size, shuffle=fold == "train",
            collate_fn=collate, generator=torch.Generator().manual_seed(0),
        )
        for fold in ("train", "test")
    }


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``fusionrt export`` / ``python -m training.export``: parses ``argv`` and exports; returns the exit code."""
    parser = argparse.ArgumentParser(prog="fusionrt export", description="Export a trained checkpoint as a bundle.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="trainer checkpoint (.pt)")
    parser.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    parser.add_argument("--data", type=Path, help="MOSI-layout dataset: train fold calibrates int8, test is evaluated")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer.json (default: the text backbone's)")
    parser.add_argument("--model-name", help="name recorded in the manifest")
    parser.add_argument("--text-max-length", type=int, default=64, help="fixed token length of the graph")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--calibration-samples", type=int, default=CALIBRATION_SAMPLES)
    parser.add_argument("--calibration-method", choices=("minmax", "percentile"), default="percentile")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    args = parser.parse_args(argv)
    if "int8" in args.precisions and args.data is None:
        parser.error("int8 needs --data (its train fold calibrates); or pass --precisions fp32 fp16")
    manifest = export_checkpoint(
        args.checkpoint,
        args.out,
        model_name=args.model_name,
        tokenizer=args.tokenizer,
        text_max_length=args.text_max_length,
        data=args.data,
        batch_size=args.batch_size,
        precisions=args.precisions,
        overwrite=args.overwrite,
        calibration_samples=args.calibration_samples,
        calibration_method=args.calibration_method,
    )
    print(f"wrote {args.out}: {manifest.model_name} ({manifest.strategy}), variants {sorted(manifest.variants)}")
    for name, variant in manifest.variants.items():
        if variant.metrics:
            print(f"  {name}: Has0_acc_2 {variant.metrics['Has0_acc_2']:.4f}  MAE {variant.metrics['MAE']:.4f}")
    return 0
