"""derm7pt folder -> datalist JSON with the seven-point-checklist annotations and ISIC 2019 class labels.

The seven-point checklist dataset (Kawahara et al., IEEE JBHI 23(2), 2019; https://derm.cs.sfu.ca, ``release_v0``)
supplies dermoscopic-structure annotations a feature-usage test can check a model against. On-disk format:

- ``meta/meta.csv``: one row per case: ``case_num, diagnosis, seven_point_score, pigment_network, streaks,
  pigmentation, regression_structures, dots_and_globules, blue_whitish_veil, vascular_structures,
  level_of_diagnostic_difficulty, elevation, location, sex, management, clinic, derm, case_id, notes``;
- ``meta/{train,valid,test}_indexes.csv``: column ``indexes``, 0-based row positions into ``meta.csv``;
- ``images/``: the dermoscopic (``derm``) and clinical (``clinic``) images, at the paths the CSV gives relative to
  ``images/``.

Each item gets ``image`` (the dermoscopic image by default), ``label`` (an ISIC 2019 class index, so an ISIC-trained
model is evaluated on the same class list), ``diagnosis`` (derm7pt's own), the seven criteria as strings, and the
remaining metadata. Diagnoses without an ISIC 2019 class (melanosis, miscellaneous) are left out of the splits and
listed under ``"unmapped"`` in the datalist and in the converter's message, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .datalist import save_datalist
from .io import read_csv_checked
from .isic2019 import ISIC_CLASSES
from .table_checks import line_of, require_complete, require_files, require_integers, require_unique, require_values

__all__ = [
    "SEVEN_POINT_CRITERIA", "CRITERION_VALUES", "DIAGNOSIS_TO_ISIC", "META_CSV", "INDEX_FILES", "IMAGE_DIR",
    "read_derm7pt_meta", "prepare_derm7pt",
]

META_CSV = "meta/meta.csv"
IMAGE_DIR = "images"
INDEX_FILES = {"training": "meta/train_indexes.csv", "validation": "meta/valid_indexes.csv",
               "test": "meta/test_indexes.csv"}
SEVEN_POINT_CRITERIA = ("pigment_network", "streaks", "pigmentation", "regression_structures", "dots_and_globules",
                        "blue_whitish_veil", "vascular_structures")
# every value of the released meta.csv (the derm7pt package maps each one to a number and rejects any other)
CRITERION_VALUES = {
    "pigment_network": ("absent", "typical", "atypical"),
    "streaks": ("absent", "regular", "irregular"),
    "pigmentation": ("absent", "diffuse regular", "localized regular", "diffuse irregular", "localized irregular"),
    "regression_structures": ("absent", "blue areas", "white areas", "combinations"),
    "dots_and_globules": ("absent", "regular", "irregular"),
    "blue_whitish_veil": ("absent", "present"),
    "vascular_structures": ("absent", "arborizing", "comma", "hairpin", "within regression", "wreath", "dotted",
                            "linear irregular"),
}
# derm7pt diagnosis -> ISIC 2019 class; None: no ISIC class (left out, listed)
DIAGNOSIS_TO_ISIC: dict[str, str | None] = {
    "basal cell carcinoma": "BCC",
    "blue nevus": "NV",
    "clark nevus": "NV",
    "combined nevus": "NV",
    "congenital nevus": "NV",
    "dermal nevus": "NV",
    "recurrent nevus": "NV",
    "reed or spitz nevus": "NV",
    "dermatofibroma": "DF",
    # ISIC's BKL is "solar lentigo / seborrheic keratosis / lichen planus-like keratosis"
    "lentigo": "BKL",
    "seborrheic keratosis": "BKL",
    "melanoma": "MEL",
    "melanoma (in situ)": "MEL",
    "melanoma (less than 0.76 mm)": "MEL",
    "melanoma (0.76 to 1.5 mm)": "MEL",
    "melanoma (more than 1.5 mm)": "MEL",
    "melanoma metastasis": "MEL",
    "vascular lesion": "VASC",
    # hyperpigmentation and a catch-all: no ISIC 2019 class
    "melanosis": None,
    "miscellaneous": None,
}
REQUIRED_COLUMNS = ("case_num", "diagnosis", *SEVEN_POINT_CRITERIA, "derm")
OPTIONAL_COLUMNS = ("seven_point_score", "level_of_diagnostic_difficulty", "elevation", "location", "sex",
                    "management", "clinic")


def read_derm7pt_meta(path: str | Path) -> pd.DataFrame:
    """Read and check ``meta/meta.csv``; errors name the file, line and column."""
    df = read_csv_checked(path, REQUIRED_COLUMNS, "derm7pt meta.csv")
    if df.empty:
        raise DataError(f"{path} has no rows")
    require_complete(df, REQUIRED_COLUMNS, path)
    df = require_integers(df, ["case_num"], path)
    for col in ("diagnosis", *SEVEN_POINT_CRITERIA):
        df[col] = df[col].astype(str).str.strip()
    df["diagnosis"] = df["diagnosis"].str.lower()
    for criterion, values in CRITERION_VALUES.items():
        require_values(df, criterion, values, path, "value")
    require_unique(df, "case_num", path, "case_num")
    require_unique(df, "derm", path, "dermoscopic image")
    return df


def _read_indexes(root: Path, n_cases: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    owner = np.full(n_cases, -1)
    for k, (split, rel) in enumerate(INDEX_FILES.items()):
        path = root / rel
        df = require_integers(read_csv_checked(path, ("indexes",), "derm7pt index file"), ["indexes"], path)
        idx = df["indexes"].to_numpy()
        bad = (idx < 0) | (idx >= n_cases)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: line {line_of(row)} has index {int(idx[row])}, not a row of meta.csv "
                            f"(0..{n_cases - 1})")
        require_unique(df, "indexes", path, "index")
        taken = owner[idx] >= 0
        if taken.any():
            row = int(np.flatnonzero(taken)[0])
            other = list(INDEX_FILES)[owner[idx[row]]]
            raise DataError(f"{path}: line {line_of(row)}: case at index {int(idx[row])} is also in the "
                            f"{other} split ({INDEX_FILES[other]})")
        owner[idx] = k
        out[split] = idx
    return out


def _items_table(meta: pd.DataFrame, image: str, mapping: Mapping[str, str | None]) -> pd.DataFrame:
    """One row per case: its item fields; ``label`` is NaN where the diagnosis has no ISIC class."""
    table = pd.DataFrame({"image": IMAGE_DIR + "/" + meta[image].astype(str)})
    isic = meta["diagnosis"].map(mapping)
    table["label"] = isic.map({c: i for i, c in enumerate(ISIC_CLASSES)})
    for col in ("diagnosis", "case_num", *SEVEN_POINT_CRITERIA):
        table[col] = meta[col]
    for col in OPTIONAL_COLUMNS:
        if col in meta.columns:
            if col == "clinic":
                name = "derm_image" if image == "clinic" else "clinic_image"
                source = meta["derm" if image == "clinic" else "clinic"]
                table[name] = np.where(source.isna(), None, IMAGE_DIR + "/" + source.astype(str))
            else:
                table[col] = meta[col].astype(object).where(meta[col].notna(), None)
    return table


def _diagnosis_mapping(overrides: Mapping[str, str | None] | None) -> dict[str, str | None]:
    mapping = dict(DIAGNOSIS_TO_ISIC)
    for diagnosis, cls in dict(overrides or {}).items():
        if cls is not None and cls not in ISIC_CLASSES:
            raise DataError(f"diagnosis_map maps {diagnosis!r} to {cls!r}, not one of {list(ISIC_CLASSES)}")
        mapping[str(diagnosis).strip().lower()] = cls
    return mapping


def _report(out_json: str, datalist: Mapping, unassigned: np.ndarray) -> None:
    """Print what was written, left out and unassigned."""
    counts = {s: len(datalist[s]) for s in INDEX_FILES}
    print(f"wrote {out_json}: {counts} over {len(ISIC_CLASSES)} ISIC classes")
    unmapped = datalist["unmapped"]
    if unmapped:
        by_diagnosis = pd.Series([u["diagnosis"] for u in unmapped]).value_counts().to_dict()
        listed = ", ".join(f"{d} ({n})" for d, n in by_diagnosis.items())
        print(f"left out {len(unmapped)} case(s) whose diagnosis has no ISIC 2019 class: {listed}; "
              f"they are listed under 'unmapped' in {out_json}")
    if len(unassigned):
        print(f"note: {len(unassigned)} case(s) of meta.csv are in no index file (listed under meta.unassigned_cases)")


def prepare_derm7pt(dataset_dir: str, out_json: str, image: str = "derm",
                    diagnosis_map: Mapping[str, str | None] | None = None, check_files: bool = False,
                    progress: bool = True) -> str:
    """Convert a derm7pt ``release_v0`` folder into a datalist JSON over the ISIC 2019 classes.

    Args:
        dataset_dir: folder holding ``meta/`` and ``images/``.
        out_json: datalist to write (atomically); image paths in it are relative to ``dataset_dir``.
        image: which image is the item's ``image``: ``derm`` (dermoscopic, default) or ``clinic``; the other is
            kept as ``derm_image`` / ``clinic_image``.
        diagnosis_map: entries that override :data:`DIAGNOSIS_TO_ISIC` (a diagnosis -> an ISIC class, or None to
            leave it out), e.g. ``{"lentigo": None}`` (on the command line: ``--diagnosis_map '{"lentigo": None}'``).
        check_files: verify that every image file exists (with a progress bar).
        progress: show the progress bar of ``check_files``.

    Returns:
        The path of the written datalist.
    """
    if image not in ("derm", "clinic"):
        raise DataError(f"image must be 'derm' or 'clinic', got {image!r}")
    mapping = _diagnosis_mapping(diagnosis_map)
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DataError(f"dataset_dir not found: {root}")
    meta_path = root / META_CSV
    meta = read_derm7pt_meta(meta_path)
    if image == "clinic":
        require_complete(meta, ["clinic"], meta_path)
        require_unique(meta, "clinic", meta_path, "clinical image")
    splits = _read_indexes(root, len(meta))

    table = _items_table(meta, image, mapping)
    if check_files:
        require_files(root, table["image"].tolist(), progress=progress, what=f"{image} image")

    mapped = table["label"].notna().to_numpy()
    unassigned = np.setdiff1d(np.arange(len(meta)), np.concatenate(list(splits.values())))
    # a case is one lesion (its dermoscopic and clinical images are one item)
    datalist: dict = {"name": "derm7pt", "classes": list(ISIC_CLASSES), "group_field": "case_num",
                      "groups_shared_with_training": []}
    datalist["unmapped"] = []
    for split, idx in splits.items():
        keep = idx[mapped[idx]]
        datalist[split] = table.iloc[keep].astype({"label": int}).to_dict(orient="records")
        datalist["unmapped"] += [{"case_num": int(meta["case_num"].iloc[i]), "diagnosis": meta["diagnosis"].iloc[i],
                                  "split": split, "image": table["image"].iloc[i]} for i in idx[~mapped[idx]]]
    datalist["meta"] = {
        "source": "derm7pt release_v0",
        "image": image,
        "diagnosis_map": mapping,
        "unassigned_cases": [int(meta["case_num"].iloc[i]) for i in unassigned],
    }
    if not any(datalist[s] for s in INDEX_FILES):
        raise DataError(f"{meta_path}: no case has a diagnosis with an ISIC class")
    save_datalist(datalist, out_json)
    _report(out_json, datalist, unassigned)
    return str(out_json)
