"""Balanced accuracy: the mean per-class recall over the classes present in the ground truth.

This is scikit-learn's ``balanced_accuracy_score`` and the ISIC challenge metric. It is *not* MONAI's
``ConfusionMatrix(metric_name="ba")``, which averages binary one-vs-rest balanced accuracies.
The Ignite metric accumulates a confusion matrix, so the result is exact however the data is batched and is summed
across DDP ranks before it is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

__all__ = ["balanced_accuracy", "balanced_accuracy_from_confusion", "per_class_recall", "BalancedAccuracy"]


def _to_indices(t: Any, num_classes: int | None = None) -> torch.Tensor:
    """Class indices from indices (B or B×1), one-hot or scores (B×K), or a list of per-sample tensors."""
    if isinstance(t, (list, tuple)):
        t = torch.stack([torch.as_tensor(x) for x in t])
    t = torch.as_tensor(t)
    if t.ndim == 2 and t.shape[1] > 1:
        return t.argmax(dim=1)
    return t.reshape(-1).long()


def per_class_recall(confusion: np.ndarray | torch.Tensor) -> np.ndarray:
    """Recall of each class from a K×K confusion matrix (rows: truth); NaN for classes absent from the truth."""
    cm = torch.as_tensor(confusion, dtype=torch.float64)
    support = cm.sum(dim=1)
    recall = torch.where(support > 0, cm.diagonal() / support.clamp(min=1), torch.full_like(support, float("nan")))
    return recall.numpy()


def balanced_accuracy_from_confusion(confusion: np.ndarray | torch.Tensor) -> float:
    """Mean recall over the classes present in the ground truth of a K×K confusion matrix (rows: truth)."""
    recall = per_class_recall(confusion)
    present = ~np.isnan(recall)
    if not present.any():
        raise ValueError("balanced accuracy of an empty confusion matrix is undefined")
    return float(recall[present].mean())


def balanced_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Balanced accuracy of integer class arrays (equals ``sklearn.metrics.balanced_accuracy_score``)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return balanced_accuracy_from_confusion(cm)


class BalancedAccuracy(Metric):
    """Ignite metric of multiclass balanced accuracy, usable as MONAI ``key_val_metric``.

    ``update`` takes ``(y_pred, y)``: ``y_pred`` as logits/probabilities ``B×K`` (argmax is taken), one-hot, or
    indices; ``y`` as indices ``B``/``B×1`` or one-hot ``B×K``; either may be a list of per-sample tensors (MONAI's
    decollated output).

    Args:
        num_classes: number of classes K.
        output_transform: maps the engine output to ``(y_pred, y)``; by default (and in ``update``) a MONAI engine's
            output dict, batched or decollated, gives ``pred`` and ``label``.
        device: device of the confusion counts (for DDP reduction on GPU).
    """

    def __init__(self, num_classes: int, output_transform: Callable | None = None,
                 device: str | torch.device = "cpu") -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        super().__init__(output_transform=output_transform or _pred_label, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=self._device)

    @reinit__is_reduced
    def update(self, output: tuple[Any, Any]) -> None:
        y_pred, y = _pred_label(output)
        pred = _to_indices(y_pred).to(self._device)
        true = _to_indices(y).to(self._device)
        if pred.shape != true.shape:
            raise ValueError(f"predictions and labels differ in count: {pred.shape} vs {true.shape}")
        if true.numel() and (true.min() < 0 or true.max() >= self.num_classes):
            raise ValueError(f"label out of range 0..{self.num_classes - 1}: {true.unique().tolist()}")
        flat = true * self.num_classes + pred
        self.confusion += torch.bincount(flat, minlength=self.num_classes**2).view(self.num_classes, -1)

    @sync_all_reduce("confusion:SUM")
    def compute(self) -> float:
        return balanced_accuracy_from_confusion(self.confusion.cpu())


def _pred_label(output: Any) -> tuple[Any, Any]:
    if isinstance(output, dict):
        return output["pred"], output["label"]
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
        return [o["pred"] for o in output], [o["label"] for o in output]
    return output
