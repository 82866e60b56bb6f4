"""Collect an evaluator's predictions: metrics per split, a predictions CSV and a confusion matrix.

Predictions CSV (``predictions_<split>.csv``): ``image, label (if known), pred, prob_<class>…``; ``label`` and
``pred`` are class indices, ``image`` the path as the datalist gives it. Metrics, named ``<prefix>_<metric>``:
``bacc`` (balanced accuracy), ``auc`` (macro one-vs-rest ROC AUC over the classes present with both positives and
negatives) and ``recall_<class>`` for every class present. Under DDP the predictions of all ranks are gathered first.

Images the dataset could not read (inference: ``skip_unreadable``, see ``medattn_monai/data/dataset.py``) are
listed in ``unreadable_<split>.csv`` (``image, reason``; written whenever the dataset skips, so it always describes
the latest run) and named in one warning; when no image at all could be read the run fails with a
:class:`~medattn_monai.errors.DataError`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from ..data.io import atomic_path
from ..errors import DataError
from ..metrics.balanced_accuracy import balanced_accuracy_from_confusion, per_class_recall

__all__ = ["EvaluatorOutputs", "PredictionWriter", "SPLIT_PREFIX", "classification_metrics", "macro_auc"]

logger = logging.getLogger("medattn")

# metric prefix of each split ("val" is kept for the per-epoch validation series of training)
SPLIT_PREFIX = {"training": "train", "validation": "validation", "test": "test", "val_ood": "val_ood",
                "test_ood": "test_ood"}


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over classes that have both positives and negatives (NaN if none has)."""
    from monai.metrics import compute_roc_auc

    aucs = []
    for k in range(probs.shape[1]):
        positive = labels == k
        if positive.any() and (~positive).any():
            aucs.append(compute_roc_auc(torch.as_tensor(probs[:, k]), torch.as_tensor(positive.astype(np.int64))))
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                           prefix: str) -> tuple[dict[str, float], np.ndarray]:
    """``<prefix>_bacc``, ``<prefix>_auc``, ``<prefix>_recall_<class>`` and the confusion matrix (rows: truth)."""
    k = len(classes)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    metrics = {f"{prefix}_bacc": balanced_accuracy_from_confusion(confusion), f"{prefix}_auc": macro_auc(probs, labels)}
    for name, recall in zip(classes, per_class_recall(confusion), strict=True):
        if not np.isnan(recall):
            metrics[f"{prefix}_recall_{name}"] = float(recall)
    return metrics, confusion


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _every_rank(obj: Any) -> list[Any]:
    """``obj`` of every process, in rank order (this process's alone outside DDP)."""
    if not _distributed():
        return [obj]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def _gather(array: np.ndarray) -> np.ndarray:
    parts = _every_rank(array)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _gather_list(items: list) -> list:
    return [item for part in _every_rank(items) for item in part]


class EvaluatorOutputs:
    """Collects an evaluator's class probabilities (softmax of ``pred``), item ``index`` and ``label`` over one run.

    Attach it to the evaluator; after the run, :meth:`gathered` returns them from every rank (under DDP each rank
    evaluates a disjoint part of the split), in split order. A batch without labels gives label -1.
    """

    def __init__(self, pred_key: str = "pred") -> None:
        self.pred_key = pred_key
        self._probs: list[torch.Tensor] = []
        self._index: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._unreadable: list[tuple[int, str]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def reset(self, engine: Engine | None = None) -> None:
        self._probs, self._index, self._labels, self._unreadable = [], [], [], []

    def collect(self, engine: Engine) -> None:
        self._unreadable += engine.state.batch.get("unreadable", [])
        logits = engine.state.output[self.pred_key]
        self._probs.append(torch.softmax(logits.detach().float(), dim=1).cpu())
        self._index.append(torch.as_tensor(engine.state.batch["index"]).cpu())
        self._labels.append(torch.as_tensor(engine.state.batch.get("label", torch.full_like(self._index[-1], -1))))

    def __len__(self) -> int:
        return sum(len(i) for i in self._index)

    def gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(probs N×K, index N, labels N)`` of every rank, sorted by index."""
        probs = _gather(torch.cat(self._probs).numpy())
        index = _gather(torch.cat(self._index).numpy())
        labels = _gather(torch.cat(self._labels).cpu().numpy())
        order = np.argsort(index, kind="stable")
        return probs[order], index[order], labels[order]

    def unreadable(self) -> list[tuple[int, str]]:
        """``(index, message)`` of every item of every rank the dataset could not read, sorted by index."""
        return sorted(_gather_list(self._unreadable))


class PredictionWriter:
    """Ignite handler for an evaluator whose batches carry ``label`` and ``index`` (see ``data/dataset.py``).

    Args:
        classes: class names, in label order.
        output_dir: folder of the CSVs (written on rank 0).
        split: name of the split being evaluated (set it before each run when one evaluator serves several).
        write_files: write the predictions and confusion CSVs.
    """

    def __init__(self, classes: Sequence[str], output_dir: str, split: str = "test", write_files: bool = True) -> None:
        self.classes = list(classes)
        self.output_dir = Path(output_dir)
        self.split = split
        self.write_files = write_files
        self.results: dict[str, dict[str, float]] = {}
        self.files: list[Path] = []
        self.outputs = EvaluatorOutputs()

    def attach(self, engine: Engine) -> None:
        self.outputs.attach(engine)
        engine.add_event_handler(Events.COMPLETED, self._complete)

    def _complete(self, engine: Engine) -> None:
        probs, index, labels = self.outputs.gathered()
        dataset = engine.data_loader.dataset
        if getattr(dataset, "skip_unreadable", False):
            self._report_unreadable(dataset, self.outputs.unreadable(), readable=len(index))
        known = (labels >= 0).all()
        prefix = SPLIT_PREFIX.get(self.split, self.split)
        metrics: dict[str, float] = {}
        confusion = None
        if known:
            metrics, confusion = classification_metrics(probs, labels, self.classes, prefix)
            engine.state.metrics.update(metrics)
        self.results[self.split] = metrics
        if self._writes():
            self._write(probs, index, labels if known else None, confusion, dataset.data)

    def _writes(self) -> bool:
        return self.write_files and (not _distributed() or dist.get_rank() == 0)

    def _report_unreadable(self, dataset: Any, unreadable: list[tuple[int, str]], readable: int) -> None:
        """Write ``unreadable_<split>.csv``, say how many images could not be read, fail if none could."""
        path = self.output_dir / f"unreadable_{self.split}.csv"
        if self._writes():
            by_index = {int(item["index"]): item for item in dataset.data}
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["image", "reason"])
                for i, reason in unreadable:
                    item = by_index[int(i)]
                    w.writerow([item.get("image_id", item["image"]), reason])
            self.files.append(path)
        if not unreadable:
            return
        total = readable + len(unreadable)
        if not readable:
            raise DataError(f"none of the {total} images could be read ({unreadable[0][1]}); listed in {path}")
        logger.warning("%d of %d images could not be read and have no prediction (listed in %s), e.g. %s",
                       len(unreadable), total, path, unreadable[0][1])

    def _write(self, probs: np.ndarray, index: np.ndarray, labels: np.ndarray | None, confusion: np.ndarray | None,
               items: Sequence[dict]) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        by_index = {int(item["index"]): item for item in items}
        path = self.output_dir / f"predictions_{self.split}.csv"
        # written to a new file and renamed: an earlier upload of this file (a hard link) keeps its content
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            label_column = ["label"] if labels is not None else []
            w.writerow(["image", *label_column, "pred", *(f"prob_{c}" for c in self.classes)])
            for row, i in enumerate(index):
                item = by_index[int(i)]
                label = [int(labels[row])] if labels is not None else []
                w.writerow([item.get("image_id", item["image"]), *label, int(probs[row].argmax()),
                            *(f"{p:.6f}" for p in probs[row])])
        self.files.append(path)
        logger.info("%s: predictions of %d images in %s", self.split, len(index), path)
        if confusion is not None:
            cpath = self.output_dir / f"confusion_{self.split}.csv"
            with atomic_path(cpath) as tmp, open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["true \\ pred", *self.classes])
                for name, row in zip(self.classes, confusion, strict=True):
                    w.writerow([name, *row.tolist()])
            self.files.append(cpath)
