"""The ISIC 2019 demo: lesions whose colour and texture carry the class, in the ISIC 2019 training layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ...errors import DataError
from ..isic2019 import DEFAULT_RATIOS, GROUND_TRUTH_CSV, IMAGE_DIR, ISIC_CLASSES, METADATA_CSV
from ..splits import stratified_group_split
from .folders import claim_folder, replace_folder
from .lesions import CLASS_LOOK, ISIC_FREQ, SITES, plant_artefact, render_lesion, save_mask

__all__ = ["ArtefactPlan", "write_isic2019_demo"]


@dataclass(frozen=True)
class ArtefactPlan:
    """A sticker planted on the demo's images, correlated with one class in the training split only.

    Args:
        cls: the class whose *training* images mostly carry the sticker (None: the rates are checked, nothing is
            planted).
        rate: probability of the sticker on a training image of ``cls``.
        noise_rate: probability of the sticker on a training image of any other class.
        eval_rate: probability of the sticker on an image outside the training split, whatever its class (None:
            ``noise_rate``). Outside training the sticker is independent of the class, so a model whose output
            there moves with the sticker among images of one class has learned the shortcut.
    """

    cls: str | None
    rate: float = 0.9
    noise_rate: float = 0.05
    eval_rate: float | None = None

    def __post_init__(self) -> None:
        if self.cls is not None and self.cls not in ISIC_CLASSES:
            raise DataError(f"artefact_class={self.cls!r} is not one of {ISIC_CLASSES}")
        for name, rate in (("artefact_rate", self.rate), ("artefact_noise_rate", self.noise_rate),
                           ("artefact_eval_rate", self.eval_rate)):
            if rate is not None and not 0 <= rate <= 1:
                raise DataError(f"{name}={rate!r} is not a probability in [0, 1]")

    def probability(self, cls: str, in_training: bool) -> float:
        """Probability of the sticker on an image of class ``cls``."""
        if not in_training:
            return self.noise_rate if self.eval_rate is None else self.eval_rate
        return self.rate if cls == self.cls else self.noise_rate


def _draw_lesions(rng: np.random.Generator, n_lesions: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Labels, image names and lesion ids (blank for about 5 % of lesions) of the images."""
    weights = np.sqrt(ISIC_FREQ) / np.sqrt(ISIC_FREQ).sum()
    lesion_cls = rng.choice(len(ISIC_CLASSES), size=n_lesions, p=weights)
    lesion_cls[: len(ISIC_CLASSES)] = np.arange(len(ISIC_CLASSES))  # every class present
    repeats = np.where(rng.random(n_lesions) < 0.15, 2, 1)
    labels = np.repeat(lesion_cls, repeats)
    lesion_of = np.repeat(np.arange(n_lesions), repeats)
    names = [f"ISIC_{9000000 + i:07d}" for i in range(len(labels))]
    blank_lesion = rng.random(n_lesions) < 0.05
    lesion_ids = np.array(["" if blank_lesion[k] else f"IL_{1000000 + k:07d}" for k in lesion_of])
    return labels, names, lesion_ids


def _write_images(out: Path, rng: np.random.Generator, image_size: int, labels: np.ndarray, names: list[str],
                  in_training: np.ndarray, artefact: ArtefactPlan | None) -> list[dict]:
    """The JPEGs and masks; returns the annotation rows."""
    img_dir, mask_dir = replace_folder(out / IMAGE_DIR), replace_folder(out / "masks")
    rows = []
    for i, name in enumerate(names):
        cls = ISIC_CLASSES[labels[i]]
        dots = bool(rng.random() < CLASS_LOOK[cls][2])
        img, lesion_mask = render_lesion(rng, image_size, cls, dots)
        planted = (artefact is not None and artefact.cls is not None
                   and bool(rng.random() < artefact.probability(cls, bool(in_training[i]))))
        artefact_mask = plant_artefact(rng, img) if planted else np.zeros_like(lesion_mask)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(img_dir / f"{name}.jpg", quality=92)
        save_mask(lesion_mask, mask_dir / f"{name}_lesion.png")
        save_mask(artefact_mask, mask_dir / f"{name}_artefact.png")
        rows.append({"image": name, "dots": int(dots), "artefact": int(planted),
                     "lesion_mask": f"masks/{name}_lesion.png", "artefact_mask": f"masks/{name}_artefact.png"})
    return rows


def _write_tables(out: Path, rng: np.random.Generator, labels: np.ndarray, names: list[str], lesion_ids: np.ndarray,
                  shuffle_labels: bool) -> None:
    """The ground-truth and metadata CSVs (a mild age bias: the keratinocyte classes are older)."""
    n = len(names)
    gt_labels = rng.permutation(labels) if shuffle_labels else labels
    gt = pd.DataFrame(np.eye(len(ISIC_CLASSES))[gt_labels], columns=list(ISIC_CLASSES))
    gt.insert(0, "image", names)
    gt["UNK"] = 0.0
    gt.to_csv(out / GROUND_TRUTH_CSV, index=False)

    older = np.isin(labels, [ISIC_CLASSES.index(c) for c in ("BCC", "AK", "SCC", "BKL")])
    age = np.clip(np.round((rng.normal(45, 15, n) + 15 * older) / 5) * 5, 5, 85)
    age[rng.random(n) < 0.03] = np.nan
    meta = pd.DataFrame({
        "image": names,
        "age_approx": age,
        "anatom_site_general": np.where(rng.random(n) < 0.05, "", rng.choice(SITES, n)),
        "lesion_id": lesion_ids,
        "sex": np.where(rng.random(n) < 0.03, "", rng.choice(["male", "female"], n)),
    })
    meta.to_csv(out / METADATA_CSV, index=False)


def write_isic2019_demo(out_dir: str | Path, n_lesions: int = 1000, image_size: int = 64, seed: int = 0,
                        shuffle_labels: bool = False, artefact: ArtefactPlan | None = None) -> Path:
    """Write a synthetic ISIC 2019 training folder (CSVs, JPEGs, an annotations CSV and masks).

    Args:
        out_dir: folder to create (the ISIC layout goes directly in it); an existing folder must be empty or a
            demo folder.
        n_lesions: number of lesions; about 15 % get a second image under the same lesion_id.
        image_size: side of the square JPEGs.
        seed: seed of everything.
        shuffle_labels: permute the ground-truth labels over images, destroying the signal (a leakage check:
            training must then stay near chance).
        artefact: the sticker to plant (None: none).

    Returns:
        ``out_dir``.
    """
    out = claim_folder(out_dir)
    rng = np.random.default_rng(seed)
    labels, names, lesion_ids = _draw_lesions(rng, n_lesions)
    # the split prepare_isic2019 will make with its defaults: the artefact is planted in training only
    groups = np.where(lesion_ids == "", "image:" + np.array(names), "lesion:" + lesion_ids)
    in_training = stratified_group_split(labels, groups, DEFAULT_RATIOS, seed=0) == 0
    annotations = _write_images(out, rng, image_size, labels, names, in_training, artefact)
    _write_tables(out, rng, labels, names, lesion_ids, shuffle_labels)
    pd.DataFrame(annotations).to_csv(out / "annotations.csv", index=False)
    return out
