"""Ignite handlers of the bundles: seeding, checkpoints, MLflow tracking, progress and predictions."""

from __future__ import annotations

from .checkpoint import (
    BEST_MODEL,
    LAST_CHECKPOINT,
    RUN_INFO,
    RunCheckpointer,
    RunHistory,
    read_run_info,
    unwrap_model,
    update_run_info,
)
from .epoch_seed import EpochSeeder
from .mlflow_tracker import MLflowTracker, detach_foreign_mlflow_handlers
from .predictions import EvaluatorOutputs, PredictionWriter, classification_metrics
from .progress import EpochSummary, TrainingProgressBar

__all__ = [
    "BEST_MODEL", "LAST_CHECKPOINT", "RUN_INFO", "EpochSeeder", "EvaluatorOutputs", "EpochSummary", "MLflowTracker", "RunCheckpointer", "RunHistory",
    "PredictionWriter", "TrainingProgressBar", "classification_metrics", "detach_foreign_mlflow_handlers",
    "read_run_info", "unwrap_model", "update_run_info",
]
