"""Connects a training's checkpoints to their upload: every checkpoint the :class:`~.checkpoint.RunCheckpointer`
writes goes to the MLflow run with ``run.json`` (:class:`~medattn_monai.tracking.artifact_upload.CheckpointUploads`
says which runs and how)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ignite.engine import Engine

from ..tracking.artifact_upload import CheckpointUploads, uploads_each_checkpoint
from ..tracking.run_folder import RUN_INFO
from .checkpoint import RunCheckpointer

__all__ = ["start_checkpoint_uploads"]


def _checkpointers(engine: Engine) -> list[RunCheckpointer]:
    # Ignite keeps handlers in Engine._event_handlers (no public listing); the bundle attaches one checkpointer
    found = []
    for entries in engine._event_handlers.values():
        for handler, _, _ in entries:
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, RunCheckpointer) and owner not in found:
                found.append(owner)
    return found


def start_checkpoint_uploads(engine: Engine, client: Any, run_id: str, run_dir: str | Path, tracking_uri: str,
                             run_type: str | None) -> CheckpointUploads | None:
    """Upload ``run.json`` and the files of every checkpoint of ``engine``'s run as they are written; None when
    the run does not upload its checkpoints (a local store, a search trial) or has no checkpointer."""
    checkpointers = _checkpointers(engine)
    if not checkpointers or not uploads_each_checkpoint(tracking_uri, run_type):
        return None
    uploads = CheckpointUploads(client, run_id, run_dir)
    info = Path(run_dir) / RUN_INFO  # the run's resolved configuration, with the MLflow run id: first
    for checkpointer in checkpointers:
        checkpointer.add_listener(lambda paths: uploads.submit([info, *paths]))
    return uploads
