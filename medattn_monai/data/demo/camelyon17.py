"""The Camelyon17-WILDS demo: haematoxylin-and-eosin-like patches rendered through a stain model (optical densities
of the two stains, Ruifrok & Johnston 2001), one stain per hospital, in the WILDS v1.0 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ...errors import DataError
from ..camelyon17 import METADATA_COLUMNS, METADATA_CSV, PATCH_DIR, TRAIN_CENTERS
from .folders import claim_folder, replace_folder

__all__ = ["write_camelyon17_demo"]

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
        out_dir: folder to create (the WILDS layout goes directly in it); an existing folder must be empty or a
            demo folder.
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
    out = claim_folder(out_dir)
    patch_root = replace_folder(out / PATCH_DIR)
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
            for t, (x, y) in zip(tumor, coords, strict=True):
                img = _render_patch(rng, bool(t), stain)
                name = f"patch_patient_{patient:03d}_node_{node}_x_{x}_y_{y}.png"
                Image.fromarray(img).save(folder / name)
                split = int(center in TRAIN_CENTERS and rng.random() < id_val_fraction)
                rows.append((patient, node, int(x), int(y), int(t), slide, center, split))
            slide += 1
    meta = pd.DataFrame(rows, columns=list(METADATA_COLUMNS))
    if shuffle_labels:
        meta["tumor"] = rng.permutation(meta["tumor"].to_numpy())
    meta.to_csv(out / METADATA_CSV)  # with the leading unnamed index column, as WILDS ships it
    return out

