"""training.metrics: MMSA's CMU-MOSI regression metrics."""

import math
import warnings

import numpy as np
import pytest

from training.metrics import mosi_metrics

KEYS = {"Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7", "MAE", "Corr"}


def mmsa_reference(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MMSA's __eval_mosi_regression written with sklearn, without the final round(., 4)."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    non_zeros = np.array([i for i, e in enumerate(labels) if e != 0])
    nz_truth, nz_preds = labels[non_zeros] > 0, preds[non_zeros] > 0
    truth, pred = labels >= 0, preds >= 0

    def mult(bound: float) -> float:
        a, b = np.clip(preds, -bound, bound), np.clip(labels, -bound, bound)
        return np.sum(np.round(a) == np.round(b)) / float(len(b))

    return {
        "Has0_acc_2": sklearn_metrics.accuracy_score(pred, truth),
        "Has0_F1_score": sklearn_metrics.f1_score(truth, pred, average="weighted"),
        "Non0_acc_2": sklearn_metrics.accuracy_score(nz_preds, nz_truth),
        "Non0_F1_score": sklearn_metrics.f1_score(nz_truth, nz_preds, average="weighted"),
        "Mult_acc_5": mult(2.0),
        "Mult_acc_7": mult(3.0),
        "MAE": np.mean(np.abs(preds - labels)),
        "Corr": np.corrcoef(preds, labels)[0][1],
    }


def test_hand_computed_case():
    preds = [2.4, 0.0, -0.6, 1.5, -3.5]
    labels = [3.0, 0.4, -1.0, 0.0, -2.2]
    m = mosi_metrics(preds, labels)
    assert set(m) == KEYS
    # Has0 (>= 0): preds T T F T F, labels T T F T F.
    assert m["Has0_acc_2"] == 1.0 and m["Has0_F1_score"] == 1.0
    # Non0 drops label 0 (index 3); pred 0.0 counts as negative against label 0.4 -> 3 of 4.
    assert m["Non0_acc_2"] == pytest.approx(0.75)
    # classes: T={pos: 2 (idx0,1)}, F={neg: 2}; pos: tp1 fp0 fn1 -> 2/3; neg: tp2 fp1 fn0 -> 4/5.
    assert m["Non0_F1_score"] == pytest.approx((2 / 3 * 2 + 4 / 5 * 2) / 4)
    # 7 classes: rounds 2,0,-1,2,-3 vs 3,0,-1,0,-2 -> 2 of 5. 5 classes: 2,0,-1,2,-2 vs 2,0,-1,0,-2 -> 4 of 5.
    assert m["Mult_acc_7"] == pytest.approx(0.4)
    assert m["Mult_acc_5"] == pytest.approx(0.8)
    assert m["MAE"] == pytest.approx(np.mean([0.6, 0.4, 0.4, 1.5, 1.3]))
    assert m["Corr"] == pytest.approx(np.corrcoef(preds, labels)[0, 1])


def test_rounding_is_half_to_even_like_np_round():
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0 (== 0).
    m = mosi_metrics([0.5, 1.5, 2.5, -0.5], [0.0, 2.0, 2.0, 0.0])
    assert m["Mult_acc_7"] == 1.0 and m["Mult_acc_5"] == 1.0


def test_clipping_before_rounding():
    m = mosi_metrics([7.0, 2.6, -9.0], [3.0, 2.2, -2.0])
    assert m["Mult_acc_5"] == 1.0  # all clip to +-2
    assert m["Mult_acc_7"] == pytest.approx(1 / 3)  # 3 vs 3; 3 (2.6) vs 2; -3 vs -2
    assert m["MAE"] == pytest.approx((4.0 + 0.4 + 7.0) / 3)  # MAE is unclipped


@pytest.mark.parametrize("case", range(5))
def test_matches_mmsa_definition(case):
    rng = np.random.default_rng(case)
    # MOSI-like labels: averages of annotators on a fine grid, with exact zeros and ties at .5.
    labels = np.round(rng.uniform(-3, 3, 300) * 5) / 5
    labels[rng.random(300) < 0.1] = 0.0
    preds = np.concatenate(
        [np.clip(labels[:200] + rng.normal(0, 1.0, 200), -3.5, 3.5), rng.choice([-0.5, 0.0, 0.5, 1.5], 100)]
    )
    ours, ref = mosi_metrics(preds, labels), mmsa_reference(preds, labels)
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key


def test_single_class_predictions_match_sklearn():
    labels = np.array([1.0, -1.0, 2.0, -0.2])
    preds = np.ones(4) + np.arange(4) * 0.1
    ours, ref = mosi_metrics(preds, labels), mmsa_reference(preds, labels)
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key


def test_all_zero_labels_and_constant_predictions_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zeros = mosi_metrics([0.3, -0.2, 0.0], [0.0, 0.0, 0.0])
        constant = mosi_metrics([1.0, 1.0, 1.0], [0.4, -2.0, 1.0])
    assert math.isnan(zeros["Non0_acc_2"]) and math.isnan(zeros["Non0_F1_score"])
    assert math.isnan(zeros["Corr"])
    assert zeros["Has0_acc_2"] == pytest.approx(2 / 3)
    assert math.isnan(constant["Corr"])
    assert constant["Has0_acc_2"] == pytest.approx(2 / 3)


def test_perfect_predictions():
    labels = np.linspace(-3, 3, 13)
    m = mosi_metrics(labels, labels)
    assert m["MAE"] == 0.0 and m["Corr"] == pytest.approx(1.0)
    assert all(m[k] == 1.0 for k in KEYS - {"MAE", "Corr"})


@pytest.mark.parametrize(
    "preds, labels, message",
    [
        ([1.0, 2.0], [1.0], "preds has 2 values and labels 1"),
        ([[1.0, 2.0]], [[1.0, 2.0]], r"preds has shape \(1, 2\), expected 1-D"),
        ([], [], "preds is empty"),
        ([1.0, float("nan")], [1.0, 2.0], r"preds\[1\] is nan"),
        ([1.0, 2.0], [float("inf"), 2.0], r"labels\[0\] is inf"),
        (["a", "b"], [1.0, 2.0], "preds must be numbers"),
    ],
)
def test_invalid_inputs_are_rejected(preds, labels, message):
    with pytest.raises(ValueError, match=message):
        mosi_metrics(preds, labels)
