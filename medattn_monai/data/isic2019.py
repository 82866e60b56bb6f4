"""ISIC 2019 training folder -> datalist JSON (the same code path for the demo data and the real download).

On-disk format (https://challenge.isic-archive.com/data/#2019):

- ``ISIC_2019_Training_GroundTruth.csv``: ``image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK`` (one-hot, floats);
  UNK has no training positives, so 8 classes are used.
- ``ISIC_2019_Training_Metadata.csv``: ``image, age_approx, anatom_site_general, lesion_id, sex``.
- ``ISIC_2019_Training_Input/<image>.jpg``.

Splits are stratified by class and grouped by ``lesion_id`` (a blank lesion_id is its own group), so two images of
one lesion never sit on both sides of a split. A repeated image in either CSV, a one-hot cell other than 0 or 1,
and an image without a metadata row (unless ``allow_missing_metadata``) are errors naming the file, line and image
(``docs/data.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .datalist import save_datalist
from .io import read_csv_checked
from .splits import stratified_group_split
from .table_checks import line_of, plain_value, require_complete, require_files, require_unique

__all__ = ["ISIC_CLASSES", "GROUND_TRUTH_CSV", "METADATA_CSV", "IMAGE_DIR", "prepare_isic2019"]

ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
GROUND_TRUTH_CSV = "ISIC_2019_Training_GroundTruth.csv"
METADATA_CSV = "ISIC_2019_Training_Metadata.csv"
IMAGE_DIR = "ISIC_2019_Training_Input"
METADATA_FIELDS = ("age_approx", "anatom_site_general", "lesion_id", "sex")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


def _labels(gt: pd.DataFrame, path: Path) -> np.ndarray:
    """Class index of each row of the ground-truth table (-1 for UNK rows); every one-hot cell must be 0 or 1."""
    columns = [*ISIC_CLASSES, *(["UNK"] if "UNK" in gt.columns else [])]
    values = gt[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(values, (0.0, 1.0))  # NaN (a blank cell or text such as 'x') is bad too
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        more = f" (and {int(bad.any(axis=1).sum()) - 1} more row(s))" if bad.any(axis=1).sum() > 1 else ""
        raise DataError(f"{path}: line {line_of(row)} (image {gt['image'].iloc[row]}) has "
                        f"{plain_value(gt[columns[col]].iloc[row])!r} in column {columns[col]!r}, not 0 or 1{more}")
    onehot = values[:, : len(ISIC_CLASSES)]
    unk = values[:, len(ISIC_CLASSES)] == 1 if "UNK" in gt.columns else np.zeros(len(gt), bool)
    bad_rows = np.flatnonzero((onehot.sum(axis=1) != 1) & ~unk)
    if len(bad_rows):
        row = int(bad_rows[0])
        raise DataError(f"{path}: line {line_of(row)} (image {gt['image'].iloc[row]}) is not one-hot over "
                        f"{list(ISIC_CLASSES)}")
    labels = onehot.argmax(axis=1)
    labels[unk] = -1
    return labels


def _missing_metadata(gt: pd.DataFrame, meta: pd.DataFrame, meta_path: Path, allow: bool) -> list[str]:
    """Images of the ground truth without a metadata row: an error naming them, or (``allow``) their list."""
    missing = sorted(set(gt["image"]) - set(meta["image"]))
    if missing and not allow:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise DataError(f"{meta_path} has no row for {len(missing)} image(s) of {GROUND_TRUTH_CSV}: {shown} (their "
                        "lesion_id, which keeps a lesion's images in one split, is unknown; --allow_missing_metadata "
                        "makes each its own lesion, recorded in the datalist)")
    return missing


def _read_tables(root: Path, annotations: str | None, allow_missing_metadata: bool) -> tuple[pd.DataFrame, list]:
    """The checked and merged tables: one row per image of the 8 classes, with its label, metadata and annotations;
    and the images without metadata."""
    gt_path, meta_path = root / GROUND_TRUTH_CSV, root / METADATA_CSV
    gt = read_csv_checked(gt_path, ("image", *ISIC_CLASSES), "ISIC ground-truth CSV", dtype={"image": str})
    meta = read_csv_checked(meta_path, ("image", *METADATA_FIELDS), "ISIC metadata CSV",
                            dtype={"image": str, "lesion_id": str})
    require_complete(gt, ["image"], gt_path)
    require_unique(gt, "image", gt_path)
    require_unique(meta, "image", meta_path)  # a repeated row would list its image twice, maybe in two splits
    labels = _labels(gt, gt_path)
    missing = _missing_metadata(gt, meta, meta_path, allow_missing_metadata)

    df = gt[["image"]].assign(label=labels).merge(meta[["image", *METADATA_FIELDS]], on="image", how="left")
    if missing:
        df["metadata_missing"] = df["image"].isin(missing)
    if annotations:
        ann = read_csv_checked(annotations, ("image",), "annotations CSV", dtype={"image": str})
        require_unique(ann, "image", annotations)
        unknown = set(ann["image"]) - set(df["image"])
        if unknown:
            raise DataError(f"annotations CSV {annotations}: image(s) not in {gt_path.name}: {sorted(unknown)[:5]}")
        df = df.merge(ann, on="image", how="left", suffixes=("", "_annotation"))
    df = df[df["label"] >= 0].reset_index(drop=True)  # UNK rows have no class of the 8
    if df.empty:
        raise DataError(f"{gt_path} has no image of the classes {list(ISIC_CLASSES)}")
    return df, [m for m in missing if m in set(df["image"])]


def prepare_isic2019(dataset_dir: str, out_json: str, val_ratio: float = 0.15, test_ratio: float = 0.15,
                     seed: int = 0, annotations: str | None = None, check_files: bool = False,
                     allow_missing_metadata: bool = False) -> str:
    """Convert an ISIC 2019 training folder into a datalist JSON.

    Args:
        dataset_dir: folder holding the two CSVs and ``ISIC_2019_Training_Input/``.
        out_json: datalist to write (atomically); image paths in it are relative to ``dataset_dir``.
        val_ratio: fraction of each class for validation.
        test_ratio: fraction of each class for test.
        seed: seed of the split.
        annotations: optional CSV with an ``image`` column whose other columns (artefact flags, mask paths relative
            to ``dataset_dir``, dermoscopic structures) are added to each item.
        check_files: verify that every image file exists.
        allow_missing_metadata: accept images that have no row in the metadata CSV (by default an error naming
            them): each becomes its own lesion, with ``"metadata_missing": true`` in its item and its name under
            ``meta.images_without_metadata``.

    Returns:
        The path of the written datalist.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError(f"dataset_dir not found: {root}")
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise DataError(f"val_ratio={val_ratio} and test_ratio={test_ratio} must be in [0, 1) with a sum below 1")
    df, missing = _read_tables(root, annotations, allow_missing_metadata)
    df["image"] = [f"{IMAGE_DIR}/{name}.jpg" for name in df["image"]]
    if check_files:
        require_files(root, df["image"].tolist())

    lesion = df["lesion_id"].astype(object)
    blank = lesion.isna() | (lesion.astype(str).str.strip() == "")
    groups = np.where(blank, "image:" + df["image"], "lesion:" + lesion.astype(str))
    ratios = (1 - val_ratio - test_ratio, val_ratio, test_ratio)
    split = stratified_group_split(df["label"].to_numpy(), groups, ratios, seed=seed)
    datalist: dict = {"name": "isic2019", "classes": list(ISIC_CLASSES), "group_field": "lesion_id",
                      "groups_shared_with_training": []}
    records = df.to_dict(orient="records")
    for index, name in enumerate(("training", "validation", "test")):
        datalist[name] = [r for r, s in zip(records, split, strict=True) if s == index]
    datalist["meta"] = {"source": "ISIC 2019", "seed": seed, "ratios": list(ratios),
                        "images_without_metadata": missing}
    save_datalist(datalist, out_json)
    counts = {s: len(datalist[s]) for s in ("training", "validation", "test")}
    print(f"wrote {out_json}: {counts} over {len(ISIC_CLASSES)} classes")
    if missing:
        print(f"note: {len(missing)} image(s) have no metadata row: each is its own lesion (listed under "
              f"meta.images_without_metadata in {out_json})")
    return str(out_json)
