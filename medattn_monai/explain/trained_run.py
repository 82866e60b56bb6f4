"""A trained run as the explanation commands need it: its network with the best weights, and the images of a split
preprocessed exactly as its evaluation does.

A run is named by its folder (``runs/<experiment>/<run name>``) or by its MLflow run id; finding it (and downloading
the artifacts of a run trained on another machine) and rebuilding its network are
:mod:`medattn_monai.tracking.run_folder`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import (
    ImageClassificationDataset,
    LoadResizeImaged,
    PrepareBatch,
    load_datalist,
    make_dataloader,
    split_items,
)
from ..errors import DataError
from ..tracking.run_folder import load_network, locate_run

__all__ = ["TrainedRun", "load_trained_run", "predict_split", "resolve_device", "split_batches",
           "split_data"]

logger = logging.getLogger("medattn")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the first GPU if there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TrainedRun:
    """A trained run's folder, its ``run.json`` and its network (best weights, eval mode, on ``device``)."""

    run_dir: Path
    info: dict[str, Any]
    network: nn.Module
    device: torch.device

    @property
    def run_id(self) -> str | None:
        """The MLflow run id (None when the run was not tracked)."""
        return self.info.get("run_id")

    @property
    def image_size(self) -> int:
        return int(self.info["params"]["image_size"])

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])


def load_trained_run(run: str | Path, output_root: str = "runs", tracking_uri: str | None = None,
                     device: str | torch.device = "auto") -> TrainedRun:
    """Load a trained run: ``build_network(**network_args)`` from its ``run.json`` with the weights of ``model.pt``.

    Args:
        run: the run folder, or its MLflow run id.
        output_root: where run folders live (to find one by run id).
        tracking_uri: the MLflow store (to find a run by id; default: see ``resolve_tracking_uri``).
        device: where the network runs (``"auto"``: a GPU if there is one).

    Raises:
        ConfigError: no such run, it has no ``model.pt`` (interrupted before its first epoch), or its network does
            not rebuild with its weights.
    """
    location = locate_run(run, output_root, tracking_uri)
    device = resolve_device(device)
    return TrainedRun(location.run_dir, location.info, load_network(location, device), device)


def split_data(trained: TrainedRun, datalist: str | None = None, split: str = "test",
               dataset_dir: str | None = None) -> tuple[dict[str, Any], list[dict]]:
    """The datalist (the run's own by default) and the items of ``split`` with absolute image paths.

    A datalist whose split differs from the run's (another ``split_hash``) is allowed (e.g. the same images with
    more annotations), with a warning: its evaluation split may hold training images of the run.
    """
    datalist_content = load_datalist(datalist or trained.info["datalist"])
    if datalist_content["classes"] != trained.classes:
        raise DataError(f"datalist {datalist_content['_path']} has classes {datalist_content['classes']}, "
                        f"the run was trained on {trained.classes}")
    recorded = trained.info.get("split_hash")
    if recorded and datalist_content["split_hash"] != recorded:
        logger.warning("datalist %s splits the data differently from the run's (split_hash %s, run %s): its %r "
                       "split may hold images the model was trained on", datalist_content["_path"],
                       datalist_content["split_hash"], recorded, split)
    root = dataset_dir or trained.info.get("dataset_dir")
    return datalist_content, split_items(datalist_content, split, root)


def split_batches(items: list[dict], image_size: int, batch_size: int = 64,
                  num_workers: int | str = "auto") -> Iterator[dict[str, torch.Tensor]]:
    """Batches ``{"image": uint8 B×3×S×S, "label", "index"}`` of ``items``, in the items' order, decoded as the
    bundles' evaluation decodes them (``LoadResizeImaged`` at the run's ``image_size``)."""
    dataset = ImageClassificationDataset(items, LoadResizeImaged(keys="image", image_size=image_size),
                                         (3, image_size, image_size), cache="auto", progress=False, name="explain")
    yield from make_dataloader(dataset, batch_size, shuffle=False, num_workers=num_workers)


def predict_split(trained: TrainedRun, items: list[dict], batch_size: int = 64,
                  num_workers: int | str = "auto") -> torch.Tensor:
    """Class probabilities (softmax of the logits) of every item, ``N×K`` in the items' order, on the CPU."""
    prepare = PrepareBatch()  # the bundles' evaluation preprocessing: scale to [0, 1], ImageNet normalisation
    probs = []
    with torch.no_grad():
        for batch in split_batches(items, trained.image_size, batch_size, num_workers):
            x = prepare.images(batch["image"], trained.device)
            probs.append(torch.softmax(trained.network(x).float(), dim=1).cpu())
    return torch.cat(probs)

