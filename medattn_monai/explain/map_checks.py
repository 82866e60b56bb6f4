"""Quantitative checks of explanation maps: attribution inside a region mask, and agreement of two maps.

Pure functions on arrays (numpy or torch); the same code serves Grad-CAM and attention maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = ["map_rank_correlation", "mask_share", "mask_share_by_class", "mask_share_frame"]


def _batch(maps, name: str) -> np.ndarray:
    arr = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
    if arr.ndim < 2:
        raise ValueError(f"{name} must be a batch of maps (B x H x W), got shape {arr.shape}")
    return arr.reshape(arr.shape[0], -1).astype(np.float64)


def mask_share(attributions, masks) -> np.ndarray:
    """Share of each image's attribution that falls inside its mask.

    ``share_b = sum(attr_b * mask_b) / sum(attr_b)``. Compare it with the mask's area share (its mean): a map
    that ignores the region has a share near the area share.

    Args:
        attributions: B x H x W non-negative maps (Grad-CAM after ReLU, attention, rollout).
        masks: B x H x W binary masks (bool or 0/1) of the same shape.

    Returns:
        B shares in [0, 1]; NaN for an image whose map sums to 0.

    Raises:
        ValueError: shapes differ, the masks are not binary, or a map has negative values.
    """
    attr, mask = _batch(attributions, "attributions"), _batch(masks, "masks")
    if attr.shape != mask.shape:
        raise ValueError(f"attributions {attr.shape} and masks {mask.shape} differ in shape")
    if not np.isin(mask, (0.0, 1.0)).all():
        raise ValueError("masks must be binary (0/1 or bool)")
    if (attr < 0).any():
        raise ValueError("attributions must be non-negative (apply ReLU first): a share of signed mass is undefined")
    total = attr.sum(axis=1)
    inside = (attr * mask).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def mask_share_frame(attributions, masks, labels, *, image_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-image table of the attribution share inside the mask.

    Args:
        attributions: B x H x W non-negative maps.
        masks: B x H x W binary masks.
        labels: B true class indices.
        image_ids: optional B image identifiers (default 0..B-1).

    Returns:
        Columns ``image, label, share, area_share`` (``area_share``: fraction of pixels inside the mask).
    """
    share = mask_share(attributions, masks)
    area = _batch(masks, "masks").mean(axis=1)
    labels = np.asarray(labels)
    if len(labels) != len(share):
        raise ValueError(f"{len(labels)} labels for {len(share)} maps")
    ids = list(range(len(share))) if image_ids is None else list(image_ids)
    if len(ids) != len(share):
        raise ValueError(f"{len(ids)} image ids for {len(share)} maps")
    return pd.DataFrame({"image": ids, "label": labels, "share": share, "area_share": area})


def mask_share_by_class(frame: pd.DataFrame, class_names: Sequence[str] | None = None, *,
                        overall: bool = False) -> pd.DataFrame:
    """Mean attribution share inside the mask per true class, from :func:`mask_share_frame`'s table.

    Images with an empty mask or a map that sums to 0 are left out of the means.

    Args:
        frame: per-image table with columns ``label, share, area_share``.
        class_names: optional names indexed by label.
        overall: append a row over all classes together (``label`` -1, ``class`` ``"all"``).

    Returns:
        One row per class with columns ``label, class, n, mean_share, mean_area_share, ratio`` where ``ratio`` is
        ``mean_share / mean_area_share`` (above 1: the map concentrates on the region more than its area
        explains). Ready for ``to_csv``.
    """
    usable = frame[(frame["area_share"] > 0) & frame["share"].notna()]
    means = {"n": ("share", "size"), "mean_share": ("share", "mean"), "mean_area_share": ("area_share", "mean")}
    table = usable.groupby("label", sort=True).agg(**means).reset_index()
    table.insert(1, "class", [class_names[int(k)] if class_names is not None else str(k) for k in table["label"]])
    if overall:
        row = usable.assign(label=-1).groupby("label").agg(**means).reset_index()
        row.insert(1, "class", "all")
        table = pd.concat([table, row], ignore_index=True) if len(table) else row
    table["ratio"] = table["mean_share"] / table["mean_area_share"]
    return table


def map_rank_correlation(maps_a, maps_b) -> np.ndarray:
    """Spearman rank correlation between two maps of each image (do two explanations agree?).

    Both maps must have the same shape (upsample first); ties get average ranks.

    Args:
        maps_a: B x H x W maps.
        maps_b: B x H x W maps.

    Returns:
        B correlations in [-1, 1]; NaN for an image where either map is constant.
    """
    a, b = _batch(maps_a, "maps_a"), _batch(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a {a.shape} and maps_b {b.shape} differ in shape")
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / denom, np.nan)
