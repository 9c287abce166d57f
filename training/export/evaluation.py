"""Accuracy of every precision variant on labelled batches, in one pass over the data.

Example:
    >>> metrics = evaluate_variants({"fp32": "model.onnx", "int8": "model.int8.onnx"}, test_loader,
    ...                             text_length=64, image_size=224)  # doctest: +SKIP
    >>> metrics["int8"]["delta_Has0_acc_2"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fusionrt.graph_io import SCORE, output_name
from training.metrics import mosi_metrics

from .errors import ExportError
from .graph_io import batch_feeds

#: Largest drop of Has0_acc_2 (a fraction: 0.01 is one point) a lower precision may cost against fp32.
ACCURACY_TOLERANCE = 0.01


def evaluate_variants(
    variants: Mapping[str, str | os.PathLike[str]],
    batches: Iterable[Mapping[str, Any]],
    text_length: int,
    image_size: int,
) -> dict[str, dict[str, float]]:
    """:func:`training.metrics.mosi_metrics` of each variant's ONNX Runtime scores against ``label``.

    ``variants`` maps a precision to its ONNX file and must hold ``"fp32"``. Every other variant also
    gets ``max_abs_delta_score`` (largest |score - fp32 score|) and ``delta_<metric>`` (its metric minus
    fp32's). Batches are read once, so a one-shot iterator works.
    """
    import onnxruntime as ort

    if "fp32" not in variants:
        raise ValueError(f"variants are {sorted(variants)}, expected 'fp32' among them (the reference)")
    sessions = {
        name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for name, path in variants.items()
    }
    scores: dict[str, list[np.ndarray]] = {name: [] for name in sessions}
    labels = []
    for batch in batches:
        if "label" not in batch:
            raise ValueError("evaluation batches need a 'label' entry (collate with MosiCollator)")
        feeds = batch_feeds(batch, text_length, image_size)
        labels.append(np.asarray(batch["label"], dtype=np.float64))
        for name, session in sessions.items():
            (score,) = session.run([output_name(SCORE)], feeds)
            scores[name].append(score.astype(np.float64))
    if not labels:
        raise ValueError("evaluation yielded no batches")
    label = np.concatenate(labels)
    reference = np.concatenate(scores["fp32"])
    base = mosi_metrics(reference, label)
    results = {}
    for name, parts in scores.items():
        score = np.concatenate(parts)
        metrics = mosi_metrics(score, label)
        if name != "fp32":
            metrics["max_abs_delta_score"] = float(np.max(np.abs(score - reference)))
            metrics.update({f"delta_{key}": metrics[key] - base[key] for key in base})
        results[name] = metrics
    return results


def check_tolerance(metrics: Mapping[str, Mapping[str, float]], tolerance: float = ACCURACY_TOLERANCE) -> None:
    """Raises :class:`ExportError` when a variant's Has0_acc_2 is more than ``tolerance`` below fp32's."""
    for name, values in metrics.items():
        drop = -values.get("delta_Has0_acc_2", 0.0)
        if drop > tolerance:
            raise ExportError(
                f"the {name} variant loses {100 * drop:.2f} points of Has0_acc_2 against fp32, more than the "
                f"tolerance of {100 * tolerance:.2f}; leave {name!r} out of precisions, calibrate on more data, "
                f"or raise accuracy_tolerance"
            )
