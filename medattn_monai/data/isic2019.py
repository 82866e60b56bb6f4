"""ISIC 2019 training folder -> datalist JSON (the same code path for the demo data and the real download).

On-disk format (https://challenge.isic-archive.com/data/#2019):

- ``ISIC_2019_Training_GroundTruth.csv``: ``image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK`` (one-hot, floats);
  UNK has no training positives, so 8 classes are used.
- ``ISIC_2019_Training_Metadata.csv``: ``image, age_approx, anatom_site_general, lesion_id, sex``.
- ``ISIC_2019_Training_Input/<image>.jpg``.

Splits are stratified by class and grouped by ``lesion_id`` (a blank lesion_id is its own group), so two images of
one lesion never sit on both sides of a split.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np
import pandas as pd

from ..errors import DataError
from .datalist import save_datalist
from .io import read_csv_checked
from .splits import stratified_group_split
from .table_checks import require_files, require_unique

__all__ = ["ISIC_CLASSES", "GROUND_TRUTH_CSV", "METADATA_CSV", "IMAGE_DIR", "prepare_isic2019"]

ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
GROUND_TRUTH_CSV = "ISIC_2019_Training_GroundTruth.csv"
METADATA_CSV = "ISIC_2019_Training_Metadata.csv"
IMAGE_DIR = "ISIC_2019_Training_Input"
METADATA_FIELDS = ("age_approx", "anatom_site_general", "lesion_id", "sex")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


def _labels(gt: pd.DataFrame, path: Path) -> np.ndarray:
    onehot = gt[list(ISIC_CLASSES)]
    bad = onehot.isna().any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        col = onehot.columns[onehot.iloc[row].isna()][0]
        raise DataError(f"{path}: row {row + 2} (image {gt['image'].iloc[row]}) has no value in column {col!r}")
    values = onehot.to_numpy(dtype=float)
    n_pos = (values > 0.5).sum(axis=1)
    unk = gt["UNK"].to_numpy(dtype=float) > 0.5 if "UNK" in gt.columns else np.zeros(len(gt), bool)
    bad_rows = np.flatnonzero((n_pos != 1) & ~unk)
    if len(bad_rows):
        row = int(bad_rows[0])
        raise DataError(
            f"{path}: row {row + 2} (image {gt['image'].iloc[row]}) is not one-hot over {list(ISIC_CLASSES)}"
        )
    labels = values.argmax(axis=1)
    labels[unk] = -1
    return labels


def prepare_isic2019(
    dataset_dir: str,
    out_json: str,
    val_ratio: float = 0.15,
    test_ratio: float = 0.15,
    seed: int = 0,
    annotations: str | None = None,
    check_files: bool = False,
) -> str:
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

    Returns:
        The path of the written datalist.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError(f"dataset_dir not found: {root}")
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise DataError(f"val_ratio={val_ratio} and test_ratio={test_ratio} must be in [0, 1) with a sum below 1")
    gt_path, meta_path = root / GROUND_TRUTH_CSV, root / METADATA_CSV
    gt = read_csv_checked(gt_path, ("image", *ISIC_CLASSES), "ISIC ground-truth CSV")
    meta = read_csv_checked(meta_path, ("image", *METADATA_FIELDS), "ISIC metadata CSV", dtype={"lesion_id": str})
    require_unique(gt, "image", gt_path)
    labels = _labels(gt, gt_path)

    df = gt[["image"]].assign(label=labels).merge(meta[["image", *METADATA_FIELDS]], on="image", how="left")
    if annotations:
        ann = read_csv_checked(annotations, ("image",), "annotations CSV")
        unknown = set(ann["image"]) - set(df["image"])
        if unknown:
            raise DataError(f"annotations CSV {annotations}: image(s) not in {gt_path.name}: {sorted(unknown)[:5]}")
        df = df.merge(ann, on="image", how="left", suffixes=("", "_annotation"))
    df = df[df["label"] >= 0].reset_index(drop=True)  # UNK rows have no class of the 8
    if df.empty:
        raise DataError(f"{gt_path} has no image of the classes {list(ISIC_CLASSES)}")

    df["image"] = [f"{IMAGE_DIR}/{name}.jpg" for name in df["image"]]
    if check_files:
        require_files(root, df["image"].tolist())

    lesion = df["lesion_id"].astype(object)
    blank = lesion.isna() | (lesion.astype(str).str.strip() == "")
    groups = np.where(blank, "image:" + df["image"], "lesion:" + lesion.astype(str))
    split = stratified_group_split(
        df["label"].to_numpy(), groups, (1 - val_ratio - test_ratio, val_ratio, test_ratio), seed=seed
    )
    datalist: dict = {"name": "isic2019", "classes": list(ISIC_CLASSES)}
    records = df.to_dict(orient="records")
    for index, name in enumerate(("training", "validation", "test")):
        datalist[name] = [r for r, s in zip(records, split) if s == index]
    datalist["meta"] = {"source": "ISIC 2019", "seed": seed, "ratios": [1 - val_ratio - test_ratio, val_ratio, test_ratio]}
    save_datalist(datalist, out_json)
    counts = {s: len(datalist[s]) for s in ("training", "validation", "test")}
    print(f"wrote {out_json}: {counts} over {len(ISIC_CLASSES)} classes")
    return str(out_json)

