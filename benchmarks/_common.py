"""Shared set-up of the benchmarks: demo data of a given size and the machine description."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from medattn_monai.data.datalist import load_datalist, save_datalist
from medattn_monai.data.demo import write_isic2019_demo
from medattn_monai.data.isic2019 import prepare_isic2019


def machine() -> str:
    """CPU model, cores and torch version, for the header of every table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}"


def demo_split(root: Path, image_size: int, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """ISIC-format demo JPEGs at ``image_size`` and a datalist with exactly ``n_train``/``n_val`` images."""
    data = root / f"isic_{image_size}"
    datalist = root / f"isic_{image_size}_{n_train}_{n_val}.json"
    if not datalist.exists():
        if not (data / "ISIC_2019_Training_GroundTruth.csv").exists():
            write_isic2019_demo(data, n_lesions=int((n_train + n_val) / 0.8), image_size=image_size, seed=seed)
        full = root / f"isic_{image_size}_full.json"
        prepare_isic2019(str(data), str(full), val_ratio=0.15, test_ratio=0.05)
        d = load_datalist(full)
        d.pop("_path")
        items = d["training"] + d["validation"] + d["test"]
        if len(items) < n_train + n_val + 8:
            raise SystemExit(f"demo too small: {len(items)} images")
        d["training"], d["validation"], d["test"] = (items[:n_train], items[n_train:n_train + n_val],
                                                     items[n_train + n_val:n_train + n_val + 8])
        # cut to exact sizes without regard to lesions: a timing datalist, never evaluated (docs/data.md, Leakage)
        d["group_field"] = None
        save_datalist(d, datalist)
    return data, datalist


def write_rows(path: Path | None, rows: list[dict]) -> None:
    if path:
        path.write_text(json.dumps(rows, indent=1))
