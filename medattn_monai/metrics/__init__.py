"""Metrics: balanced accuracy (the study's key metric) as a function and as an Ignite metric."""

from __future__ import annotations

from .balanced_accuracy import BalancedAccuracy, balanced_accuracy, balanced_accuracy_from_confusion, per_class_recall
from .mean_loss import MeanLoss

__all__ = ["BalancedAccuracy", "MeanLoss", "balanced_accuracy", "balanced_accuracy_from_confusion", "per_class_recall"]
