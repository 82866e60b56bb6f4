"""Where runs are recorded: the MLflow tracking URI and artifact location."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

__all__ = ["resolve_tracking_uri", "default_artifact_location", "mlflow_ui_command"]


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns/mlflow.db``.

    The old file store (a bare path or ``file:``) is refused: MLflow >= 3.13 no longer reads it.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        db = Path.cwd() / "mlruns" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"
    if uri.startswith("file:") or "://" not in uri:
        raise ConfigError(
            f"tracking URI {uri!r} is a file store, which MLflow no longer supports: "
            "use sqlite:///path/to/mlflow.db, http(s)://server or postgresql://…"
        )
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Artifacts of a local sqlite store live beside the database (``<db dir>/artifacts/<experiment>``).

    For a server or database backend the server decides (None).
    """
    if tracking_uri.startswith("sqlite:///"):
        root = Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts" / experiment_name
        return root.resolve().as_uri()
    return None


def mlflow_ui_command(tracking_uri: str | None = None) -> str:
    """The command that opens the MLflow UI on this store."""
    uri = resolve_tracking_uri(tracking_uri)
    return f"mlflow ui --backend-store-uri {uri}"
