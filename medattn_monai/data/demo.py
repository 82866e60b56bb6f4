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

import colorsys
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DataError
from .camelyon17 import METADATA_COLUMNS, METADATA_CSV as CAMELYON17_METADATA_CSV, TRAIN_CENTERS, prepare_camelyon17
from .derm7pt import CRITERION_VALUES, DIAGNOSIS_TO_ISIC, INDEX_FILES, META_CSV as DERM7PT_META_CSV, prepare_derm7pt
from .isic2019 import DEFAULT_RATIOS, GROUND_TRUTH_CSV, IMAGE_DIR, ISIC_CLASSES, METADATA_CSV, prepare_isic2019
from .datalist import load_datalist, save_datalist
from .splits import stratified_group_split

__all__ = ["DEMO_DATASETS", "make_demo_data", "write_camelyon17_demo", "write_derm7pt_demo", "write_isic2019_demo"]

DEMO_DATASETS = ("isic2019", "camelyon17", "derm7pt")

# real ISIC 2019 class frequencies (MEL, NV, BCC, AK, BKL, DF, VASC, SCC)
_ISIC_FREQ = np.array([4522, 12875, 3323, 867, 2624, 239, 253, 628], dtype=float)
# per class: lesion hue (degrees), texture, probability of the dots "structure"
_CLASS_LOOK = {
    "MEL": (20, "irregular", 0.8),
    "NV": (30, "plain", 0.3),
    "BCC": (340, "stripes", 0.2),
    "AK": (5, "rough", 0.2),
    "BKL": (45, "rings", 0.3),
    "DF": (280, "plain", 0.2),
    "VASC": (250, "blobs", 0.1),
    "SCC": (170, "rough", 0.2),
}
_SITES = ("anterior torso", "posterior torso", "head/neck", "lower extremity", "upper extremity", "palms/soles")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360, np.clip(s, 0, 1), np.clip(v, 0, 1)))


def _render_lesion(rng: np.random.Generator, size: int, cls: str, dots: bool) -> tuple[np.ndarray, np.ndarray]:
    """One RGB float image (H×W×3 in [0, 1]) and its lesion mask."""
    hue, texture, _ = _CLASS_LOOK[cls]
    yy, xx = np.mgrid[0:size, 0:size] / size
    skin = _hsv(rng.uniform(15, 35), rng.uniform(0.2, 0.45), rng.uniform(0.7, 0.95))
    low = rng.normal(0, 1, (4, 4))
    shade = np.kron(low, np.ones((size // 4 + 1, size // 4 + 1)))[:size, :size] * 0.03
    img = np.clip(skin[None, None, :] + shade[..., None], 0, 1)

    cy, cx = rng.uniform(0.4, 0.6, 2)
    ry, rx = rng.uniform(0.18, 0.32, 2)
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    r = np.sqrt(u**2 + v**2)
    theta = np.arctan2(v, u)
    if texture == "irregular":
        r = r * (1 + 0.18 * np.sin(rng.integers(3, 7) * theta + rng.uniform(0, 6)))
    mask = r < 1.0

    colour = _hsv(hue + rng.normal(0, 6), rng.uniform(0.55, 0.8), rng.uniform(0.35, 0.6))
    lesion = np.broadcast_to(colour, img.shape).copy()
    lesion *= (1 - 0.25 * (1 - np.clip(r, 0, 1)))[..., None]  # darker core
    phase = rng.uniform(0, 2 * np.pi)
    if texture == "stripes":
        lesion *= (1 + 0.35 * np.sign(np.sin(18 * (u * 0.7 + v * 0.7) + phase)))[..., None] * 0.8
    elif texture == "rings":
        lesion *= (1 + 0.3 * np.sign(np.sin(14 * r + phase)))[..., None] * 0.85
    elif texture == "rough":
        lesion *= (1 + 0.35 * rng.normal(0, 1, (size, size)))[..., None]
    elif texture == "blobs":
        for _ in range(5):
            by, bx = rng.uniform(-0.6, 0.6, 2)
            lesion[((u - bx) ** 2 + (v - by) ** 2) < 0.06] *= 0.45
    if dots:
        n = rng.integers(6, 12)
        for by, bx in rng.uniform(-0.7, 0.7, (n, 2)):
            lesion[((u - bx) ** 2 + (v - by) ** 2) < 0.012] = 0.08
    img = np.where(mask[..., None], np.clip(lesion, 0, 1), img)
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1), mask


def _plant_artefact(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A green round sticker in a corner (like a colour-calibration patch); returns its mask."""
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.choice([0.14, 0.86], 2) + rng.normal(0, 0.02, 2)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(0.008, 0.012)
    img[mask] = np.array([0.1, 0.75, 0.25]) + rng.normal(0, 0.03, 3)
    return mask


def _save_mask(mask: np.ndarray, path: Path) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def write_isic2019_demo(
    out_dir: str | Path,
    n_lesions: int = 1000,
    image_size: int = 64,
    seed: int = 0,
    shuffle_labels: bool = False,
    artefact_class: str | None = None,
    artefact_rate: float = 0.9,
    artefact_noise_rate: float = 0.05,
    artefact_eval_rate: float | None = None,
) -> Path:
    """Write a synthetic ISIC 2019 training folder (CSVs, JPEGs, an annotations CSV and masks).

    Args:
        out_dir: folder to create (the ISIC layout goes directly in it).
        n_lesions: number of lesions; about 15 % get a second image under the same lesion_id.
        image_size: side of the square JPEGs.
        seed: seed of everything.
        shuffle_labels: permute the ground-truth labels over images, destroying the signal (a leakage check:
            training must then stay near chance).
        artefact_class: plant a sticker on ``artefact_rate`` of this class's *training* images (and on
            ``artefact_noise_rate`` of all other images); None plants none.
        artefact_rate: probability of the sticker on a training image of ``artefact_class``.
        artefact_noise_rate: probability of the sticker on a training image of any other class.
        artefact_eval_rate: probability of the sticker on an image outside the training split, whatever its class
            (None: ``artefact_noise_rate``). Outside training the sticker is independent of the class, so a model
            whose output there moves with the sticker among images of one class has learned the shortcut.

    Returns:
        ``out_dir``.
    """
    if artefact_class is not None and artefact_class not in ISIC_CLASSES:
        raise DataError(f"artefact_class={artefact_class!r} is not one of {ISIC_CLASSES}")
    eval_rate = artefact_noise_rate if artefact_eval_rate is None else artefact_eval_rate
    for name, rate in (("artefact_rate", artefact_rate), ("artefact_noise_rate", artefact_noise_rate),
                       ("artefact_eval_rate", eval_rate)):
        if not 0 <= rate <= 1:
            raise DataError(f"{name}={rate!r} is not a probability in [0, 1]")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    weights = np.sqrt(_ISIC_FREQ) / np.sqrt(_ISIC_FREQ).sum()
    lesion_cls = rng.choice(len(ISIC_CLASSES), size=n_lesions, p=weights)
    lesion_cls[: len(ISIC_CLASSES)] = np.arange(len(ISIC_CLASSES))  # every class present
    repeats = np.where(rng.random(n_lesions) < 0.15, 2, 1)
    labels = np.repeat(lesion_cls, repeats)
    lesion_of = np.repeat(np.arange(n_lesions), repeats)
    n = len(labels)
    names = [f"ISIC_{9000000 + i:07d}" for i in range(n)]
    blank_lesion = rng.random(n_lesions) < 0.05
    lesion_ids = np.array(["" if blank_lesion[k] else f"IL_{1000000 + k:07d}" for k in lesion_of])

    # the split prepare_isic2019 will make with its defaults: the artefact is planted in training only
    groups = np.where(lesion_ids == "", "image:" + np.array(names), "lesion:" + lesion_ids)
    in_training = stratified_group_split(labels, groups, DEFAULT_RATIOS, seed=0) == 0

    img_dir, mask_dir = out / IMAGE_DIR, out / "masks"
    for d in (img_dir, mask_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    rows_ann = []
    for i in range(n):
        cls = ISIC_CLASSES[labels[i]]
        dots = bool(rng.random() < _CLASS_LOOK[cls][2])
        img, lesion_mask = _render_lesion(rng, image_size, cls, dots)
        planted = False
        if artefact_class is not None:
            if not in_training[i]:
                p = eval_rate
            else:
                p = artefact_rate if cls == artefact_class else artefact_noise_rate
            planted = bool(rng.random() < p)
        artefact_mask = _plant_artefact(rng, img) if planted else np.zeros_like(lesion_mask)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(img_dir / f"{names[i]}.jpg", quality=92)
        _save_mask(lesion_mask, mask_dir / f"{names[i]}_lesion.png")
        _save_mask(artefact_mask, mask_dir / f"{names[i]}_artefact.png")
        rows_ann.append(
            {
                "image": names[i],
                "dots": int(dots),
                "artefact": int(planted),
                "lesion_mask": f"masks/{names[i]}_lesion.png",
                "artefact_mask": f"masks/{names[i]}_artefact.png",
            }
        )

    gt_labels = rng.permutation(labels) if shuffle_labels else labels
    onehot = np.eye(len(ISIC_CLASSES))[gt_labels]
    gt = pd.DataFrame(onehot, columns=list(ISIC_CLASSES))
    gt.insert(0, "image", names)
    gt["UNK"] = 0.0
    gt.to_csv(out / GROUND_TRUTH_CSV, index=False)

    older = np.isin(labels, [ISIC_CLASSES.index(c) for c in ("BCC", "AK", "SCC", "BKL")])
    age = np.clip(np.round((rng.normal(45, 15, n) + 15 * older) / 5) * 5, 5, 85)
    age[rng.random(n) < 0.03] = np.nan
    meta = pd.DataFrame(
        {
            "image": names,
            "age_approx": age,
            "anatom_site_general": np.where(rng.random(n) < 0.05, "", rng.choice(_SITES, n)),
            "lesion_id": lesion_ids,
            "sex": np.where(rng.random(n) < 0.03, "", rng.choice(["male", "female"], n)),
        }
    )
    meta.to_csv(out / METADATA_CSV, index=False)
    pd.DataFrame(rows_ann).to_csv(out / "annotations.csv", index=False)
    return out


# Ruifrok & Johnston's optical-density vectors of haematoxylin and eosin
_H_OD = np.array([0.65, 0.70, 0.29])
_E_OD = np.array([0.07, 0.99, 0.11])
# hospital -> (haematoxylin scale, eosin scale, hue rotation of both stains in degrees)
_HOSPITAL_STAINS = {
    0: (1.0, 1.0, 0.0),
    3: (0.9, 1.12, 10.0),
    4: (1.12, 0.9, -10.0),
    # strong enough that the drop from the ID test split to these hospitals does not depend on numerical details
    # (thread count, seed): over seeds 0-1 x 1-2 threads, test_ood_bacc <= 0.6 against test_bacc >= 0.97
    1: (2.2, 2.0, -60.0),
    2: (0.35, 0.4, 60.0),
}


def _rotate_hue(od: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate an optical-density vector about the grey axis (a hue change of the stain), kept positive, unit norm."""
    axis = np.ones(3) / np.sqrt(3)
    t = np.deg2rad(degrees)
    v = od * np.cos(t) + np.cross(axis, od) * np.sin(t) + axis * axis.dot(od) * (1 - np.cos(t))
    v = np.clip(v, 0.02, None)
    return v / np.linalg.norm(v)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    low = rng.normal(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=float)


def _render_patch(rng: np.random.Generator, tumor: bool, stain: tuple[float, float, float],
                  size: int = 96) -> np.ndarray:
    """One H&E-like patch (H×W×3 uint8) of tumour or normal tissue under a hospital's ``stain``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    eosin = 0.35 + 0.12 * _smooth_noise(rng, size, 6) + 0.05 * _smooth_noise(rng, size, 24)
    for _ in range(rng.integers(0, 3)):  # lumina and fat: unstained holes
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(5, 14)
        eosin = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 0.03, eosin)
    haem = np.zeros((size, size))
    if tumor:
        n, r_lo, r_hi, h_lo, h_hi = rng.integers(14, 24), 4.0, 7.0, 0.55, 1.0
    else:
        n, r_lo, r_hi, h_lo, h_hi = rng.integers(35, 55), 1.6, 2.6, 1.0, 1.3
    for _ in range(n):
        cy, cx = rng.uniform(-3, size + 3, 2)
        ry = rng.uniform(r_lo, r_hi)
        rx = ry * (rng.uniform(0.6, 1.0) if tumor else rng.uniform(0.85, 1.0))
        a = rng.uniform(0, np.pi)
        value = rng.uniform(h_lo, h_hi)
        # draw in the nucleus' bounding box only (the pleomorphic outline reaches 1.2 radii)
        reach = 1.2 * max(rx, ry) + 1
        y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 1)
        x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = (dx * np.cos(a) + dy * np.sin(a)) / rx
        v = (-dx * np.sin(a) + dy * np.cos(a)) / ry
        r2 = u * u + v * v
        box = haem[y0:y1, x0:x1]
        if tumor:  # pleomorphic outline, coarse chromatin, a nucleolus
            r2 = r2 * (1 + 0.25 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6)))
            chromatin = value * (1 + 0.25 * rng.normal(0, 1, r2.shape))
            box[:] = np.where(r2 < 1, np.maximum(box, chromatin), box)
            box[r2 < 0.06] = 1.6
        else:
            box[:] = np.where(r2 < 1, np.maximum(box, value), box)
    h_scale, e_scale, hue = stain
    od = ((haem * h_scale)[..., None] * _rotate_hue(_H_OD, hue)
          + (eosin * e_scale * np.where(haem > 0, 0.3, 1.0))[..., None] * _rotate_hue(_E_OD, hue) + 0.03)
    rgb = np.exp(-od) + rng.normal(0, 0.015, od.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def write_camelyon17_demo(
    out_dir: str | Path,
    patients_per_center: int = 4,
    patches_per_patient: int = 30,
    seed: int = 0,
    shuffle_labels: bool = False,
    id_val_fraction: float = 0.1,
) -> Path:
    """Write a synthetic Camelyon17-WILDS v1.0 folder (``metadata.csv`` and ``patches/``, 96×96 PNGs).

    Five hospitals (centres 0–4) with ``patients_per_center`` patients each; patient ``p`` of centre ``c`` is
    ``20·c + p`` (Camelyon17's numbering), with one slide (a lymph node 0–4) of ``patches_per_patient`` patches,
    a tumour fraction between 0.3 and 0.7, and a mild per-slide stain variation on top of its hospital's stain.
    In the training centres a random ``id_val_fraction`` of patches has ``split`` 1 (WILDS ``id_val``).

    Args:
        out_dir: folder to create (the WILDS layout goes directly in it).
        patients_per_center: patients per hospital (the ID test split holds out at least one per training centre).
        patches_per_patient: patches per patient.
        seed: seed of everything.
        shuffle_labels: permute the ``tumor`` column over patches, destroying the signal (a leakage check).
        id_val_fraction: fraction of the training centres' patches with ``split`` 1.

    Returns:
        ``out_dir``.
    """
    if patients_per_center < 2:
        raise DataError(f"patients_per_center must be at least 2 (one is held out for the test split), "
                        f"got {patients_per_center}")
    out = Path(out_dir)
    patch_root = out / "patches"
    if patch_root.exists():
        shutil.rmtree(patch_root)
    rng = np.random.default_rng(seed)
    rows = []
    slide = 0
    for center in range(5):
        for k in range(patients_per_center):
            patient, node = 20 * center + k, int(rng.integers(0, 5))
            h_scale, e_scale, hue = _HOSPITAL_STAINS[center]
            stain = (h_scale * rng.uniform(0.93, 1.07), e_scale * rng.uniform(0.93, 1.07), hue + rng.normal(0, 2))
            folder = patch_root / f"patient_{patient:03d}_node_{node}"
            folder.mkdir(parents=True)
            tumor = rng.random(patches_per_patient) < rng.uniform(0.3, 0.7)
            coords = rng.choice(500, size=(patches_per_patient, 2), replace=True) * 96
            coords[:, 1] = rng.choice(500, size=patches_per_patient, replace=False) * 96  # unique per slide
            for t, (x, y) in zip(tumor, coords):
                img = _render_patch(rng, bool(t), stain)
                name = f"patch_patient_{patient:03d}_node_{node}_x_{x}_y_{y}.png"
                Image.fromarray(img).save(folder / name)
                split = int(center in TRAIN_CENTERS and rng.random() < id_val_fraction)
                rows.append((patient, node, int(x), int(y), int(t), slide, center, split))
            slide += 1
    meta = pd.DataFrame(rows, columns=list(METADATA_COLUMNS))
    if shuffle_labels:
        meta["tumor"] = rng.permutation(meta["tumor"].to_numpy())
    meta.to_csv(out / CAMELYON17_METADATA_CSV)  # with the leading unnamed index column, as WILDS ships it
    return out


def write_derm7pt_demo(out_dir: str | Path, n_cases: int = 60, image_size: int = 64, seed: int = 0) -> Path:
    """Write a synthetic derm7pt ``release_v0`` folder (``meta/`` CSVs and ``images/`` JPEGs).

    Every column of the real ``meta.csv`` is present; the seven criteria take the real vocabularies, diagnoses are
    drawn from every derm7pt diagnosis (including melanosis and miscellaneous, which have no ISIC class), and the
    dermoscopic image is an ISIC-demo lesion of the diagnosis' ISIC class (streaks and atypical networks are not
    drawn: the annotations are random, a fixture rather than a learnable signal). Cases are split 40/20/40 into
    the three index files, as in the release.

    Args:
        out_dir: folder to create.
        n_cases: number of cases (each has a dermoscopic and a clinical image).
        image_size: side of the JPEGs.
        seed: seed of everything.

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    diagnoses = list(DIAGNOSIS_TO_ISIC)
    img_root = out / "images"
    if img_root.exists():
        shutil.rmtree(img_root)
    (out / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    for case in range(n_cases):
        # the first cases cover every diagnosis, so each one (and each unmapped one) is present
        diagnosis = diagnoses[case] if case < len(diagnoses) else diagnoses[rng.integers(len(diagnoses))]
        folder = "".join(w[0] for w in diagnosis.replace("(", "").split()[:3]).upper().ljust(3, "X")
        (img_root / folder).mkdir(parents=True, exist_ok=True)
        criteria = {c: str(rng.choice(values)) for c, values in CRITERION_VALUES.items()}
        names = {}
        for kind, k in (("clinic", 2 * case + 1), ("derm", 2 * case + 2)):
            names[kind] = f"{folder}/{folder.capitalize()}{k:03d}.jpg"
            look = DIAGNOSIS_TO_ISIC[diagnosis] or "BKL"
            img, _ = _render_lesion(rng, image_size, look, dots=criteria["dots_and_globules"] != "absent")
            Image.fromarray((img * 255).round().astype(np.uint8)).save(img_root / names[kind], quality=90)
        rows.append({
            "case_num": case + 1,
            "diagnosis": diagnosis,
            "seven_point_score": int(rng.integers(0, 8)),
            **criteria,
            "level_of_diagnostic_difficulty": str(rng.choice(["low", "medium", "high"])),
            "elevation": str(rng.choice(["flat", "palpable", "nodular"])),
            "location": str(rng.choice(["back", "lower limbs", "abdomen", "upper limbs", "chest", "head neck"])),
            "sex": str(rng.choice(["female", "male"])),
            "management": str(rng.choice(["excision", "clinical follow up", "no further examination"])),
            "clinic": names["clinic"],
            "derm": names["derm"],
            "case_id": "",
            "notes": "",
        })
    pd.DataFrame(rows).to_csv(out / DERM7PT_META_CSV, index=False)
    order = rng.permutation(n_cases)
    cut = [round(0.4 * n_cases), round(0.6 * n_cases)]
    for rel, idx in zip(INDEX_FILES.values(), np.split(order, cut)):
        pd.DataFrame({"indexes": np.sort(idx)}).to_csv(out / rel, index=False)
    return out


def make_demo_data(
    out_dir: str = "demo_data",
    seed: int = 0,
    n_lesions: int = 1000,
    image_size: int = 64,
    shuffle_labels: bool = False,
    artefact_class: str | None = None,
    artefact_rate: float = 0.9,
    artefact_noise_rate: float = 0.05,
    artefact_eval_rate: float | None = None,
    datasets: str | Sequence[str] = ("isic2019", "camelyon17"),
    camelyon_patients_per_center: int = 4,
    camelyon_patches_per_patient: int = 30,
    derm7pt_cases: int = 60,
) -> str:
    """Write the demo datasets and their datalists under ``out_dir``.

    For each dataset ``<name>`` of ``datasets``, ``<out_dir>/<name>/`` holds a synthetic folder in the real on-disk
    format and ``<out_dir>/<name>_datalist.json`` its datalist, made by the same converter as the real data and
    marked ``"demo": true`` (runs on it go to the ``<dataset>-demo`` experiment).

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
    out = Path(out_dir)
    for name in DEMO_DATASETS:
        if name not in names:
            continue
        folder, datalist_path = out / name, out / f"{name}_datalist.json"
        if name == "isic2019":
            write_isic2019_demo(folder, n_lesions, image_size, seed, shuffle_labels=shuffle_labels,
                                artefact_class=artefact_class, artefact_rate=artefact_rate,
                                artefact_noise_rate=artefact_noise_rate, artefact_eval_rate=artefact_eval_rate)
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
    datalist.pop("_path", None)
    datalist["demo"] = True
    datalist.setdefault("meta", {})["demo_seed"] = seed
    save_datalist(datalist, datalist_path)
