"""Ignite handlers of the bundles: seeding, checkpoints, MLflow tracking, progress and predictions."""

from __future__ import annotations

from .checkpoint import BEST_MODEL, LAST_CHECKPOINT, RunCheckpointer, unwrap_model
from .epoch_seed import EpochSeeder
from .mlflow_tracker import RUN_INFO, MLflowTracker, detach_foreign_mlflow_handlers, read_run_info
from .progress import EpochSummary, TrainingProgressBar

__all__ = [
    "BEST_MODEL", "LAST_CHECKPOINT", "RUN_INFO", "EpochSeeder", "EpochSummary", "MLflowTracker", "RunCheckpointer",
    "TrainingProgressBar", "detach_foreign_mlflow_handlers", "read_run_info", "unwrap_model",
]
