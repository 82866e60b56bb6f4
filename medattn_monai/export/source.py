"""The run a bundle is exported from: found by MLflow run id, run folder or tags, and checked before anything is
written.

Only a FINISHED ``run_type=train`` run with its best weights (``model.pt``), logged test metrics and a network that
rebuilds from ``run.json`` and loads those weights exactly is exported; anything else is refused with a message that
says why and what to do. A run whose folder is not on this machine (a team's server) is read from its MLflow
artifacts (``run.json``, ``model.pt``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..tracking.mlflow_runs import filter_literal, open_client
from ..tracking.run_folder import RUN_INFO, load_network, locate_run, mlflow_record, read_run_info

__all__ = ["RunSource", "load_run", "select_run", "test_metrics"]

logger = logging.getLogger("medattn")


@dataclass(frozen=True)
class RunSource:
    """A checked run: its MLflow record, run folder, ``run.json``, best weights and the network holding them."""

    run_id: str
    run_name: str
    experiment: str
    tags: dict[str, str]
    metrics: dict[str, float]
    run_dir: Path
    info: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    network: torch.nn.Module


def test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The logged test metrics (``test_*``: ``test_bacc``, ``test_auc``, ``test_recall_<class>``, ``test_ood_*``)."""
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("test_") and math.isfinite(v)}


def select_run(dataset: str | None = None, backbone: str | None = None, attention: str | None = None,
               baseline: str | None = None, experiment: str | None = None, metric: str = "test_bacc",
               tracking_uri: str | None = None) -> str:
    """The id of the FINISHED ``run_type=train`` run with these tags that has the highest ``metric``.

    Ties go to the earlier run. Tags left None are not filtered on; ``experiment`` None searches every experiment.

    Raises:
        ConfigError: no such experiment, or no run matches (the message names the filter).
    """
    client = open_client(tracking_uri)
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise ConfigError(f"no MLflow experiment {experiment!r} in {client.tracking_uri}")
        experiment_ids = [found.experiment_id]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    wanted = {"dataset": dataset, "backbone": backbone, "attention": attention, "baseline": baseline}
    clauses = ["attributes.status = 'FINISHED'", "tags.run_type = 'train'"]
    clauses += [f"tags.{key} = {filter_literal(value)}" for key, value in wanted.items() if value is not None]
    filter_string = " and ".join(clauses)
    candidates, token = [], None
    while experiment_ids:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        candidates += [r for r in page if math.isfinite(r.data.metrics.get(metric, math.nan))]
        token = page.token
        if not token:
            break
    if not candidates:
        raise ConfigError(
            f"no FINISHED train run with {metric} matches {filter_string!r} in {client.tracking_uri}"
            + (f" (experiment {experiment!r})" if experiment else "")
        )
    best = min(candidates, key=lambda r: (-r.data.metrics[metric], r.info.start_time, r.info.run_id))
    logger.info("best of %d matching runs by %s: %s (%s = %.4f)", len(candidates), metric, best.info.run_name,
                metric, best.data.metrics[metric])
    return best.info.run_id


def load_run(run: str, output_root: str = "runs", tracking_uri: str | None = None,
             download_dir: str | Path | None = None) -> RunSource:
    """Find a run by MLflow run id or run folder and check that it can be exported.

    Args:
        run: an MLflow run id, or a run folder (its ``run.json`` names the run and the store).
        output_root: where run folders live (``<output_root>/<experiment>/<run name>``).
        tracking_uri: the MLflow store (default: the run folder's, else the usual resolution).
        download_dir: where to put ``run.json``/``model.pt`` downloaded from MLflow when the folder is not here
            (default: a new temporary folder).

    Raises:
        ConfigError: the run is unknown, not FINISHED, has no checkpoint or no test metrics, or its network cannot be
            rebuilt with its weights.
    """
    if Path(run, RUN_INFO).is_file():
        info = read_run_info(run)
        if not info.get("run_id"):
            raise ConfigError(f"run folder {run} was not tracked in MLflow: its status and test metrics are unknown")
        run_id, uri = info["run_id"], tracking_uri or info.get("tracking_uri")
    else:
        run_id, uri = run, tracking_uri
    client = open_client(uri)
    record = mlflow_record(client, run_id)
    label = f"{record.info.run_name} ({run_id})"
    status = record.info.status
    if status != "FINISHED":
        hint = {"FAILED": "it crashed; fix the cause and train again, or resume it",
                "KILLED": "it was interrupted; finish it with `medattn resume`",
                "RUNNING": "it is still training, or was killed hard; finish it with `medattn resume`"}
        why = hint.get(status, "only finished runs are exported")
        raise ConfigError(f"run {label} is {status}, not FINISHED: {why}")
    location = locate_run(run, output_root, uri, download_dir)
    network = load_network(location)
    state = network.state_dict()
    metrics = dict(record.data.metrics)
    if not test_metrics(metrics):
        raise ConfigError(f"run {label} has no test metrics: evaluate it first (`medattn evaluate {run_id}`)")
    experiment = client.get_experiment(record.info.experiment_id).name
    return RunSource(run_id, record.info.run_name, experiment, dict(record.data.tags), metrics, location.run_dir,
                     location.info, state, network)
