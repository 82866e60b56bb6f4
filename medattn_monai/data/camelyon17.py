"""Camelyon17-WILDS v1.0 folder -> datalist JSON (the same code path for the demo data and the real download).

On-disk format (Koh et al., "WILDS", ICML 2021; the ``camelyon17_v1.0`` archive, patches under CC0):

- ``metadata.csv``: a leading unnamed index column, then ``patient, node, x_coord, y_coord, tumor, slide, center,
  split`` (455,954 rows, all integers);
- ``patches/patient_{p:03d}_node_{n}/patch_patient_{p:03d}_node_{n}_x_{x}_y_{y}.png`` (96×96 RGB).

Splits, following WILDS' ``official`` scheme, plus an in-distribution test split WILDS does not have:

- ``training``: centres 0, 3 and 4 with ``split`` 0, less the patients held out for ``test``;
- ``validation``: centres 0, 3 and 4 with ``split`` 1 (WILDS ``id_val``: patches of the training slides), less the
  patches of the patients held out for ``test`` (model selection never sees a test patient);
- ``test``: the ``split``-0 patches of a seeded hold-out of training patients, grouped by patient (no patient is in
  both ``training`` and ``test``) and stratified by centre (every training hospital contributes);
- ``val_ood``: centre 1 and ``test_ood``: centre 2, every row whatever its ``split`` value (as WILDS assigns them).

The table is converted with vectorised pandas and no image is opened: the full 455k rows take a few seconds
(``benchmarks/convert_camelyon17.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .datalist import SPLITS, save_datalist
from .io import read_csv_checked
from .splits import stratified_group_split, subsample_indices
from .table_checks import line_of, require_complete, require_files, require_integers, require_unique, require_values

__all__ = [
    "CAMELYON17_CLASSES", "METADATA_CSV", "PATCH_DIR", "METADATA_COLUMNS", "TRAIN_CENTERS", "VAL_OOD_CENTER",
    "TEST_OOD_CENTER", "read_camelyon17_metadata", "patch_paths", "camelyon17_splits", "prepare_camelyon17",
]

CAMELYON17_CLASSES = ("normal", "tumor")
METADATA_CSV = "metadata.csv"
PATCH_DIR = "patches"
METADATA_COLUMNS = ("patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split")
TRAIN_CENTERS = (0, 3, 4)
VAL_OOD_CENTER = 1
TEST_OOD_CENTER = 2
CENTERS = (0, 1, 2, 3, 4)
# annotation fields copied into every datalist item (the hospital is a feature an explanation may test)
ITEM_FIELDS = ("center", "patient", "node", "slide")


def read_camelyon17_metadata(path: str | Path) -> pd.DataFrame:
    """Read and check a WILDS ``metadata.csv``: the columns of :data:`METADATA_COLUMNS` as ``int64``.

    Errors name the file, the line and the column: a missing column or value, a non-integer, an unknown centre
    (0–4), split (0/1) or tumour label (0/1), a patch listed twice, a patient listed under two centres.
    """
    df = read_csv_checked(path, METADATA_COLUMNS, "Camelyon17-WILDS metadata.csv")
    # the leading unnamed column is pandas' saved index: dropped, row numbers are positions
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:")]).reset_index(drop=True)
    if df.empty:
        raise DataError(f"{path} has no rows")
    require_complete(df, METADATA_COLUMNS, path)
    df = require_integers(df, METADATA_COLUMNS, path)
    require_values(df, "center", CENTERS, path, "centre")
    require_values(df, "split", (0, 1), path, "split")
    require_values(df, "tumor", (0, 1), path, "tumour label")
    for col in ("patient", "node", "x_coord", "y_coord", "slide"):
        negative = (df[col] < 0).to_numpy()
        if negative.any():
            row = int(np.flatnonzero(negative)[0])
            raise DataError(f"{path}: line {line_of(row)} has negative {col} {int(df[col].iloc[row])}")
    require_unique(df, ["patient", "node", "x_coord", "y_coord"], path, "patch")
    centres = df.groupby("patient")["center"].nunique()
    if (centres > 1).any():
        patient = int(centres.index[np.flatnonzero(centres.to_numpy() > 1)[0]])
        rows = np.flatnonzero((df["patient"] == patient).to_numpy())
        seen = sorted(df["center"].iloc[rows].unique().tolist())
        raise DataError(f"{path}: patient {patient} appears under centres {seen} (e.g. line {line_of(rows[0])}); "
                        "a patient belongs to one hospital")
    return df


def patch_paths(meta: pd.DataFrame) -> pd.Series:
    """The patch path of every row, relative to the dataset folder (vectorised string operations)."""
    folder = "patient_" + meta["patient"].astype(str).str.zfill(3) + "_node_" + meta["node"].astype(str)
    return (PATCH_DIR + "/" + folder + "/patch_" + folder + "_x_" + meta["x_coord"].astype(str)
            + "_y_" + meta["y_coord"].astype(str) + ".png")


def camelyon17_splits(meta: pd.DataFrame, test_ratio: float = 0.15, seed: int = 0) -> dict[str, np.ndarray]:
    """Row positions of each split (module docstring) for a checked metadata table.

    Args:
        meta: the table from :func:`read_camelyon17_metadata` (columns ``patient, center, split`` are used).
        test_ratio: target fraction of the training centres' ``split``-0 patches held out as ``test``, per centre;
            whole patients move, so each training centre gives at least one patient.
        seed: seed of the choice of held-out patients.

    Returns:
        ``{split: sorted int array of row positions}`` for the splits of :data:`SPLITS`.
    """
    if not 0 < test_ratio < 1:
        raise DataError(f"test_ratio must be in (0, 1), got {test_ratio}")
    center = meta["center"].to_numpy()
    split = meta["split"].to_numpy()
    in_train_centres = np.isin(center, TRAIN_CENTERS)
    pool = np.flatnonzero(in_train_centres & (split == 0))
    if pool.size == 0:
        raise DataError(f"no training patches: no row has a centre in {list(TRAIN_CENTERS)} and split 0")
    patients = meta["patient"].to_numpy()[pool]
    held_out = stratified_group_split(center[pool], patients, (1 - test_ratio, test_ratio), seed=seed) == 1
    # WILDS' id_val holds split-1 patches of every training-centre patient: those of the held-out patients leave it,
    # or model selection would see the test patients
    test_patients = np.unique(patients[held_out])
    out = {
        "training": pool[~held_out],
        "validation": np.flatnonzero(in_train_centres & (split == 1) & ~np.isin(meta["patient"].to_numpy(),
                                                                               test_patients)),
        "test": pool[held_out],
        "val_ood": np.flatnonzero(center == VAL_OOD_CENTER),
        "test_ood": np.flatnonzero(center == TEST_OOD_CENTER),
    }
    if out["training"].size == 0 or out["test"].size == 0:
        n = len(np.unique(patients))
        raise DataError(f"the training centres have {n} patient(s) with split-0 patches: too few to hold some out "
                        f"for the test split (test_ratio={test_ratio}) and keep some for training")
    return out


def prepare_camelyon17(
    dataset_dir: str,
    out_json: str,
    test_ratio: float = 0.15,
    seed: int = 0,
    max_samples_per_split: int | None = None,
    check_files: bool = False,
    progress: bool = True,
) -> str:
    """Convert a Camelyon17-WILDS v1.0 folder into a datalist JSON with the WILDS splits and an ID test split.

    Args:
        dataset_dir: folder holding ``metadata.csv`` and ``patches/`` (e.g. ``.../camelyon17_v1.0``).
        out_json: datalist to write (atomically); patch paths in it are relative to ``dataset_dir``.
        test_ratio: fraction of the training centres' patches whose patients are held out as the ``test`` split.
        seed: seed of the held-out patients and of the subsampling.
        max_samples_per_split: keep a seeded random subset of at most this many patches per split (None: all).
            The bundle's ``max_samples_per_split`` key does the same at load time.
        check_files: verify that every listed patch exists (one directory listing per slide, with a progress bar).
        progress: show the progress bar of ``check_files``.

    Returns:
        The path of the written datalist.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError(f"dataset_dir not found: {root}")
    csv_path = root / METADATA_CSV
    meta = read_camelyon17_metadata(csv_path)
    rows = camelyon17_splits(meta, test_ratio, seed)

    table = meta[list(ITEM_FIELDS)].copy()
    table.insert(0, "label", meta["tumor"].to_numpy())
    table.insert(0, "image", patch_paths(meta).astype(object))
    if check_files:
        require_files(root, table["image"].tolist(), progress=progress, what="patch")

    # WILDS' id_val (our validation) holds other patches of the training slides: it shares patients by design
    datalist: dict = {"name": "camelyon17", "classes": list(CAMELYON17_CLASSES), "group_field": "patient",
                      "groups_shared_with_training": ["validation"]}
    for stream, name in enumerate(SPLITS):
        positions = rows[name][subsample_indices(len(rows[name]), max_samples_per_split, seed, stream)]
        datalist[name] = table.iloc[positions].to_dict(orient="records")
    test_patients = sorted(np.unique(meta["patient"].to_numpy()[rows["test"]]).tolist())
    datalist["meta"] = {
        "source": "Camelyon17-WILDS v1.0",
        "seed": seed,
        "test_ratio": test_ratio,
        "test_patients": test_patients,
        "max_samples_per_split": max_samples_per_split,
        "train_centers": list(TRAIN_CENTERS),
        "val_ood_center": VAL_OOD_CENTER,
        "test_ood_center": TEST_OOD_CENTER,
    }
    save_datalist(datalist, out_json)
    counts = {name: len(datalist[name]) for name in SPLITS}
    print(f"wrote {out_json}: {counts}; test patients {test_patients}")
    return str(out_json)
