"""The bundle's MLflow tracking: one run per training, with the tags, params, metrics, artifacts and status rules
described in ``docs/architecture.md`` ("Tracking").

- At ``STARTED`` the tracker only checks (a new name is free; a resumed run exists and is not FINISHED); the run
  is created, or with ``resume=True`` the run recorded in the run folder's ``run.json`` is reopened, when training
  begins (the first ``EPOCH_STARTED``), after the other handlers' start-up checks. A command refused at start
  (a FINISHED run, other hyper-parameters, an unreadable checkpoint) thus leaves every run as it was; only a run
  the tracker itself opened is ever marked FAILED or KILLED.
- Epoch metrics come from the run's :class:`RunHistory` and are logged once per (key, epoch): a resumed run
  that repeats an epoch never logs a step twice.
- ``COMPLETED`` logs ``best_<key>`` (once: a run finished again keeps one value) and drops the ``error`` tag of
  an earlier failure, uploads the run folder's files, then marks the run FINISHED; an exception
  marks it FAILED (Ctrl-C: KILLED) after uploading what exists, then propagates. A search trial stopped by its
  pruner (Optuna's ``TrialPruned``) ends KILLED with the tag ``pruned=true``; epoch metrics logged so far stay.
- MONAI's own ``MLFlowHandler`` (added by ``python -m monai.bundle run … --tracking mlflow``) is detached from the
  engines before they log anything else, so nothing is logged twice; it shares this run through the bundle's
  ``run_name``/``tracking_uri``/``experiment_name`` keys.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from ..errors import ConfigError, error_message, find_medattn_error
from ..tracking.mlflow_runs import (
    create_run,
    end_run,
    final_status,
    is_pruned,
    log_metrics,
    log_params_once,
    named_store_faults,
    open_client,
    refuse_taken_name,
    reopen_run,
    resumable_run,
    stringify,
)
from ..tracking.run_folder import RUN_INFO, read_run_info, update_run_info
from ..tracking.run_lock import lock_run_folder, unlock_run_folder
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


def _ignored(*args: Any, **kwargs: Any) -> None:
    """What a detached handler's place in an engine's handler list calls."""


def detach_foreign_mlflow_handlers(engine: Engine, keep: object) -> int:
    """Disable every MONAI ``MLFlowHandler`` method of ``engine`` except ``keep``'s; returns how many.

    Each is replaced in its place by a no-op, in the handler list itself: Ignite's ``remove_event_handler`` builds
    a new list, so an event being fired (``STARTED``, which this is called from) would still call the handler
    behind ours, and MONAI's would create a run of our run's name before the tracker opens it.
    """
    from monai.handlers import MLFlowHandler

    disabled = 0
    # Ignite keeps handlers in Engine._event_handlers as (handler, args, kwargs) lists (no public way to edit them)
    for entries in engine._event_handlers.values():
        for i, (handler, args, kwargs) in enumerate(entries):
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, MLFlowHandler) and owner is not keep:
                entries[i] = (_ignored, args, kwargs)
                disabled += 1
    return disabled


def _store_writes(method: Callable[..., Any]) -> Callable[..., Any]:
    """A store that cannot take the method's writes (full disk, read-only) ends in one line naming the store."""

    @functools.wraps(method)
    def wrapper(self: MLflowTracker, *args: Any, **kwargs: Any) -> Any:
        with named_store_faults(self.tracking_uri):
            return method(self, *args, **kwargs)

    return wrapper


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
        self.run_id: str | None = None  # set once the run is created or reopened: only then is it ours to mark
        self.uploads: Any = None  # CheckpointUploads: every checkpoint to MLflow as written (shared stores)
        self._resume_id: str | None = None
        self._new_folder = False  # the run folder did not exist before this training
        self._lock: Any = None  # held from the start checks to the end of the training (lock_run_folder)
        self._logged: set[tuple[str, int]] = set()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    @_store_writes
    def started(self, engine: Engine) -> None:
        """Check, without writing anything, that the run can be recorded: a new name is free, a resumed run exists
        and is not FINISHED. The run is created or reopened only when training begins (:meth:`open_run`), after every
        start-up check of the other handlers (hyper-parameters of a resume, its checkpoint): a refusal changes no
        run's status, tags or end time."""
        for e in (engine, *self.evaluators):
            if detach_foreign_mlflow_handlers(e, keep=self):
                logger.info("MONAI's MLFlowHandler detached: the bundle's tracker records this run")
        if self.client is not None:  # the engine was run again in this process: keep recording into the same run
            return
        self._new_folder = not self.resume and not self.output_dir.exists()
        client = open_client(self.tracking_uri)
        if self.resume:
            info = read_run_info(self.output_dir)
            if not info.get("run_id"):
                raise ConfigError(f"{self.output_dir / RUN_INFO} records no MLflow run: its training stopped before "
                                  "its first epoch (train it again) or was not tracked (resume with log_mlflow false)")
            resumable_run(client, info["run_id"])
            self._resume_id = info["run_id"]
        else:
            refuse_taken_name(client, self.experiment_name, self.run_name)
        self._lock = lock_run_folder(self.output_dir)  # one process trains into a run folder at a time
        self.client = client
        # registered now, not in attach(): these run after every other handler of their event (validation,
        # checkpoint writing), so the metrics and files they record are complete
        for event, handler in ((Events.EPOCH_STARTED, self.open_run), (Events.EPOCH_COMPLETED, self.epoch_completed),
                               (Events.COMPLETED, self.completed)):
            if not engine.has_event_handler(handler, event):
                engine.add_event_handler(event, handler)

    @_store_writes
    def open_run(self, engine: Engine) -> None:
        """Create the run, or reopen the resumed one (once); its id is recorded only when that succeeded."""
        if self.run_id is not None:
            return
        if self.resume:
            reopen_run(self.client, self._resume_id)
            self.run_id = self._resume_id
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

    @_store_writes
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

    @_store_writes
    def completed(self, engine: Engine) -> None:
        """Log ``best_<key>`` and ``best_epoch`` (unless the run has them already: a run finished again), drop a
        stale ``error`` tag of an earlier failure, upload the run folder's files and mark the run FINISHED."""
        if self.client is None:
            return
        self.open_run(engine)  # a resumed run whose last epoch was already done trains no epoch
        if self.history.best_value is not None:
            best = {f"best_{self.history.key_metric}": float(self.history.best_value),
                    "best_epoch": float(self.history.best_epoch)}
            have = self.client.get_run(self.run_id).data.metrics
            log_metrics(self.client, self.run_id, {k: v for k, v in best.items() if have.get(k) != v})
        if "error" in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, "error")
        end_run(self.client, self.run_id, final_status(), self._artifacts(wait=_FINAL_UPLOAD_S))
        unlock_run_folder(self._lock)
        logger.info("MLflow run %s FINISHED (%s)", self.run_name, self.run_id)

    def _remove_unused_folder(self) -> None:
        """A new run that never began (refused at start: its store cannot be written, …) leaves no run folder: the
        folder this training made is removed if it holds nothing but its ``run.json``."""
        if not self._new_folder or not self.output_dir.is_dir():
            return
        files = list(self.output_dir.iterdir())
        if all(p.is_file() and (p.name == RUN_INFO or p.name.startswith(".")) for p in files):
            for p in files:
                p.unlink()
            self.output_dir.rmdir()

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
        unlock_run_folder(self._lock)
        if self.run_id is None:
            self._remove_unused_folder()
        err = find_medattn_error(e)
        if err is not None:  # one clear line, not the DataLoader worker's traceback
            raise type(err)(mask_secrets(error_message(err))) from None
        raise e

