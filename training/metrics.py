"""CMU-MOSI regression metrics, as defined by the MMSA benchmark (thuiar/MMSA, ``metricsTop.py``).

``mosi_metrics`` reproduces MMSA's ``__eval_mosi_regression`` without its final rounding to 4
decimals and without sklearn:

* ``Has0_acc_2`` / ``Has0_F1_score``: classes ``score >= 0`` vs ``< 0``, all samples; F1 is the
  support-weighted mean of both classes' F1 (sklearn ``average="weighted"``).
* ``Non0_acc_2`` / ``Non0_F1_score``: samples whose *label* is 0 dropped; classes ``> 0`` vs
  ``<= 0`` (so a prediction of exactly 0 counts as negative). NaN when every label is 0.
* ``Mult_acc_5`` / ``Mult_acc_7``: predictions and labels clipped to [-2, 2] / [-3, 3] and
  rounded with ``np.round`` (half to even: 0.5 -> 0, 1.5 -> 2), then compared.
* ``MAE``: mean absolute error of the unclipped values. ``Corr``: Pearson correlation; NaN when
  predictions or labels are constant (it is undefined there).

Example:
    >>> m = mosi_metrics([1.2, -0.4, 0.0], [1.4, -1.0, 0.6])
    >>> m["Has0_acc_2"], m["Non0_acc_2"], m["Mult_acc_7"]
    (1.0, 0.6666666666666666, 0.3333333333333333)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def mosi_metrics(preds: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """MMSA's CMU-MOSI regression metrics of ``preds`` against ``labels`` (both 1-D, same length).

    Raises:
        ValueError: inputs are not 1-D, differ in length, are empty or hold NaN / inf.
    """
    preds = _as_vector("preds", preds)
    labels = _as_vector("labels", labels)
    if preds.shape != labels.shape:
        raise ValueError(f"preds has {preds.size} values and labels {labels.size}, expected the same number")

    non_zero = labels != 0
    if non_zero.any():
        non0_acc, non0_f1 = _binary_scores(preds[non_zero] > 0, labels[non_zero] > 0)
    else:
        non0_acc = non0_f1 = float("nan")
    has0_acc, has0_f1 = _binary_scores(preds >= 0, labels >= 0)
    return {
        "Has0_acc_2": has0_acc,
        "Has0_F1_score": has0_f1,
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": _class_accuracy(preds, labels, 2.0),
        "Mult_acc_7": _class_accuracy(preds, labels, 3.0),
        "MAE": float(np.mean(np.abs(preds - labels))),
        "Corr": _pearson(preds, labels),
    }


def _as_vector(name: str, values: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {type(values).__name__}: {err}") from err
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}, expected 1-D (n,)")
    if array.size == 0:
        raise ValueError(f"{name} is empty, expected at least one value")
    if not np.isfinite(array).all():
        bad = int(np.argmin(np.isfinite(array)))
        raise ValueError(f"{name}[{bad}] is {array[bad]}, expected finite values")
    return array


def _binary_scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Accuracy and support-weighted F1 of two boolean classifications (sklearn's definitions)."""
    accuracy = float(np.mean(pred == true))
    weighted_f1 = 0.0
    for cls in (False, True):
        tp = np.sum((pred == cls) & (true == cls))
        fp = np.sum((pred == cls) & (true != cls))
        fn = np.sum((pred != cls) & (true == cls))
        support = tp + fn
        # F1 = 2tp / (2tp + fp + fn); sklearn takes 0 where that is 0/0 (class absent everywhere).
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        weighted_f1 += f1 * support
    return accuracy, float(weighted_f1 / true.size)


def _class_accuracy(preds: np.ndarray, labels: np.ndarray, bound: float) -> float:
    """Share of samples whose clipped, rounded (half to even, like MMSA's np.round) classes agree."""
    rounded_preds = np.round(np.clip(preds, -bound, bound))
    rounded_labels = np.round(np.clip(labels, -bound, bound))
    return float(np.mean(rounded_preds == rounded_labels))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    if denominator == 0:
        return float("nan")
    # Clipped because rounding can push |r| a hair past 1 (np.corrcoef clips too).
    return float(np.clip(np.sum(dx * dy) / denominator, -1.0, 1.0))
