"""Same seed and configuration give identical metrics on CPU, with loader workers and augmentation on; another
seed gives other metrics."""

from __future__ import annotations

import multiprocessing

import pytest
import torch

from conftest import train_overrides
from medattn_monai.engine import train
from medattn_monai.tracking import LAST_CHECKPOINT

pytestmark = pytest.mark.slow  # three trainings


def _history(demo_data, work, seed: int, epochs: int = 2) -> dict:
    # streamed decoding: 2 loader worker processes, augmentation on (the bundle default)
    overrides = train_overrides(demo_data, work, epochs=epochs, seed=seed, cache="stream", num_workers=2,
                                log_mlflow=False)
    before = set(multiprocessing.active_children())
    run_dir = train(**overrides)
    # the bundle's finalize step stopped the persistent workers (not left for a garbage collection to stall on)
    assert set(multiprocessing.active_children()) <= before
    return torch.load(f"{run_dir}/{LAST_CHECKPOINT}", weights_only=True)["run"]["history"]


def test_same_seed_same_metrics_other_seed_other_metrics(demo_data, tmp_path, one_thread):
    first = _history(demo_data, tmp_path / "a", seed=3)
    second = _history(demo_data, tmp_path / "b", seed=3)
    other = _history(demo_data, tmp_path / "c", seed=4, epochs=1)
    assert set(first) == {1, 2} and set(first[1]) >= {"train_loss", "val_bacc"}
    assert first == second, "same seed and config: every epoch's metrics are identical (epoch 2 too: reseeded)"
    assert other[1]["train_loss"] != first[1]["train_loss"], "another seed trains differently"
