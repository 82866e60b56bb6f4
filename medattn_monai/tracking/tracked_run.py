"""One MLflow run from start to end status, without MLflow's global state.

Every command that records something (a comparison, an explanation) opens its run here, so the status rules of
:func:`~medattn_monai.tracking.mlflow_runs.final_status` hold everywhere: an exception ends the run FAILED, Ctrl-C
ends it KILLED, a normal exit FINISHED.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from .mlflow_runs import final_status, get_or_create_experiment, named_store_faults, open_client
from .naming import RUN_TYPES, git_commit

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["TrackedRun", "tracked_run"]


class TrackedRun(NamedTuple):
    """The client bound to the store and the id of the open run."""

    client: MlflowClient
    run_id: str


@contextmanager
def tracked_run(
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    tracking_uri: str | None = None,
    params: Mapping[str, object] | None = None,
) -> Iterator[TrackedRun]:
    """Open a run in ``experiment`` (created if missing), yield it, and end it with the status the exit calls for.

    Args:
        experiment: experiment name; a new one gets :func:`default_artifact_location`.
        run_name: the run's name (see :func:`unique_run_name`).
        tags: tags of the project's vocabulary (:data:`~medattn_monai.tracking.naming.TAG_KEYS`); ``run_type`` is
            required, ``git_commit`` is added if absent.
        tracking_uri: see :func:`resolve_tracking_uri`.
        params: logged as parameters at the start.
    """
    if tags.get("run_type") not in RUN_TYPES:
        raise ValueError(f"tags['run_type'] must be one of {RUN_TYPES}, got {tags.get('run_type')!r}")
    client = open_client(tracking_uri)
    with named_store_faults(client.tracking_uri):
        experiment_id = get_or_create_experiment(client, experiment)
        all_tags = {"git_commit": git_commit(), **{k: str(v) for k, v in tags.items()}}
        run_id = client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
    try:
        with named_store_faults(client.tracking_uri):
            for key, value in (params or {}).items():
                client.log_param(run_id, key, value)
            yield TrackedRun(client, run_id)
    except BaseException as e:
        try:
            client.set_terminated(run_id, final_status(e))
        except Exception:  # noqa: BLE001 - the store failed already: its error is the one to report
            pass
        raise
    with named_store_faults(client.tracking_uri):
        client.set_terminated(run_id, final_status())
