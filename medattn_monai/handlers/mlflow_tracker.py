"""The bundle's MLflow tracking: one run per training, with the tags, params, metrics, artifacts and status rules
described in ``docs/architecture.md`` ("Tracking").

- A new run is created at ``STARTED`` (names never repeat); with ``resume=True`` the run recorded in the run
  folder's ``run.json`` is reopened instead, so an interrupted training finishes in the same run.
- Epoch metrics come from the run's :class:`RunHistory` and are logged once per (key, epoch): a resumed run
  that repeats an epoch never logs a step twice.
- ``COMPLETED`` logs ``best_<key>`` and uploads the run folder's files, then marks the run FINISHED; an exception
  marks it FAILED (Ctrl-C: KILLED) after uploading what exists, then propagates. A search trial stopped by its
  pruner (Optuna's ``TrialPruned``) ends KILLED with the tag ``pruned=true``; epoch metrics logged so far stay.
- MONAI's own ``MLFlowHandler`` (added by ``python -m monai.bundle run … --tracking mlflow``) is detached from the
  engines before they log anything else, so nothing is logged twice; it shares this run through the bundle's
  ``run_name``/``tracking_uri``/``experiment_name`` keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from ..errors import error_message, find_medattn_error
from ..tracking.mlflow_runs import (
    create_run,
    end_run,
    final_status,
    is_pruned,
    log_metrics,
    log_params_once,
    open_client,
    reopen_run,
    stringify,
)
from ..tracking.run_folder import read_run_info, update_run_info
from ..tracking.store import mask_secrets, resolve_tracking_uri
from ..tracking.tags import logged_params
from ..tracking.ui import where_to_watch
from .checkpoint import RunHistory
from .checkpoint_upload import start_checkpoint_uploads

__all__ = ["MLflowTracker", "detach_foreign_mlflow_handlers"]

logger = logging.getLogger(__name__)
# seconds to wait for the last checkpoint's upload when a run completes (longer than MLflow's own retries of one
# request, about 4 minutes) and when it stops on an error or Ctrl-C (its files are uploaded once more in any case)
_FINAL_UPLOAD_S = 600.0
_STOPPED_UPLOAD_S = 30.0


def detach_foreign_mlflow_handlers(engine: Engine, keep: object) -> int:
    """Remove every MONAI ``MLFlowHandler`` method from ``engine`` except ``keep``'s; returns how many."""
    from monai.handlers import MLFlowHandler

    removed = 0
    # Ignite keeps handlers in Engine._event_handlers (no public listing); removal itself is public API
    for event, entries in list(engine._event_handlers.items()):
        for handler, _, _ in list(entries):
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, MLFlowHandler) and owner is not keep:
                engine.remove_event_handler(handler, event)
                removed += 1
    return removed


class MLflowTracker:
    """Ignite handler that records a training run in MLflow.

    Args:
        tracking_uri: MLflow store (None: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns/mlflow.db``).
        experiment_name: the experiment (``isic``, ``camelyon17``, ``isic-demo``, …).
        run_name: the run's unique name.
        output_dir: the run folder (checkpoints, ``run.json``); its files are uploaded as artifacts.
        params: hyper-parameters logged as MLflow params (every user-facing knob of the bundle); the network's keys
            are logged with the values its tags carry (:func:`~medattn_monai.tracking.tags.logged_params`).
        tags: the design's tags (dataset, backbone, attention, …, run_type, cell, git_commit).
        history: the run's :class:`RunHistory` (epoch metrics and the best key metric).
        evaluators: engines (validation) to clear of MONAI's ``MLFlowHandler`` as well.
        resume: reopen the run recorded in ``output_dir/run.json`` instead of creating one.
    """

    def __init__(self, tracking_uri: str | None, experiment_name: str, run_name: str, output_dir: str,
                 params: Mapping[str, Any], tags: Mapping[str, Any], history: RunHistory,
                 evaluators: Sequence[Engine] = (), resume: bool = False) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.output_dir = Path(output_dir)
        self.tags = dict(tags)
        self.params = logged_params(params, self.tags)
        self.history = history
        self.evaluators = [e for e in evaluators if e is not None]
        self.resume = resume
        self.client: Any = None
        self.run_id: str | None = None
        self.uploads: Any = None  # CheckpointUploads: every checkpoint to MLflow as written (shared stores)
        self._logged: set[tuple[str, int]] = set()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def started(self, engine: Engine) -> None:
        for e in (engine, *self.evaluators):
            if detach_foreign_mlflow_handlers(e, keep=self):
                logger.info("MONAI's MLFlowHandler detached: the bundle's tracker records this run")
        if self.run_id is not None:  # the engine was run again in this process: keep recording into the same run
            return
        self.client = open_client(self.tracking_uri)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.resume:
            info = read_run_info(self.output_dir)
            self.run_id = info["run_id"]
            reopen_run(self.client, self.run_id)
            self._load_logged_steps()
            logger.info("resuming MLflow run %s (%s)", self.run_name, self.run_id)
        else:
            self.run_id = create_run(self.client, self.experiment_name, self.run_name, self.tags)
        log_params_once(self.client, self.run_id, self.params, new_run=not self.resume)
        # run.json is a file (and an artifact): it records the store without its password (store.py)
        update_run_info(self.output_dir, {"run_id": self.run_id, "run_name": self.run_name,
                                          "experiment_name": self.experiment_name,
                                          "tracking_uri": mask_secrets(self.tracking_uri)})
        self.uploads = start_checkpoint_uploads(engine, self.client, self.run_id, self.output_dir, self.tracking_uri,
                                                self.tags.get("run_type"))
        self._announce()
        # registered now, not in attach(): these run after every other handler of their event (validation,
        # checkpoint writing), so the metrics and files they record are complete
        for event, handler in ((Events.EPOCH_COMPLETED, self.epoch_completed), (Events.COMPLETED, self.completed)):
            if not engine.has_event_handler(handler, event):
                engine.add_event_handler(event, handler)

    def _announce(self) -> None:
        """Say at the start where the run is recorded and how to watch it (the UI shows each epoch's metrics)."""
        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        logger.info("run %s: folder %s, MLflow run %s in experiment %s", self.run_name, self.output_dir,
                    self.run_id, self.experiment_name)
        logger.info("%s", where_to_watch(self.tracking_uri, experiment_id, self.run_id))

    def _load_logged_steps(self) -> None:
        keys = {k for metrics in self.history.epochs.values() for k in metrics}
        keys |= set(self.client.get_run(self.run_id).data.metrics)
        for key in keys:
            for m in self.client.get_metric_history(self.run_id, key):
                self._logged.add((key, int(m.step)))

    def epoch_completed(self, engine: Engine) -> None:
        batch = [
            (key, value, int(epoch))
            for epoch, metrics in sorted(self.history.epochs.items())
            for key, value in metrics.items()
            if (key, int(epoch)) not in self._logged
        ]
        log_metrics(self.client, self.run_id, batch)
        self._logged.update((key, step) for key, _, step in batch)

    def _artifacts(self, wait: float) -> Iterable[Path]:
        """The run folder's files not uploaded yet, after waiting up to ``wait`` seconds for checkpoint uploads."""
        if self.uploads is not None:
            self.uploads.close(timeout=wait)
        return sorted(p for p in self.output_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                      and not (self.uploads is not None and self.uploads.is_uploaded(p)))

    def completed(self, engine: Engine) -> None:
        if self.run_id is None:
            return
        if self.history.best_value is not None:
            log_metrics(self.client, self.run_id, {f"best_{self.history.key_metric}": self.history.best_value,
                                                   "best_epoch": self.history.best_epoch})
        end_run(self.client, self.run_id, final_status(), self._artifacts(wait=_FINAL_UPLOAD_S))
        logger.info("MLflow run %s FINISHED (%s)", self.run_name, self.run_id)

    def exception_raised(self, engine: Engine, e: BaseException) -> None:
        if self.run_id is not None:
            status = final_status(e)
            try:
                self.epoch_completed(engine)  # the epoch that decided to stop is part of the record
                if is_pruned(e):
                    self.client.set_tag(self.run_id, "pruned", "true")
                else:
                    self.client.set_tag(self.run_id, "error", mask_secrets(stringify(error_message(e)))[:4000])
                end_run(self.client, self.run_id, status, self._artifacts(wait=_STOPPED_UPLOAD_S))
            except Exception as log_error:  # noqa: BLE001 - the original error matters more
                logger.warning("could not mark MLflow run %s %s: %s", self.run_id, status, mask_secrets(str(log_error)))
        err = find_medattn_error(e)
        if err is not None:  # one clear line, not the DataLoader worker's traceback
            raise type(err)(mask_secrets(error_message(err))) from None
        raise e

