"""Synthetic skin lesions for the ISIC 2019 and derm7pt demos: class-dependent colour and texture on skin, an
optional dots structure, a planted sticker artefact, and their masks."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["ISIC_FREQ", "CLASS_LOOK", "SITES", "render_lesion", "plant_artefact", "save_mask"]

# real ISIC 2019 class frequencies (MEL, NV, BCC, AK, BKL, DF, VASC, SCC)
ISIC_FREQ = np.array([4522, 12875, 3323, 867, 2624, 239, 253, 628], dtype=float)
# per class: lesion hue (degrees), texture, probability of the dots "structure"
CLASS_LOOK = {
    "MEL": (20, "irregular", 0.8),
    "NV": (30, "plain", 0.3),
    "BCC": (340, "stripes", 0.2),
    "AK": (5, "rough", 0.2),
    "BKL": (45, "rings", 0.3),
    "DF": (280, "plain", 0.2),
    "VASC": (250, "blobs", 0.1),
    "SCC": (170, "rough", 0.2),
}
SITES = ("anterior torso", "posterior torso", "head/neck", "lower extremity", "upper extremity", "palms/soles")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360, np.clip(s, 0, 1), np.clip(v, 0, 1)))


def render_lesion(rng: np.random.Generator, size: int, cls: str, dots: bool) -> tuple[np.ndarray, np.ndarray]:
    """One RGB float image (H×W×3 in [0, 1]) and its lesion mask."""
    hue, texture, _ = CLASS_LOOK[cls]
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


def plant_artefact(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A green round sticker in a corner (like a colour-calibration patch); returns its mask."""
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.choice([0.14, 0.86], 2) + rng.normal(0, 0.02, 2)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(0.008, 0.012)
    img[mask] = np.array([0.1, 0.75, 0.25]) + rng.normal(0, 0.03, 3)
    return mask


def save_mask(mask: np.ndarray, path: Path) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)

