"""Balanced accuracy: the function and the Ignite metric equal scikit-learn's definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from medattn_monai.metrics import BalancedAccuracy, balanced_accuracy


def test_function_equals_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 6, 200)
        p = np.where(rng.random(200) < 0.5, y, rng.integers(0, 6, 200))
        assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p), abs=1e-12)


def test_hand_computed_value():
    # class 0: 2/2 right, class 1: 1/3 right, class 2 absent from the truth (predicted once): mean of 1 and 1/3
    assert balanced_accuracy([0, 0, 1, 1, 1], [0, 0, 1, 2, 0]) == pytest.approx(2 / 3)


def test_ignite_metric_exact_over_uneven_batches_with_absent_classes():
    rng = np.random.default_rng(1)
    k = 5
    y = rng.integers(0, k - 1, 301)  # class 4 never in the truth
    logits = rng.normal(size=(301, k))
    logits[np.arange(301), y] += rng.normal(1.0, 1.0, 301)
    metric = BalancedAccuracy(num_classes=k)
    metric.reset()
    bounds = [0, 3, 50, 51, 130, 300, 301]  # uneven, incl. batches of one; class 3 absent from some batches
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        metric.update((torch.tensor(logits[a:b]), torch.tensor(y[a:b])))
    expected = balanced_accuracy_score(y, logits.argmax(1))
    assert metric.compute() == pytest.approx(expected, abs=1e-12)


def test_ignite_metric_accepts_one_hot_and_decollated_outputs():
    y = torch.tensor([0, 1, 2, 2])
    pred = torch.tensor([[3.0, 0, 0], [0, 0, 1.0], [0, 0, 2.0], [0, 0, 1.0]])
    metric = BalancedAccuracy(num_classes=3)
    metric.reset()
    # MONAI's decollated output: a list of per-sample dicts
    metric.update([{"pred": p, "label": torch.nn.functional.one_hot(t, 3)} for p, t in zip(pred, y, strict=True)])
    assert metric.compute() == pytest.approx((1 + 0 + 1) / 3)


def test_ignite_metric_rejects_bad_input():
    metric = BalancedAccuracy(num_classes=3)
    metric.reset()
    with pytest.raises(ValueError, match="out of range"):
        metric.update((torch.zeros(2, 3), torch.tensor([0, 5])))
    with pytest.raises(ValueError):
        BalancedAccuracy(num_classes=1)
