"""MLflow tracking: store resolution, run naming and the tag vocabulary shared by every command."""

from __future__ import annotations

from .naming import RUN_TYPES, TAG_KEYS, cell_hash, git_commit, make_run_name, unique_run_name
from .tracked_run import TrackedRun, tracked_run
from .store import default_artifact_location, mlflow_ui_command, resolve_tracking_uri

__all__ = [
    "RUN_TYPES", "TAG_KEYS", "cell_hash", "default_artifact_location", "git_commit", "make_run_name",
    "mlflow_ui_command", "resolve_tracking_uri", "TrackedRun", "tracked_run", "unique_run_name",
]
