"""The exported bundle's ``configs/metadata.json``: the source bundle's dataset description plus the run's facts.

Texts about the task, modality and authors come from the metadata of the bundle the run was trained with; what the
run was trained on (``data_source``, dataset references, intended use) is decided by the caller from the run's own
data (``medattn_monai/export/provenance.py``: demo data is never described as the real dataset); the network's
input and output, class names, versions, package requirements and ``eval_metrics`` (the run's logged test metrics)
come from the run and this environment. ``generated_by`` marks the bundle as this command's
(``medattn_monai/export/target.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import monai
import numpy
import torch

from .target import EXPORT_STAMP

__all__ = ["PAPER", "bundle_metadata", "value_range"]

PAPER = ("Piater, Penzel, Stein, Denzler. When Medical Imaging Met Self-Attention: A Love Story That Didn't Quite "
         "Work Out. VISAPP 2024. arXiv:2404.12295")


def value_range(mean: Sequence[float], std: Sequence[float]) -> list[float]:
    """The range of ``(x - mean) / std`` for ``x`` in [0, 1], over channels (rounded outwards to 3 decimals)."""
    low = min(-m / s for m, s in zip(mean, std, strict=True))
    high = max((1 - m) / s for m, s in zip(mean, std, strict=True))
    return [float(numpy.floor(low * 1000) / 1000), float(numpy.ceil(high * 1000) / 1000)]


def bundle_metadata(
    source: Mapping[str, Any],
    *,
    name: str,
    description: str,
    version: str,
    changelog: str,
    required_packages: Mapping[str, str],
    classes: Sequence[str],
    image_size: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    eval_metrics: Mapping[str, float],
    data_source: str,
    references: Sequence[str],
    intended_use: str,
    authors: str | None = None,
) -> dict:
    """The metadata of an exported bundle.

    Longer than 60 lines because it is one literal dict, in the order of the JSON it becomes.

    Args:
        source: the metadata of the bundle the run was trained with.
        name: the bundle's display name.
        description: what the bundle is (model, data, result).
        version: the bundle's version (also the only ``changelog`` entry, with ``changelog`` as its text).
        changelog: what this version is.
        required_packages: third-party packages the configs and scripts import (besides MONAI, PyTorch, NumPy).
        classes: class names in logit order.
        image_size: input side.
        in_channels: input channels.
        mean: normalisation mean per channel.
        std: normalisation standard deviation per channel.
        eval_metrics: the run's test metrics.
        data_source: what the run was trained on.
        references: the references (the study's paper is added when missing).
        intended_use: the bundle's intended use.
        authors: overrides the source bundle's authors.
    """
    references = list(references)
    if not any("2404.12295" in r for r in references):
        references.insert(0, PAPER)
    channels = "RGB" if in_channels == 3 else f"{in_channels}-channel"
    return {
        "schema": source["schema"],
        "version": version,
        "changelog": {version: changelog},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": dict(required_packages),
        "supported_apps": {},
        "name": name,
        "task": source.get("task", "image classification"),
        "description": description,
        "authors": authors or source.get("authors", ""),
        "copyright": source.get("copyright", ""),
        "data_source": data_source,
        "data_type": source.get("data_type", ""),
        "image_classes": (f"{channels} image, resized to {image_size}x{image_size} (antialiased), scaled to [0, 1] "
                          f"and normalised per channel with mean {list(mean)} and std {list(std)}"),
        "label_classes": f"{len(classes)} classes, label index: name: "
                         + ", ".join(f"{i}: {c}" for i, c in enumerate(classes)),
        "pred_classes": f"{len(classes)} logits in the order of the label classes; inference applies softmax "
                        "(probabilities)",
        "eval_metrics": dict(eval_metrics),
        "intended_use": intended_use,
        "references": references,
        "generated_by": EXPORT_STAMP,
        "network_data_format": network_data_format(source, classes, image_size, in_channels, mean, std),
    }


def network_data_format(source: Mapping[str, Any], classes: Sequence[str], image_size: int, in_channels: int,
                        mean: Sequence[float], std: Sequence[float]) -> dict:
    """``network_data_format``: the image input (format, modality and patch flag from the source bundle) and the
    logits and probabilities out, one channel per class."""
    source_input = dict(source.get("network_data_format", {}).get("inputs", {}).get("image", {}))
    channel_names = ({"0": "R", "1": "G", "2": "B"} if in_channels == 3
                     else {str(i): f"channel {i}" for i in range(in_channels)})
    class_defs = {str(i): c for i, c in enumerate(classes)}
    return {
        "inputs": {
            "image": {
                "type": "image",
                "format": source_input.get("format", "magnitude"),
                "modality": source_input.get("modality", "regular"),
                "num_channels": in_channels,
                "spatial_shape": [image_size, image_size],
                "dtype": "float32",
                "value_range": value_range(mean, std),
                "is_patch_data": bool(source_input.get("is_patch_data", False)),
                "channel_def": channel_names,
            }
        },
        "outputs": {
            "pred": {
                "type": "logits",
                "format": "classes",
                "num_channels": len(classes),
                "spatial_shape": [1],
                "dtype": "float32",
                "value_range": [],
                "is_patch_data": False,
                "channel_def": class_defs,
            }
        },
        "post_processed_outputs": {
            "pred": {
                "type": "probabilities",
                "format": "classes",
                "num_channels": len(classes),
                "spatial_shape": [1],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": class_defs,
            }
        },
    }
