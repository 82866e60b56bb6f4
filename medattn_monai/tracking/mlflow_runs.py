"""Opening, reattaching and closing MLflow runs with the project's store and status rules.

Status rules (one function, :func:`final_status`): a run that ends normally is FINISHED; an exception ends it
FAILED; Ctrl-C, a search trial stopped by its pruner (Optuna's ``TrialPruned``), or a full disk or read-only
folder (``StorageError``: the machine, not the run) ends it KILLED, which ``medattn resume`` continues.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MedattnError, StorageError, exception_chain
from .atomic_write import copy_file, storage_error
from .reachability import check_tracking_server
from .store import default_artifact_location, mask_secrets, resolve_tracking_uri
from .ui import add_missing_ui_tags, experiment_ui_tags

__all__ = ["open_client", "get_or_create_experiment", "filter_literal", "refuse_taken_name", "create_run",
           "resumable_run", "reopen_run", "log_params_once", "log_artifact", "log_metrics", "end_run", "final_status",
           "is_pruned", "named_store_faults", "store_fault", "stringify"]

# MLflow's limit of metrics per log_batch request
_BATCH = 1000
# what a store that cannot take a write says (sqlite through SQLAlchemy, a file store, a server relaying either)
_STORE_FAULTS = ("disk is full", "no space left", "readonly database", "read-only file system",
                 "unable to open database file", "permission denied", "disk i/o error")
MetricValues = Mapping[str, float] | Sequence[tuple[str, float, int]]

logger = logging.getLogger(__name__)


def _not_reraised_db_error(record: logging.LogRecord) -> bool:
    # MLflow logs a database error with its whole traceback, then raises it as an MlflowException, which the
    # command reports in one line (store_fault): the log record would only repeat it as a traceback
    return not str(record.msg).startswith("SQLAlchemy database error")


def open_client(tracking_uri: str | None = None):
    """An ``MlflowClient`` on the resolved store (see :func:`resolve_tracking_uri`); the first time a process opens
    one on a tracking server, the server must answer within seconds (:mod:`.reachability`)."""
    import mlflow

    db_log = logging.getLogger("mlflow.store.db.utils")
    if _not_reraised_db_error not in db_log.filters:
        db_log.addFilter(_not_reraised_db_error)
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_server(uri)
    try:
        return mlflow.MlflowClient(tracking_uri=uri)
    except Exception as e:  # noqa: BLE001 - a bad URI surfaces as many exception types
        raise ConfigError(mask_secrets(f"cannot open the MLflow store {uri}: {e}")) from None


def store_fault(tracking_uri: str | None, error: BaseException) -> StorageError | None:
    """A one-line error naming the store ``tracking_uri`` (its password masked; None: not known, not named) when
    ``error`` is MLflow's or its database's (or wraps one) and says the store cannot be written (full disk,
    read-only file or folder); None otherwise."""
    chain = exception_chain(error)
    if not any(type(e).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "sqlite3") for e in chain):
        return None
    for e in chain:
        text = str(e)
        match = next((fault for fault in _STORE_FAULTS if fault in text.lower()), None)
        if match is not None:
            line = next((ln for ln in text.splitlines() if match in ln.lower()), text)
            store = f"the MLflow store {tracking_uri}" if tracking_uri else "the MLflow store"
            return StorageError(mask_secrets(f"cannot write to {store}: {' '.join(line.split())[:300]}"))
    return None


@contextmanager
def named_store_faults(tracking_uri: str | None, hint: str = "") -> Iterator[None]:
    """Within the block, a store that cannot be written ends in one line naming it (:func:`store_fault`, with
    ``hint`` appended); project errors and anything else pass unchanged."""
    try:
        yield
    except MedattnError:
        raise
    except Exception as e:
        fault = store_fault(tracking_uri, e)
        if fault is None:
            raise
        raise type(fault)(f"{fault}; {hint}" if hint else str(fault)) from None


def get_or_create_experiment(client: Any, name: str) -> str:
    """Id of experiment ``name``, created (with artifacts beside a sqlite store) when missing. Safe under races.

    The experiment carries the MLflow UI's model-training kind and the study's comparison view
    (:mod:`.ui`); an existing one that lacks them gets them here, i.e. when a run is logged into it.
    """
    from mlflow.exceptions import MlflowException

    for _ in range(5):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage != "active":
                raise ConfigError(f"MLflow experiment {name!r} is deleted; restore it or choose another name")
            add_missing_ui_tags(client, exp.experiment_id, exp.tags)
            return exp.experiment_id
        try:
            location = default_artifact_location(client.tracking_uri, name)
            return client.create_experiment(name, artifact_location=location, tags=experiment_ui_tags())
        except MlflowException as e:
            if "already exists" not in str(e).lower() and "RESOURCE_ALREADY_EXISTS" not in str(e):
                raise
            time.sleep(0.2)  # another worker created it first
    raise ConfigError(f"cannot create or find MLflow experiment {name!r}")


def stringify(value: Any) -> str:
    """MLflow param/tag text of a config value (lists as JSON-like text, None as 'None')."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(stringify(v) for v in value) + "]"
    return str(value)


def filter_literal(value: Any) -> str:
    """``value`` quoted for an MLflow search filter (``tags.cell = <this>``); every filter built here uses it.

    MLflow's filter strings have no escapes: a value is quoted with ``'`` or, if it holds one, with ``"``. A value
    holding both, or a backslash (which MLflow's parser takes for an escape it never undoes), cannot be matched,
    so it is refused rather than matching something else.
    """
    text = stringify(value)
    if "\\" in text or ("'" in text and '"' in text):
        raise ConfigError(f"{text!r} cannot be searched for in MLflow: a name may hold single or double quotes but "
                          "not both, and no backslash")
    return f'"{text}"' if "'" in text else f"'{text}'"


def refuse_taken_name(client: Any, experiment: str, run_name: str) -> None:
    """Refuse ``run_name`` if experiment ``experiment`` has a run of that name (names identify runs). Reads only."""
    query = f"attributes.run_name = {filter_literal(run_name)}"  # a name no search could find is refused, always
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    existing = client.search_runs([exp.experiment_id], filter_string=query, max_results=1)
    if existing:
        raise ConfigError(
            f"a run named {run_name!r} already exists in experiment {experiment!r} "
            f"(run id {existing[0].info.run_id}); resume it or choose another run_name"
        )


def create_run(client: Any, experiment: str, run_name: str, tags: Mapping[str, Any]) -> str:
    """Create a RUNNING run; refuses a name already used in the experiment (names identify runs)."""
    refuse_taken_name(client, experiment, run_name)
    exp_id = get_or_create_experiment(client, experiment)
    run = client.create_run(exp_id, run_name=run_name, tags={k: stringify(v) for k, v in tags.items() if v is not None})
    return run.info.run_id


def resumable_run(client: Any, run_id: str) -> Any:
    """The run ``run_id`` if it may continue (RUNNING, FAILED or KILLED). Reads only: a refusal (no such run, or
    a FINISHED one) leaves it as it was."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"MLflow run {run_id} not found in store {mask_secrets(client.tracking_uri)}") from None
    if run.info.status == "FINISHED":
        raise ConfigError(f"MLflow run {run_id} ({run.info.run_name}) already FINISHED: nothing to resume "
                          "(the run is left as it was)")
    return run


def reopen_run(client: Any, run_id: str, finished_too: bool = False) -> Any:
    """Mark an interrupted (RUNNING, FAILED or KILLED) run RUNNING again and return it; a FINISHED one is refused
    (:func:`resumable_run`) unchanged, unless ``finished_too`` (a search's parent run topped up with more trials)."""
    run = client.get_run(run_id) if finished_too else resumable_run(client, run_id)
    client.update_run(run_id, status="RUNNING")
    return run


def log_params_once(client: Any, run_id: str, params: Mapping[str, Any], new_run: bool = False) -> None:
    """Log params that the run does not have yet (params are immutable in MLflow); a ``new_run`` has none."""
    from mlflow.entities import Param

    have = {} if new_run else client.get_run(run_id).data.params
    new = [Param(k, stringify(v)) for k, v in params.items() if k not in have]
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i : i + 100])


def log_artifact(client: Any, run_id: str, path: str | Path, artifact_path: str | None = None,
                 artifact_uri: str | None = None) -> None:
    """Upload a file as an artifact; into a local artifact folder it is copied (a reflink where the file system
    has them), never hard-linked.

    A hard link would make the artifact and the run folder's file one file, so editing either in place (a user's
    editor, ``torch.save`` over ``model.pt``) would change the other, and the record would no longer be what was
    uploaded. A failed copy (a full disk) leaves no partial file and raises ``StorageError`` naming the
    destination. ``artifact_uri`` (the run's) saves looking it up.
    """
    from urllib.parse import unquote, urlparse

    uri = artifact_uri or client.get_run(run_id).info.artifact_uri
    if not uri.startswith("file:"):
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        return
    dest = Path(unquote(urlparse(uri).path), artifact_path or "", Path(path).name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(dest, e) from None
    copy_file(path, dest)


def log_metrics(client: Any, run_id: str, metrics: MetricValues, step: int = 0) -> None:
    """Log metrics in batches: a mapping ``{key: value}`` (all at ``step``) or ``(key, value, step)`` triples."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    triples = [(k, v, step) for k, v in metrics.items()] if isinstance(metrics, Mapping) else list(metrics)
    batch = [Metric(key, float(value), now, int(s)) for key, value, s in triples]
    for i in range(0, len(batch), _BATCH):
        client.log_batch(run_id, metrics=batch[i : i + _BATCH])


def is_pruned(e: BaseException) -> bool:
    """Whether ``e`` is (or wraps) a hyper-parameter search stopping the run early (Optuna's ``TrialPruned``).

    Checked without importing Optuna: a run that is not part of a search never loads it.
    """
    from ..errors import find_cause

    optuna = sys.modules.get("optuna")
    return optuna is not None and find_cause(e, optuna.TrialPruned) is not None


def final_status(error: BaseException | None = None) -> str:
    """The status a run ends with: FINISHED without ``error``; KILLED for Ctrl-C, a pruned trial, or a machine that
    could not store the run's files (a full disk: :class:`~medattn_monai.errors.StorageError`), which interrupt a
    healthy run that ``medattn resume`` (or the study) continues; else FAILED."""
    from ..errors import find_cause

    if error is None:
        return "FINISHED"
    interrupted = isinstance(error, KeyboardInterrupt) or is_pruned(error) or find_cause(error, StorageError)
    return "KILLED" if interrupted else "FAILED"


def end_run(client: Any, run_id: str, status: str, artifacts: Iterable[Any] = ()) -> None:
    """Upload existing artifact files, then set the final status (FINISHED, FAILED or KILLED)."""
    uri = None
    for path in artifacts:
        if path and os.path.isfile(path):
            try:
                uri = uri or client.get_run(run_id).info.artifact_uri  # looked up once, inside the guard
                log_artifact(client, run_id, path, artifact_uri=uri)
            except Exception as e:  # noqa: BLE001 - never lose the status update over an upload
                logger.warning("MLflow run %s lacks its artifact %s (the run folder keeps the file): %s", run_id,
                               Path(path).name, mask_secrets(str(e)))
    client.set_terminated(run_id, status=status)
