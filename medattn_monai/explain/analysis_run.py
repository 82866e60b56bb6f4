"""The MLflow run of an explanation: ``run_type=explain``, in the explained run's store and experiment.

Explanations and feature-usage tests get a run of their own rather than writing into the training run: each is
an analysis with its own settings (split, datalist, features, permutations, seed) that may be repeated with other
settings, while MLflow params are immutable and a metric key holds one history — results of two analyses would
mix under one name with nothing saying which settings gave which value. The training run keeps a model's record
(training, validation, test metrics, and the training-time ``fu_p_<feature>`` curve of the feature-usage
handler); the explain run links to it by tag (``explained_run_id``, and ``mlflow.parentRunId`` so
the UI nests it under the training run) and copies its tags (dataset, backbone, attention, seed, cell, …)
so a study can select explanations exactly as it selects training runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..tracking import TAG_KEYS, mlflow_runs, tracked_run, unique_run_name
from ..tracking.mlflow_runs import open_client
from ..tracking.naming import run_prefix
from ..tracking.store import resolve_tracking_uri
from ..tracking.tracked_run import TrackedRun
from .trained_run import TrainedRun

__all__ = ["explain_run", "explain_run_name", "explain_tags", "log_folder", "log_metrics", "metric_key"]

logger = logging.getLogger("medattn")

# tags of the training run that describe the explain run's subject; run_type, git_commit and split_hash are its own
_COPIED_TAGS = tuple(k for k in TAG_KEYS if k not in ("run_type", "git_commit", "split_hash"))


def metric_key(*parts: str) -> str:
    """An MLflow metric key from parts joined by ``_``; characters MLflow refuses become ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", "_".join(parts))


def explain_run_name(trained: TrainedRun, analysis: str) -> str:
    """``<network label>-s<seed>-<analysis>-<YYYYmmdd-HHMMSS>-<4 hex>``, the explained run's label as in its own
    name (``resnet18-ga-s0``, ``resnet18-matched-ga-s0``, ``vit-resnet18-s0``), unique like every run name."""
    params = trained.info.get("params", {})
    prefix = run_prefix(str(params.get("backbone", "model")), str(params.get("attention", "none")),
                        params.get("seed", 0), params.get("baseline"), params.get("matched_to"), params.get("family"))
    return unique_run_name(f"{prefix}-{analysis.replace('_', '-')}")


def explain_tags(trained: TrainedRun, analysis: str, split: str, split_hash: str,
                 explained_tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags of an explain run: ``run_type=explain``, ``analysis``, the explained run's id and name, the split and
    its hash, and the explained run's design tags."""
    tags = {k: str(v) for k, v in (explained_tags or {}).items() if k in _COPIED_TAGS}
    tags.update({"run_type": "explain", "analysis": analysis, "split": split, "split_hash": split_hash})
    if trained.run_id:
        tags["explained_run_id"] = trained.run_id
        tags["mlflow.parentRunId"] = trained.run_id
    if trained.info.get("run_name"):
        tags["explained_run_name"] = str(trained.info["run_name"])
    return tags


def _explained_tags(client: Any, run_id: str | None) -> dict[str, str]:
    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.tags)
    except Exception as e:  # noqa: BLE001 - a run from another store: explain it without its tags
        logger.warning("explained run %s is not in %s (%s): its tags are not copied", run_id, client.tracking_uri, e)
        return {}


@contextmanager
def explain_run(trained: TrainedRun, analysis: str, run_name: str, split: str, split_hash: str,
                tracking_uri: str | None = None, params: Mapping[str, Any] | None = None) -> Iterator[TrackedRun]:
    """Open the explain run (ended FINISHED, FAILED or KILLED by :func:`~medattn_monai.tracking.tracked_run`).

    The store is ``tracking_uri``, else the explained run's, else the default; the experiment is the explained
    run's (``isic``, ``isic-demo``, …).
    """
    uri = resolve_tracking_uri(tracking_uri or trained.info.get("tracking_uri"))
    tags = explain_tags(trained, analysis, split, split_hash, _explained_tags(open_client(uri), trained.run_id))
    experiment = trained.info.get("experiment_name") or "explain"
    with tracked_run(experiment, run_name, tags, uri, params) as run:
        yield run


def log_metrics(run: TrackedRun, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log ``metrics`` into the explain run (in batches)."""
    mlflow_runs.log_metrics(run.client, run.run_id, metrics, step)


def log_folder(run: TrackedRun, folder: Path) -> None:
    """Upload every file under ``folder`` as the run's artifacts (sub-folders kept)."""
    run.client.log_artifacts(run.run_id, str(folder))
