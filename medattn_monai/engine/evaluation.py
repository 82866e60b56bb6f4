"""Evaluation and inference of a trained run folder (called by the bundles' ``evaluate.json``/``inference.json``).

Which run: the bundles' ``run_dir`` key, else the latest finished run of the bundle's dataset
(:func:`~medattn_monai.tracking.run_folder.resolve_run_dir`); a datalist whose classes differ from the run's is
refused (:func:`run_datalist`).

Evaluating a run again replaces its test metrics: MLflow keeps every logged value of a metric, so evaluation
``n`` of a run logs its metrics at step ``n`` (one value per metric and split per evaluation, never two at one
step), and the run's metrics, which every reader of this package uses (``run.data.metrics``, ``search_runs``),
are the latest step's: the latest evaluation. MLflow offers no way to delete a logged metric value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.datalist import load_datalist, split_items
from ..data.dataset import ImageClassificationDataset
from ..data.loader import make_dataloader
from ..data.transforms import NIFTI_SUFFIXES
from ..errors import ConfigError, DataError
from ..handlers.predictions import PredictionWriter
from ..tracking.run_folder import BEST_MODEL, check_classes, damaged_file, read_run_info

__all__ = ["IMAGE_SUFFIXES", "ReadableInferer", "evaluate_splits", "evaluation_step", "inference_items", "run_datalist",
           "split_loaders"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", *NIFTI_SUFFIXES)
logger = logging.getLogger("medattn")


def split_loaders(datalist: Mapping[str, Any], splits: Sequence[str], dataset_dir: str, transform: Any,
                  image_size: int, batch_size: int, cache: str = "auto", num_workers: int | str = "auto",
                  progress: bool = True, max_samples: int | None = None) -> dict[str, Any]:
    """One evaluation loader per split (no shuffling, no padding across ranks).

    ``max_samples`` evaluates a seeded random subset of at most that many items per split (the training's
    ``max_samples_per_split``: see :func:`~medattn_monai.data.split_items`).
    """
    if not splits:
        raise ConfigError("eval_splits is empty")
    loaders = {}
    for split in splits:
        items = split_items(datalist, split, dataset_dir, max_samples=max_samples)
        dataset = ImageClassificationDataset(items, transform,
                                             (3, image_size, image_size), cache=cache, progress=progress, name=split)
        loaders[split] = make_dataloader(dataset, batch_size, shuffle=False, num_workers=num_workers)
    return loaders


def evaluate_splits(evaluator: Any, writer: PredictionWriter, loaders: Mapping[str, Any], run_dir: str,
                    log_mlflow: bool = True) -> dict[str, dict[str, float]]:
    """Run ``evaluator`` over every split's loader; log the metrics and files into the run's MLflow run.

    The metrics go into the same MLflow run as the training (its id is in ``run.json``), so one ``run_type=train``
    run holds a model's whole record.
    """
    if not (Path(run_dir) / BEST_MODEL).is_file():
        raise ConfigError(f"run folder {run_dir} has no {BEST_MODEL}: was the training interrupted before epoch 1?")
    problem = damaged_file(Path(run_dir) / BEST_MODEL)
    if problem:
        raise ConfigError(f"{Path(run_dir) / BEST_MODEL} is truncated or corrupt ({problem}): put back an intact copy "
                          "(e.g. the run's MLflow artifact) or train the run again")
    for split, loader in loaders.items():
        writer.split = split
        evaluator.data_loader = loader
        evaluator.state.epoch_length = len(loader)
        evaluator.run()
        summary = "  ".join(f"{k} {v:.4f}" for k, v in writer.results[split].items() if not k.count("_recall_"))
        logger.info("%s: %s", split, summary or "predictions written (no labels)")
    if log_mlflow:
        info = read_run_info(run_dir)
        if info.get("run_id"):
            _log_to_run(info, writer)
        else:
            logger.warning("run %s was not tracked in MLflow: metrics stay in %s", run_dir, writer.output_dir)
    return writer.results


def evaluation_step(client: Any, run_id: str, keys: Sequence[str]) -> int:
    """The step of a run's next evaluation: one more than the highest step any of ``keys`` was logged at."""
    logged = set(client.get_run(run_id).data.metrics)
    steps = [m.step for key in keys if key in logged for m in client.get_metric_history(run_id, key)]
    return max(steps, default=0) + 1


def _log_to_run(info: Mapping[str, Any], writer: PredictionWriter) -> None:
    from ..tracking.mlflow_runs import log_artifact, log_metrics, named_store_faults, open_client

    client = open_client(info.get("tracking_uri"))
    metrics = {k: v for split in writer.results.values() for k, v in split.items()}
    step = evaluation_step(client, info["run_id"], list(metrics))
    with named_store_faults(info.get("tracking_uri"), hint=f"the predictions are in {writer.output_dir}"):
        log_metrics(client, info["run_id"], metrics, step=step)
    logger.info("evaluation %d of run %s logged into its MLflow run %s", step, info.get("run_name"), info["run_id"])
    for path in writer.files:
        log_artifact(client, info["run_id"], path, artifact_path="eval")


class ReadableInferer:
    """The network on a batch, and no call for an empty one: inference leaves unreadable images out of their batch
    (``skip_unreadable``), so a batch may hold none, and networks that flatten with ``view(B, -1)`` (MONAI's ResNet)
    fail on zero images.

    Args:
        num_classes: the width of the (empty) output of an empty batch.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)

    def __call__(self, inputs: Any, network: Any, *args: Any, **kwargs: Any) -> Any:
        if inputs.shape[0] == 0:
            return inputs.new_zeros((0, self.num_classes))
        return network(inputs, *args, **kwargs)


def run_datalist(path: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """The datalist at ``path``, refused when its classes are not those the run ``info`` was trained on."""
    datalist = load_datalist(path)
    check_classes(info, datalist["classes"], path)
    return datalist


def inference_items(input_dir: str | None = None, datalist: Mapping[str, Any] | None = None, split: str = "test",
                    dataset_dir: str | None = None) -> list[dict]:
    """Items to predict: every image file in ``input_dir`` (recursively), else the ``split`` of ``datalist``."""
    if input_dir:
        root = Path(input_dir)
        if not root.is_dir():
            raise DataError(f"input_dir not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise DataError(f"no image ({', '.join(IMAGE_SUFFIXES)}) found under {root}")
        return [{"image": str(p), "image_id": str(p.relative_to(root)), "index": i} for i, p in enumerate(files)]
    if datalist is None:
        raise ConfigError("inference needs input_dir or input_datalist")
    return split_items(datalist, split, dataset_dir)
