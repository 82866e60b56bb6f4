"""Ignite handlers of the bundles: seeding, checkpoints, MLflow tracking, progress and predictions."""

from __future__ import annotations

from .checkpoint import RunCheckpointer, RunHistory, unwrap_model
from .epoch_seed import EpochSeeder
from .mlflow_tracker import MLflowTracker, detach_foreign_mlflow_handlers
from .predictions import EvaluatorOutputs, PredictionWriter, classification_metrics
from .progress import EpochSummary, TrainingProgressBar

__all__ = [
    "EpochSeeder", "EpochSummary", "EvaluatorOutputs", "MLflowTracker", "PredictionWriter", "RunCheckpointer",
    "RunHistory", "TrainingProgressBar", "classification_metrics", "detach_foreign_mlflow_handlers", "unwrap_model",
]
