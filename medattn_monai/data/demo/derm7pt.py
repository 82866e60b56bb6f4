"""The derm7pt demo: a ``release_v0`` folder whose dermoscopic images are ISIC-demo lesions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..derm7pt import CRITERION_VALUES, DIAGNOSIS_TO_ISIC, IMAGE_DIR, INDEX_FILES, META_CSV
from .folders import claim_folder, replace_folder
from .lesions import render_lesion

__all__ = ["write_derm7pt_demo"]


def write_derm7pt_demo(out_dir: str | Path, n_cases: int = 60, image_size: int = 64, seed: int = 0) -> Path:
    """Write a synthetic derm7pt ``release_v0`` folder (``meta/`` CSVs and ``images/`` JPEGs).

    Every column of the real ``meta.csv`` is present; the seven criteria take the real vocabularies, diagnoses are
    drawn from every derm7pt diagnosis (including melanosis and miscellaneous, which have no ISIC class), and the
    dermoscopic image is an ISIC-demo lesion of the diagnosis' ISIC class (streaks and atypical networks are not
    drawn: the annotations are random, a fixture rather than a learnable signal). Cases are split 40/20/40 into
    the three index files, as in the release.

    Args:
        out_dir: folder to create; an existing folder must be empty or a demo folder.
        n_cases: number of cases (each has a dermoscopic and a clinical image).
        image_size: side of the JPEGs.
        seed: seed of everything.

    Returns:
        ``out_dir``.
    """
    out = claim_folder(out_dir)
    rng = np.random.default_rng(seed)
    diagnoses = list(DIAGNOSIS_TO_ISIC)
    img_root = replace_folder(out / IMAGE_DIR)
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
            img, _ = render_lesion(rng, image_size, look, dots=criteria["dots_and_globules"] != "absent")
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
    pd.DataFrame(rows).to_csv(out / META_CSV, index=False)
    order = rng.permutation(n_cases)
    cut = [round(0.4 * n_cases), round(0.6 * n_cases)]
    for rel, idx in zip(INDEX_FILES.values(), np.split(order, cut), strict=True):
        pd.DataFrame({"indexes": np.sort(idx)}).to_csv(out / rel, index=False)
    return out

