"""``medattn study --demo``: the whole protocol, shrunk to minutes on a laptop.

ResNet18 plain and with ``ga``/``la``/``ela`` attention on small synthetic ISIC data at 64 px: a search of 2 trials
per cell (the first the bundle's defaults), 3 seeds per cell with the best parameters, evaluation on the test split,
the summary, ``medattn compare`` and ``medattn explain`` (Grad-CAM and attention maps of one run per cell). Only
the sizes are small (images, data, epochs, trials, seeds); every step is the one a real study runs.

At 64 px the last ResNet stage is a 2×2 grid, so ``explain`` takes Grad-CAM from ``layer2`` (8×8) and the attention
maps from the finer of the two attention layers (``layer3``, 4×4, with a warning line: attention maps of 7×7 need
128 px, which would make every training of the demo about three times slower); docs/explanations.md says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["DEMO_DIR", "DEMO_LESIONS", "demo_config"]

DEMO_DIR = "demo_data/study"
DEMO_LESIONS = 300  # about 350 images: ~240 training, ~50 validation, ~50 test


def demo_config(data_dir: str = DEMO_DIR) -> dict[str, Any]:
    """The demo study's config (a mapping, as ``study.yaml`` would give), writing its data first if missing."""
    from ..data.demo import make_demo_data

    root = Path(data_dir)
    datalist = root / "isic2019_datalist.json"
    if not datalist.is_file():
        make_demo_data(str(root), seed=0, n_lesions=DEMO_LESIONS, image_size=64, datasets=("isic2019",))
    return {
        "name": "demo",
        "datasets": [{
            "bundle": "isic_attention_classification",
            "dataset_dir": str(root / "isic2019"),
            "datalist": str(datalist),
            # its own experiment: the bundle quick start's runs (isic-demo) stay out of the comparison
            "experiment_name": "isic-demo-study",
        }],
        "backbones": ["resnet18"],
        "variants": ["none", "ga", "la", "ela"],
        "baselines": ["plain"],
        "seeds": 3,
        "overrides": {"image_size": 64, "epochs": 3, "val_batch_size": 256},
        # trial 0: the bundle's defaults; trial 1: TPE's draw, stopped after epoch 1 if below trial 0's epoch 1
        "search": {"n_trials": 2, "n_startup_trials": 1, "n_warmup_steps": 0, "sampler_seed": 0,
                   "overrides": {"epochs": 2}},
        "out": "study_demo",
        "compare": {"n_boot": 2000},
        "explain": {"n_images": 16, "n_figures": 4},
    }
