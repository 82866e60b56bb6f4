"""MLflow tracking and the run folder: store resolution, run names and tags, opening and closing runs, and the one
module that knows a trained run's files (:mod:`.run_folder`)."""

from __future__ import annotations

from .naming import (
    RUN_TYPES,
    TAG_KEYS,
    cell_hash,
    git_commit,
    make_run_name,
    network_label,
    run_prefix,
    unique_run_name,
)
from .run_folder import BEST_MODEL, LAST_CHECKPOINT, RUN_INFO, RunLocation, load_network, locate_run, read_run_info
from .store import default_artifact_location, mlflow_ui_command, resolve_tracking_uri
from .tracked_run import TrackedRun, tracked_run
from .ui import comparison_url

__all__ = [
    "BEST_MODEL", "LAST_CHECKPOINT", "RUN_INFO", "RUN_TYPES", "TAG_KEYS", "RunLocation", "TrackedRun", "cell_hash",
    "comparison_url", "default_artifact_location", "git_commit", "load_network", "locate_run", "make_run_name",
    "mlflow_ui_command", "network_label", "read_run_info", "resolve_tracking_uri", "run_prefix", "tracked_run",
    "unique_run_name",
]
