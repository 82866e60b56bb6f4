"""Opening, reattaching and closing MLflow runs with the project's store and status rules.

Status rules (one function, :func:`final_status`): a run that ends normally is FINISHED; an exception ends it
FAILED; Ctrl-C, or a search trial stopped by its pruner (Optuna's ``TrialPruned``), ends it KILLED.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from ..errors import ConfigError
from .reachability import check_tracking_server
from .store import default_artifact_location, mask_secrets, resolve_tracking_uri
from .ui import add_missing_ui_tags, experiment_ui_tags

__all__ = ["open_client", "get_or_create_experiment", "create_run", "reopen_run", "log_params_once", "log_artifact",
           "log_metrics", "end_run", "final_status", "is_pruned", "stringify"]

# MLflow's limit of metrics per log_batch request
_BATCH = 1000
MetricValues = Union[Mapping[str, float], Sequence[tuple[str, float, int]]]

logger = logging.getLogger(__name__)


def open_client(tracking_uri: str | None = None):  # noqa: ANN201 - mlflow is imported lazily
    """An ``MlflowClient`` on the resolved store (see :func:`resolve_tracking_uri`); the first time a process opens
    one on a tracking server, the server must answer within seconds (:mod:`.reachability`)."""
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_server(uri)
    try:
        return mlflow.MlflowClient(tracking_uri=uri)
    except Exception as e:  # noqa: BLE001 - a bad URI surfaces as many exception types
        raise ConfigError(mask_secrets(f"cannot open the MLflow store {uri}: {e}")) from None


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


def create_run(client: Any, experiment: str, run_name: str, tags: Mapping[str, Any]) -> str:
    """Create a RUNNING run; refuses a name already used in the experiment (names identify runs)."""
    exp_id = get_or_create_experiment(client, experiment)
    existing = client.search_runs([exp_id], filter_string=f"attributes.run_name = '{run_name}'", max_results=1)
    if existing:
        raise ConfigError(
            f"a run named {run_name!r} already exists in experiment {experiment!r} "
            f"(run id {existing[0].info.run_id}); resume it or choose another run_name"
        )
    run = client.create_run(exp_id, run_name=run_name, tags={k: stringify(v) for k, v in tags.items() if v is not None})
    return run.info.run_id


def reopen_run(client: Any, run_id: str) -> Any:
    """Mark an interrupted (RUNNING, FAILED or KILLED) run RUNNING again and return it."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"MLflow run {run_id} not found in store {mask_secrets(client.tracking_uri)}") from None
    if run.info.status == "FINISHED":
        raise ConfigError(f"MLflow run {run_id} ({run.info.run_name}) already FINISHED: nothing to resume")
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
    """Upload a file as an artifact; into a local artifact folder on the same disk it is hard-linked, not copied.

    Checkpoints are large (a ResNet18's optimizer state alone is 90 MB) and a study has hundreds of runs: a link
    costs neither time nor space, and the run folder only ever replaces its files (a new inode), never edits them,
    so the artifact keeps the uploaded content. ``artifact_uri`` (the run's) saves looking it up.
    """
    from urllib.parse import unquote, urlparse

    uri = artifact_uri or client.get_run(run_id).info.artifact_uri
    if uri.startswith("file:"):
        dest = Path(unquote(urlparse(uri).path), artifact_path or "", Path(path).name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.unlink(missing_ok=True)
            os.link(path, dest)
            return
        except OSError:  # another file system, or links not allowed: copy as MLflow does
            pass
    client.log_artifact(run_id, str(path), artifact_path=artifact_path)


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
    """The status a run ends with: FINISHED without ``error``, KILLED for Ctrl-C or a pruned trial, else FAILED."""
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, KeyboardInterrupt) or is_pruned(error) else "FAILED"


def end_run(client: Any, run_id: str, status: str, artifacts: Iterable[Any] = ()) -> None:
    """Upload existing artifact files, then set the final status (FINISHED, FAILED or KILLED)."""
    uri = None
    for path in artifacts:
        if path and os.path.isfile(path):
            try:
                uri = uri or client.get_run(run_id).info.artifact_uri  # looked up once, inside the guard
                log_artifact(client, run_id, path, artifact_uri=uri)
            except Exception as e:  # noqa: BLE001 - never lose the status update over an upload
                logger.warning("could not upload artifact %s: %s", path, mask_secrets(str(e)))
    client.set_terminated(run_id, status=status)
