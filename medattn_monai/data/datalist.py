"""The datalist JSON shared by every bundle (MONAI style, see ``docs/data.md``).

``{"name": ..., "classes": [...], "training": [...], "validation": [...], "test": [...], "split_hash": ...}``; for
Camelyon17 also ``"val_ood"`` and ``"test_ood"``. Each item has ``image`` (path relative to ``dataset_dir``),
``label`` (int) and annotation fields when present.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, DataError
from .io import write_json_atomic
from .splits import subsample_indices

__all__ = ["SPLITS", "load_datalist", "save_datalist", "split_hash", "split_items"]

SPLITS = ("training", "validation", "test", "val_ood", "test_ood")


def _split_stream(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def split_hash(datalist: Mapping[str, Any]) -> str:
    """Hash of the split: which image is in which split with which label (annotations do not count)."""
    content = {
        s: [(item["image"], int(item["label"])) for item in datalist.get(s, [])]
        for s in SPLITS
        if s in datalist
    }
    content["classes"] = list(datalist["classes"])
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def _clean(value: Any) -> Any:
    # JSON has no NaN: missing annotations become null
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def save_datalist(datalist: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Add ``split_hash`` and write the datalist atomically; returns it."""
    out = {k: v for k, v in datalist.items() if k != "split_hash"}
    for s in SPLITS:
        if s in out:
            out[s] = [{k: _clean(v) for k, v in item.items()} for item in out[s]]
    out["split_hash"] = split_hash(out)
    write_json_atomic(out, path)
    return out


def load_datalist(path: str | Path) -> dict[str, Any]:
    """Read and check a datalist; errors name the file, split, item and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"datalist not found: {path} (create it with `medattn prepare …` or `medattn demo-data`)")
    try:
        datalist = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"datalist {path} is not valid JSON: {e}") from None
    classes = datalist.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DataError(f"datalist {path} has no 'classes' list")
    for s in SPLITS:
        for i, item in enumerate(datalist.get(s, [])):
            if "image" not in item or "label" not in item:
                raise DataError(f"datalist {path}: {s}[{i}] lacks field 'image' or 'label': {item}")
            label = item["label"]
            if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(classes):
                raise DataError(
                    f"datalist {path}: {s}[{i}] ({item['image']}) has label {label!r}, "
                    f"not a class index in 0..{len(classes) - 1} ({classes})"
                )
    if "split_hash" not in datalist:
        datalist["split_hash"] = split_hash(datalist)
    datalist["_path"] = str(path)
    return datalist


def split_items(datalist: Mapping[str, Any], split: str, dataset_dir: str | Path | None = None,
                max_samples: int | None = None, subsample_seed: int = 0) -> list[dict]:
    """The items of one split with ``image`` made absolute against ``dataset_dir`` (checked to exist).

    Each item also gets ``index``, its position in the split, and ``image_id``, the image as the datalist names it
    (predictions refer back to both).

    Args:
        datalist: a datalist from :func:`load_datalist`.
        split: one of :data:`SPLITS`.
        dataset_dir: folder the image paths are relative to (None: leave them as they are).
        max_samples: keep a seeded random subset of at most this many items (None: all), e.g. for CPU runs on
            Camelyon17; ``index`` stays the position in the full split.
        subsample_seed: seed of that subset (each split draws its own, so capping one never changes another).
    """
    where = datalist.get("_path", "datalist")
    if split not in datalist:
        present = [s for s in SPLITS if s in datalist]
        raise DataError(f"{where} has no split {split!r}; it has {present}")
    items = datalist[split]
    if not items:
        raise DataError(f"split {split!r} of {where} is empty")
    root = None
    if dataset_dir is not None:
        root = Path(dataset_dir)
        if not root.is_dir():
            raise DataError(f"dataset_dir not found: {root}")
    try:
        keep = subsample_indices(len(items), max_samples, subsample_seed, stream=_split_stream(split))
    except ValueError as e:
        raise ConfigError(f"max_samples_per_split: {e}") from None
    out = []
    for i in keep.tolist():
        item = items[i]
        image = Path(item["image"])
        if root is not None and not image.is_absolute():
            image = root / image
        out.append({**item, "image": str(image), "image_id": item["image"], "index": i})
    return out
