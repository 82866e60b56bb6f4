"""Synthetic demo data written in exactly the on-disk formats of the real datasets.

The ISIC 2019 demo draws a lesion on skin whose colour and texture depend on the class (a signal a small CNN learns
in a few epochs), with ISIC-like class imbalance (the real frequencies, square-rooted so that every class has enough
images to be measured), some lesions imaged twice under one ``lesion_id``, metadata with a mild age bias, and
annotations: a per-image dermoscopic-structure-like flag (dots, carrying class signal) and, optionally, a planted
artefact (a coloured sticker) correlated with one class in the training split only, with masks.
The Camelyon17-WILDS demo renders haematoxylin-and-eosin-like patches through a stain model (optical densities of
the two stains, Ruifrok & Johnston 2001): normal lymph-node tissue has many small, round, uniformly dark nuclei,
tumour tissue fewer, large, irregular nuclei with coarse chromatin and nucleoli. Each of the 5 hospitals has its own
stain intensities and hue; the training hospitals (0, 3, 4) differ mildly, hospitals 1 and 2 (``val_ood``,
``test_ood``) strongly (over-stained and bluish; pale and shifted the other way), so a model trained on 0/3/4 does
measurably worse on 1/2, as on the real data.

Everything is deterministic from the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import DataError
from ..camelyon17 import prepare_camelyon17
from ..datalist import load_datalist, save_datalist
from ..derm7pt import prepare_derm7pt
from ..isic2019 import prepare_isic2019
from .camelyon17 import write_camelyon17_demo
from .derm7pt import write_derm7pt_demo
from .folders import check_datalist_file, check_folder
from .isic2019 import ArtefactPlan, write_isic2019_demo

__all__ = ["DEMO_DATASETS", "ArtefactPlan", "make_demo_data", "write_camelyon17_demo", "write_derm7pt_demo",
           "write_isic2019_demo"]

DEMO_DATASETS = ("isic2019", "camelyon17", "derm7pt")


def make_demo_data(out_dir: str = "demo_data", seed: int = 0, n_lesions: int = 1000, image_size: int = 64,
                   shuffle_labels: bool = False, artefact_class: str | None = None, artefact_rate: float = 0.9,
                   artefact_noise_rate: float = 0.05, artefact_eval_rate: float | None = None,
                   datasets: str | Sequence[str] = ("isic2019", "camelyon17"), camelyon_patients_per_center: int = 4,
                   camelyon_patches_per_patient: int = 30, derm7pt_cases: int = 60) -> str:
    """Write the demo datasets and their datalists under ``out_dir``.

    For each dataset ``<name>`` of ``datasets``, ``<out_dir>/<name>/`` holds a synthetic folder in the real on-disk
    format and ``<out_dir>/<name>_datalist.json`` its datalist, made by the same converter as the real data and
    marked ``"demo": true`` (runs on it go to the ``<dataset>-demo`` experiment). The demo replaces only what a
    demo wrote: an existing folder or datalist of another origin is refused (``medattn_monai/data/demo/folders.py``).

    Args:
        out_dir: output folder.
        seed: seed of everything (images, labels, splits).
        n_lesions: ISIC lesions to draw (about 1.15 images each).
        image_size: side of the ISIC images (Camelyon17 patches are always 96×96, as in WILDS).
        shuffle_labels: destroy the class signal by permuting labels (a leakage check).
        artefact_class: plant a sticker correlated with this class in the ISIC training split (e.g. ``NV``).
        artefact_rate: share of ``artefact_class``'s training images that get the sticker.
        artefact_noise_rate: share of the other classes' training images that get it.
        artefact_eval_rate: share of validation and test images (any class) that get it; None: the noise rate.
            A feature-usage test needs images of every class with and without the sticker there (e.g. 0.3).
            Equal rates plant the sticker independently of the class everywhere: a control, where a model has
            no reason to use it.
        datasets: which demos to write, among ``isic2019``, ``camelyon17``, ``derm7pt`` (a list, or names separated
            by commas). The default writes the two the bundles train on (a few seconds).
        camelyon_patients_per_center: Camelyon17 demo patients per hospital.
        camelyon_patches_per_patient: Camelyon17 demo patches per patient.
        derm7pt_cases: derm7pt demo cases.

    Returns:
        ``out_dir``.
    """
    names = [d.strip() for d in datasets.split(",")] if isinstance(datasets, str) else [str(d) for d in datasets]
    unknown = [d for d in names if d not in DEMO_DATASETS]
    if unknown or not names:
        raise DataError(f"datasets={datasets!r}: choose among {list(DEMO_DATASETS)}")
    artefact = ArtefactPlan(artefact_class, artefact_rate, artefact_noise_rate, artefact_eval_rate)
    out = Path(out_dir)
    names = [name for name in DEMO_DATASETS if name in names]
    for name in names:  # every target is checked before anything is written
        check_folder(out / name)
        check_datalist_file(out / f"{name}_datalist.json")
    for name in names:
        folder, datalist_path = out / name, out / f"{name}_datalist.json"
        if name == "isic2019":
            write_isic2019_demo(folder, n_lesions, image_size, seed, shuffle_labels, artefact)
            prepare_isic2019(str(folder), str(datalist_path), annotations=str(folder / "annotations.csv"))
        elif name == "camelyon17":
            write_camelyon17_demo(folder, camelyon_patients_per_center, camelyon_patches_per_patient, seed,
                                  shuffle_labels=shuffle_labels)
            prepare_camelyon17(str(folder), str(datalist_path), seed=seed, check_files=True, progress=False)
        else:
            write_derm7pt_demo(folder, derm7pt_cases, image_size, seed)
            prepare_derm7pt(str(folder), str(datalist_path), check_files=True, progress=False)
        _mark_demo(datalist_path, seed)
    return str(out)


def _mark_demo(datalist_path: Path, seed: int) -> None:
    """Flag a datalist as demo data: its runs go to the ``<dataset>-demo`` experiment."""
    datalist = load_datalist(datalist_path)
    datalist["demo"] = True
    datalist.setdefault("meta", {})["demo_seed"] = seed
    save_datalist(datalist, datalist_path)
