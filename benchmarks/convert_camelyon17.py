"""Time the Camelyon17-WILDS converter on a table of the real size (455,954 rows), without images.

Usage: python benchmarks/convert_camelyon17.py [--rows 455954] [--repeats 3]

Writes a synthetic ``metadata.csv`` with the real columns and centre/split structure (100 patients, 20 per
hospital, 5 nodes each; about 10 % of the training hospitals' patches with split 1), then converts it with
``prepare_camelyon17`` and prints the wall time of each repeat. The issue's target is under 30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine
from medattn_monai.data.camelyon17 import METADATA_COLUMNS, prepare_camelyon17

REAL_ROWS = 455_954


def synthetic_metadata(rows: int, seed: int = 0) -> pd.DataFrame:
    """A WILDS-shaped metadata table (unique patch coordinates per slide)."""
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, 100, rows)
    node = rng.integers(0, 5, rows)
    center = patient // 20
    split = np.where(np.isin(center, (0, 3, 4)) & (rng.random(rows) < 0.1), 1, 0)
    return pd.DataFrame({
        "patient": patient, "node": node, "x_coord": rng.integers(0, 100_000, rows) // 96 * 96,
        "y_coord": np.arange(rows) * 96, "tumor": rng.integers(0, 2, rows), "slide": patient * 5 + node,
        "center": center, "split": split,
    }, columns=list(METADATA_COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=REAL_ROWS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "camelyon17_v1.0"
        folder.mkdir()
        synthetic_metadata(args.rows).to_csv(folder / "metadata.csv")  # with WILDS' leading index column
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            prepare_camelyon17(str(folder), str(Path(tmp) / "datalist.json"))
            times.append(time.perf_counter() - start)
        size_mb = (Path(tmp) / "datalist.json").stat().st_size / 2**20
    print(f"machine: {machine()}")
    print(f"converted {args.rows} rows: best {min(times):.1f} s, median {sorted(times)[len(times) // 2]:.1f} s "
          f"over {args.repeats} runs (datalist {size_mb:.0f} MB; target < 30 s)")


if __name__ == "__main__":
    main()
