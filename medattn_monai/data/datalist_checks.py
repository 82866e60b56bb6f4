"""The checks :func:`~medattn_monai.data.load_datalist` runs on a datalist; the rules and their reasons are in
``docs/data.md``.

- **Structure**: a mapping with a ``classes`` list; each split a list of mappings with ``image`` (a string) and
  ``label`` (a class index).
- **Paths**: ``image`` (and any ``*_image`` or ``*_mask`` field) is relative to ``dataset_dir`` and stays inside it:
  no absolute path, no ``..`` that climbs out.
- **Leakage**: an image is in one split, once (whatever its label); a group (an ISIC lesion, a Camelyon17 patient,
  a derm7pt case) in ``training`` is in no other split, except the splits the datalist lists in
  ``groups_shared_with_training`` (Camelyon17's ``validation``: WILDS' ``id_val`` holds other patches of the
  training slides), which can never be ``test`` or ``test_ood``.

Every error is one line naming the datalist file, the split and index of the item, and the value at fault; when
many items are at fault, a count and the first few.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DataError

__all__ = ["SPLITS", "TEST_SPLITS", "GROUP_FIELDS", "SHARED_GROUPS", "check_datalist", "group_field",
           "normalised_paths", "relative_image_path"]

SPLITS = ("training", "validation", "test", "val_ood", "test_ood")
TEST_SPLITS = ("test", "test_ood")
# the group field of each converter's datalists, for datalists written before they declared "group_field"
GROUP_FIELDS = {"isic2019": "lesion_id", "camelyon17": "patient", "derm7pt": "case_num"}
# splits that share groups with training by the dataset's design, for datalists that do not declare them
SHARED_GROUPS = {"camelyon17": ("validation",)}
PATH_FIELD_SUFFIXES = ("_image", "_mask")
_SHOWN = 3  # offending items named in a message when there are many
_DRIVE = re.compile(r"[A-Za-z]:/")
# what a path needs to be absolute, climb, or differ from its normal form: a leading or doubled "/", a "." part,
# a backslash, a drive letter, a trailing "/"
_MAYBE_UNNORMALISED = re.compile(r"^[/.]|//|/\.|\\|:|/$")
# the same as substrings of paths joined by newlines (a path holding a newline can only add matches, never hide one)
_UNNORMALISED_PARTS = ("\n/", "\n.", "//", "/.", "\\", ":", "/\n", "\n\n")


def _place(split: str, index: int) -> str:
    return f"{split}[{index}]"


def _is_plain(value: Any) -> bool:
    """A relative path in normal form (the usual case, checked 10x faster than by normpath)."""
    return isinstance(value, str) and value != "" and not _MAYBE_UNNORMALISED.search(value)


def relative_image_path(value: Any, where: str, field: str = "image") -> str:
    """``value`` as a normalised path relative to the dataset folder; an error names ``where`` (file, split, index)
    when it is not a string, is absolute or climbs out of the folder with ``..``."""
    if _is_plain(value):
        return value
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: field {field!r} is {value!r}, not a path relative to dataset_dir")
    posix = value.replace("\\", "/")  # a datalist written on Windows
    if posix.startswith("/") or _DRIVE.match(posix):
        raise DataError(f"{where}: {field} {value!r} is an absolute path; datalist paths are relative to dataset_dir")
    norm = posixpath.normpath(posix)
    if norm == ".." or norm.startswith("../"):
        raise DataError(f"{where}: {field} {value!r} climbs out of dataset_dir with '..'; datalist paths stay "
                        "inside dataset_dir")
    return norm


def group_field(datalist: Mapping[str, Any]) -> str | None:
    """The item field naming each item's group: the datalist's ``group_field`` (``null``: no groups), else the one
    of its converter (:data:`GROUP_FIELDS`, by ``name``), else None."""
    if "group_field" in datalist:
        return datalist["group_field"]
    return GROUP_FIELDS.get(datalist.get("name"))


def _shared_splits(datalist: Mapping[str, Any], path: str) -> tuple[str, ...]:
    shared = datalist.get("groups_shared_with_training", SHARED_GROUPS.get(datalist.get("name"), ()))
    if not isinstance(shared, (list, tuple)) or not all(isinstance(s, str) for s in shared):
        raise DataError(f"datalist {path}: 'groups_shared_with_training' must be a list of split names, got {shared!r}")
    bad = [s for s in shared if s in TEST_SPLITS or s == "training" or s not in SPLITS]
    if bad:
        raise DataError(f"datalist {path}: 'groups_shared_with_training' lists {bad}; it may list only "
                        f"{[s for s in SPLITS if s != 'training' and s not in TEST_SPLITS]} (a test split never "
                        "shares a lesion or patient with training)")
    return tuple(shared)


def _check_structure(datalist: Any, path: str) -> None:
    if not isinstance(datalist, Mapping):
        raise DataError(f"datalist {path} is a JSON {type(datalist).__name__}, not an object "
                        '{"classes": [...], "training": [...], ...}')
    classes = datalist.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DataError(f"datalist {path} has no 'classes' list")
    for split in SPLITS:
        items = datalist.get(split, [])
        if not isinstance(items, list):
            raise DataError(f"datalist {path}: split {split!r} is a {type(items).__name__}, not a list of items")
        for i, item in enumerate(items):
            where = f"datalist {path}: {_place(split, i)}"
            if not isinstance(item, Mapping) or "image" not in item or "label" not in item:
                raise DataError(f"{where} lacks field 'image' or 'label': {item}")
            label = item["label"]
            if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(classes):
                raise DataError(f"{where} ({item['image']}) has label {label!r}, not a class index in "
                                f"0..{len(classes) - 1} ({classes})")


def normalised_paths(values: list[Any], where: Callable[[int], str], field: str = "image") -> list[Any]:
    """``values`` checked and normalised by :func:`relative_image_path` (None stays None); ``where(i)`` names the
    item of ``values[i]``. A few substring searches over the joined paths find the usual case, every path plain,
    in milliseconds for Camelyon17's 455k patches (a path-by-path check took a second)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        text = f"\n{chr(10).join(present)}\n"
        if not any(part in text for part in _UNNORMALISED_PARTS):
            return values
    return [None if v is None else relative_image_path(v, where(i), field) for i, v in enumerate(values)]


def _check_paths(datalist: Mapping[str, Any], path: str) -> dict[str, list[str]]:
    """Check every path field; returns the normalised image paths of each split."""
    out = {}
    for split in SPLITS:
        items = datalist.get(split, [])

        def where(i: int, split: str = split) -> str:
            return f"datalist {path}: {_place(split, i)}"

        out[split] = normalised_paths([item["image"] for item in items], where)
        for field in [f for f in set().union(*items) if f.endswith(PATH_FIELD_SUFFIXES)] if items else []:
            normalised_paths([item.get(field) for item in items], where, field)
    return out


def _check_duplicates(datalist: Mapping[str, Any], images: Mapping[str, list[str]], path: str) -> None:
    every = [image for split_images in images.values() for image in split_images]
    if len(set(every)) == len(every):
        return
    places: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for split, split_images in images.items():
        for i, image in enumerate(split_images):
            places[image].append((split, i, datalist[split][i]["label"]))
    repeated = {image: where for image, where in places.items() if len(where) > 1}

    def describe(image: str, where: list[tuple[str, int, int]]) -> str:
        labels = sorted({label for _, _, label in where})
        text = f"{image!r} in " + ", ".join(_place(s, i) for s, i, _ in where)
        return text + (f" with labels {labels}" if len(labels) > 1 else "")

    shown = [describe(image, where) for image, where in list(repeated.items())[:_SHOWN]]
    if len(repeated) == 1:
        message = f"image {shown[0]}"
    else:
        message = f"{len(repeated)} images are listed more than once, e.g. " + "; ".join(shown)
    raise DataError(f"datalist {path}: {message}: an image belongs to one split, once (train/test leakage)")


def _check_groups(datalist: Mapping[str, Any], path: str) -> None:
    field = group_field(datalist)
    if field is None:
        return
    if not isinstance(field, str):
        raise DataError(f"datalist {path}: 'group_field' must be an item field name or null, got {field!r}")
    shared = _shared_splits(datalist, path)
    first: dict[str, dict[Any, int]] = defaultdict(dict)  # split -> group -> index of its first item
    for split in SPLITS:
        for i, item in enumerate(datalist.get(split, [])):
            if field not in item:
                raise DataError(f"datalist {path}: {_place(split, i)} ({item['image']}) lacks the group field "
                                f"{field!r} (null: the image is its own group; \"group_field\": null declares a "
                                "datalist without groups)")
            group = item[field]
            if group is None or group == "" or (isinstance(group, float) and math.isnan(group)):
                continue  # no group: the image is its own
            if not isinstance(group, (str, int, float)) or isinstance(group, bool):
                raise DataError(f"datalist {path}: {_place(split, i)} ({item['image']}) has {field} {group!r}, "
                                "not a string or number")
            first[split].setdefault(group, i)
    # training and the splits that share its groups by design both shape the model (fitting, model selection):
    # no other split may hold their groups
    fit = ("training", *shared)
    leaks = [(group, f, first[f][group], split, i)
             for split in SPLITS if split not in fit
             for group, i in first[split].items()
             for f in [next((f for f in fit if group in first[f]), None)] if f is not None]
    if not leaks:
        return
    if len(leaks) == 1:
        group, f, t, split, i = leaks[0]
        message = f"{field} {group!r} is in {_place(f, t)} and {_place(split, i)}"
    else:
        message = f"{len(leaks)} {field} values are in {' or '.join(fit)} and another split, e.g. " + "; ".join(
            f"{group!r} ({_place(f, t)}, {_place(split, i)})" for group, f, t, split, i in leaks[:_SHOWN])
    raise DataError(f"datalist {path}: {message}: the images of one {field} belong to one split (train/test "
                    "leakage)")


def check_datalist(datalist: Any, path: str) -> None:
    """Run every check of the module docstring on a datalist read from ``path``; the first failure raises."""
    _check_structure(datalist, path)
    _check_duplicates(datalist, _check_paths(datalist, path), path)
    _check_groups(datalist, path)
