"""Synthetic demo data written in exactly the on-disk formats of the real datasets.

The ISIC 2019 demo draws a lesion on skin whose colour and texture depend on the class (a signal a small CNN learns
in a few epochs), with ISIC-like class imbalance (the real frequencies, square-rooted so that every class has enough
images to be measured), some lesions imaged twice under one ``lesion_id``, metadata with a mild age bias, and
annotations: a per-image dermoscopic-structure-like flag (dots, carrying class signal) and, optionally, a planted
artefact (a coloured sticker) correlated with one class in the training split only, with masks.
Everything is deterministic from the seed.
"""

from __future__ import annotations

import colorsys
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DataError
from .isic2019 import DEFAULT_RATIOS, GROUND_TRUTH_CSV, IMAGE_DIR, ISIC_CLASSES, METADATA_CSV, prepare_isic2019
from .datalist import load_datalist, save_datalist
from .splits import stratified_group_split

__all__ = ["make_demo_data", "write_isic2019_demo"]

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
) -> str:
    """Write the demo datasets and their datalists under ``out_dir``.

    ``<out_dir>/isic2019/`` holds a synthetic ISIC 2019 folder and ``<out_dir>/isic2019_datalist.json`` its datalist
    (made by the same converter as the real data).

    Args:
        out_dir: output folder.
        seed: seed of everything (images, labels, splits).
        n_lesions: ISIC lesions to draw (about 1.15 images each).
        image_size: side of the images.
        shuffle_labels: destroy the class signal by permuting labels (a leakage check).
        artefact_class: plant a sticker correlated with this class in the training split (e.g. ``NV``).
        artefact_rate: share of ``artefact_class``'s training images that get the sticker.
        artefact_noise_rate: share of the other classes' training images that get it.
        artefact_eval_rate: share of validation and test images (any class) that get it; None: the noise rate.
            A feature-usage test needs images of every class with and without the sticker there (e.g. 0.3).
            Equal rates plant the sticker independently of the class everywhere: a control, where a model has
            no reason to use it.

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    isic = write_isic2019_demo(
        out / "isic2019", n_lesions, image_size, seed, shuffle_labels=shuffle_labels, artefact_class=artefact_class,
        artefact_rate=artefact_rate, artefact_noise_rate=artefact_noise_rate, artefact_eval_rate=artefact_eval_rate,
    )
    datalist_path = out / "isic2019_datalist.json"
    prepare_isic2019(str(isic), str(datalist_path), annotations=str(isic / "annotations.csv"))
    _mark_demo(datalist_path, seed)
    return str(out)


def _mark_demo(datalist_path: Path, seed: int) -> None:
    """Flag a datalist as demo data: its runs go to the ``<dataset>-demo`` experiment."""
    datalist = load_datalist(datalist_path)
    datalist.pop("_path", None)
    datalist["demo"] = True
    datalist.setdefault("meta", {})["demo_seed"] = seed
    save_datalist(datalist, datalist_path)
