"""The exported bundle's ``configs/inference.json`` and its ``configs/evaluate.json`` overlay, MONAI only.

The training pipeline decodes each image with :class:`~medattn_monai.data.LoadResizeImaged` (Pillow, antialiased
resize, ``uint8``) and :class:`~medattn_monai.data.PrepareBatch` scales it to [0, 1] and normalises it with the
ImageNet mean and standard deviation. The exported configs do the same with the bundle's copy of the loader and
MONAI's ``ScaleIntensityRanged`` (``x / 255``) and ``NormalizeIntensityd`` (``(x - mean) / std`` per channel): the
same float32 operations, so the bundle's probabilities equal the original's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..data.augment import IMAGENET_MEAN, IMAGENET_STD
from ..engine.evaluation import IMAGE_SUFFIXES

__all__ = ["inference_config", "evaluate_config"]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def inference_config(network_target: str, network_args: Mapping[str, Any], loader_target: str, image_size: int,
                     in_channels: int, classes: Sequence[str], mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> dict:
    """``configs/inference.json``: predict every image under ``dataset_dir`` into ``eval/predictions.csv``.

    Longer than 60 lines because it is one literal dict, so that it reads top to bottom as the JSON it writes.

    Args:
        network_target: the ``_target_`` of the network class in the bundle's ``scripts``.
        network_args: its constructor arguments (the run's exact network).
        loader_target: the ``_target_`` of the bundle's copy of ``LoadResizeImaged``.
        image_size: the side the images are resized to (the run's ``image_size``).
        in_channels: image channels (3: RGB, 1: grey).
        classes: class names in logit order.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel standard deviation divided by.
    """
    return {
        "imports": ["$import glob", "$import os", "$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "ckpt_path": "$os.path.join(@bundle_root, 'models', 'model.pt')",
        "dataset_dir": "/path/to/images",
        "image_suffixes": list(IMAGE_SUFFIXES),
        "output_dir": "$os.path.join(@bundle_root, 'eval')",
        "output_filename": "predictions.csv",
        "batch_size": 32,
        # the cores this process may use, at most 4: more workers than cores only makes PyTorch warn and wait
        "num_workers": "$min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') "
                       "else os.cpu_count() or 1)",
        "image_size": image_size,
        "classes": list(classes),
        "mean": list(mean),
        "std": list(std),
        "network_def": {"_target_": network_target, **{k: _jsonable(v) for k, v in network_args.items()}},
        "network": "$@network_def.to(@device)",
        "input_files": "$sorted(f for f in glob.glob(os.path.join(@dataset_dir, '**', '*'), recursive=True) "
                       "if f.lower().endswith(tuple(@image_suffixes)))",
        "input_data": "$[{'image': f, 'filename': os.path.relpath(f, @dataset_dir)} for f in @input_files]",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": loader_target, "keys": "image", "image_size": "@image_size", "channels": in_channels},
                {"_target_": "CastToTyped", "keys": "image", "dtype": "$torch.float32"},
                {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0.0, "a_max": 255.0, "b_min": 0.0,
                 "b_max": 1.0},
                {"_target_": "NormalizeIntensityd", "keys": "image", "subtrahend": "@mean", "divisor": "@std",
                 "channel_wise": True},
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "@input_data", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": "@batch_size",
                       "shuffle": False, "num_workers": "@num_workers"},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [{"_target_": "Activationsd", "keys": "pred", "softmax": True}],
        },
        "prediction_saver": {
            "_target_": "ClassificationSaver",
            "output_dir": "@output_dir",
            "filename": "@output_filename",
            "batch_transform": "$lambda batch: [{'filename_or_obj': item['filename']} for item in batch]",
            "output_transform": "$monai.handlers.from_engine(['pred'])",
        },
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "@ckpt_path", "load_dict": {"model": "@network"},
             "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
            "@prediction_saver",
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
        },
        "run": ["$@evaluator.run()"],
    }


def evaluate_config(metric_target: str, num_classes: int) -> dict:
    """``configs/evaluate.json``, an overlay on ``inference.json``: metrics on a labelled split of a datalist.

    Args:
        metric_target: the ``_target_`` of the bundle's copy of ``BalancedAccuracy``.
        num_classes: number of classes.
    """
    return {
        "+imports": ["$import json"],
        "datalist": "$os.path.join(@dataset_dir, 'datalist.json')",
        "eval_split": "test",
        "input_data": "$[{'image': os.path.join(@dataset_dir, item['image']), 'label': item['label'], "
                      "'filename': item['image']} for item in json.load(open(@datalist))[@eval_split]]",
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {"_target_": "AsDiscreted", "keys": "label", "to_onehot": num_classes},
            ],
        },
        "key_metric": {
            "test_bacc": {"_target_": metric_target, "num_classes": num_classes},
        },
        "additional_metrics": {
            "test_auc": {"_target_": "ROCAUC", "average": "macro",
                         "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"},
        },
        "metrics_saver": {"_target_": "MetricsSaver", "save_dir": "@output_dir", "metrics": ["test_bacc", "test_auc"]},
        "+handlers": ["@metrics_saver"],
        "evaluator#key_val_metric": "@key_metric",
        "evaluator#additional_metrics": "@additional_metrics",
    }
