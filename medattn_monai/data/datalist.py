"""The datalist JSON shared by every bundle (MONAI style, described in ``docs/data.md``).

``{"name": ..., "classes": [...], "training": [...], "validation": [...], "test": [...], "split_hash": ...}``; for
Camelyon17 also ``"val_ood"`` and ``"test_ood"``. Each item has ``image`` (path relative to ``dataset_dir``),
``label`` (int) and annotation fields when present. ``group_field`` names the item field of a lesion or patient
(``medattn_monai/data/datalist_checks.py`` refuses leakage between splits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .datalist_checks import SPLITS, check_datalist, normalised_paths
from .io import write_json_atomic
from .splits import subsample_indices

__all__ = ["SPLITS", "load_datalist", "save_datalist", "split_hash", "split_items"]

logger = logging.getLogger("medattn")


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
    """Check the datalist as :func:`load_datalist` would (nothing is written if it fails), add ``split_hash`` and
    write it atomically; returns it."""
    out = {k: v for k, v in datalist.items() if k not in ("split_hash", "_path")}
    for s in SPLITS:
        if s in out:
            out[s] = [{k: _clean(v) for k, v in item.items()} for item in out[s]]
    check_datalist(out, str(path))
    out["split_hash"] = split_hash(out)
    write_json_atomic(out, path)
    return out


def load_datalist(path: str | Path) -> dict[str, Any]:
    """Read and check a datalist (``medattn_monai/data/datalist_checks.py``: structure, paths, leakage); errors name
    the file, split, item and field.

    ``split_hash`` is computed from the splits as they are: a hash the file states for other splits (a datalist
    edited by hand) is replaced, with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"datalist not found: {path} (create it with `medattn prepare …` or `medattn demo-data`)")
    try:
        datalist = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"datalist {path} is not valid JSON: {e}") from None
    except OSError as e:
        raise DataError(f"cannot read datalist {path}: {e.strerror}") from None
    check_datalist(datalist, str(path))
    computed = split_hash(datalist)
    stated = datalist.get("split_hash")
    if stated is not None and stated != computed:
        logger.warning("datalist %s states split_hash %s, but its splits hash to %s (edited by hand?): using %s",
                       path, stated, computed, computed)
    datalist["split_hash"] = computed
    datalist["_path"] = str(path)
    return datalist


def split_items(datalist: Mapping[str, Any], split: str, dataset_dir: str | Path | None = None,
                max_samples: int | None = None, subsample_seed: int = 0) -> list[dict]:
    """The items of one split with ``image`` joined to ``dataset_dir`` (checked to exist; an image path that is
    absolute or climbs out of it with ``..`` is refused, naming the item).

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
    keep = keep.tolist()
    images = [items[i]["image"] for i in keep]
    if root is not None:
        prefix = f"datalist {datalist['_path']}" if "_path" in datalist else "datalist"
        images = normalised_paths(images, lambda k: f"{prefix}: {split}[{keep[k]}]")
        base = str(root)
        images = [os.path.join(base, image) for image in images]
    return [{**items[i], "image": image, "image_id": items[i]["image"], "index": i}
            for i, image in zip(keep, images, strict=True)]
