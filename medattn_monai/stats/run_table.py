"""The runs a comparison reads: FINISHED ``run_type=train`` runs of one experiment with one metric, as a data frame.

:func:`runs_frame` is the pure part (records in, frames out), :func:`load_runs` fetches the records from MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError
from ..tracking.reachability import check_tracking_server
from ..tracking.store import resolve_tracking_uri
from .variants import variant_of

__all__ = ["RUN_COLUMNS", "SKIPPED_COLUMNS", "CONFIG_TAGS", "runs_frame", "load_runs"]

RUN_COLUMNS = ["run_id", "run_name", "dataset", "family", "variant", "cell", "seed", "value"]
# tags, besides the params, that say how a run was trained (the cell hash covers the split too)
CONFIG_TAGS = ("split_hash",)
SKIPPED_COLUMNS = ["run_id", "run_name", "reason"]


def _seed(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _skip_reason(record: Mapping[str, Any], metric: str) -> str | None:
    tags = record.get("tags") or {}
    status = record.get("status", "FINISHED")
    if status != "FINISHED":
        return f"status {status}"
    for key in ("dataset", "family"):
        if not (tags.get(key) or "").strip():
            return f"missing tag {key}"
    try:
        variant_of(tags)
    except ValueError as e:
        return str(e)
    value = (record.get("metrics") or {}).get(metric)
    if value is None:
        return f"no metric {metric}"
    if not math.isfinite(float(value)):
        return f"metric {metric} is {value}"
    return None


def runs_frame(records: Iterable[Mapping[str, Any]], metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split run records into the comparison's inputs and the runs skipped, with the reason.

    Args:
        records: one mapping per run with ``run_id``, ``run_name``, ``status``, ``tags``, ``metrics`` (name ->
            last value) and optionally ``params`` (name -> text). Runs whose ``run_type`` tag is not ``train`` are
            ignored: they are not inputs.
        metric: the metric compared, e.g. ``test_bacc``.

    Returns:
        ``(runs, skipped)``: ``runs`` has columns :data:`RUN_COLUMNS` (``cell`` is the tag, empty when absent;
        ``seed`` a nullable integer, missing when the tag is absent or not an integer; ``value`` the metric), then
        one ``params.<name>`` column per param and ``tags.<name>`` per :data:`CONFIG_TAGS` tag that any run has
        (missing where a run lacks it); ``skipped`` has :data:`SKIPPED_COLUMNS`.
    """
    rows, skipped = [], []
    for record in records:
        tags = record.get("tags") or {}
        if tags.get("run_type") != "train":
            continue
        ident = {"run_id": record.get("run_id"), "run_name": record.get("run_name") or ""}
        reason = _skip_reason(record, metric)
        if reason is not None:
            skipped.append({**ident, "reason": reason})
            continue
        rows.append({
            **ident,
            "dataset": tags["dataset"].strip(),
            "family": tags["family"].strip(),
            "variant": variant_of(tags),
            "cell": (tags.get("cell") or "").strip(),
            "seed": _seed(tags.get("seed")),
            "value": float(record["metrics"][metric]),
            **{f"params.{k}": v for k, v in (record.get("params") or {}).items()},
            **{f"tags.{k}": tags[k] for k in CONFIG_TAGS if k in tags},
        })
    config = sorted({c for row in rows for c in row if c.startswith("params.")})
    config += [f"tags.{k}" for k in CONFIG_TAGS if any(f"tags.{k}" in row for row in rows)]
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS + config)
    runs["seed"] = runs["seed"].astype("Int64")
    runs["value"] = runs["value"].astype(float)
    return runs, pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)


def _client(tracking_uri: str | None) -> tuple[Any, str]:
    """A client (an ``MlflowClient``, imported lazily) for an existing store and its URI: reading must not create
    an empty database at a mistyped path."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.is_file():
            raise ConfigError(f"no MLflow database at {db} (tracking URI {uri})")
    check_tracking_server(uri)
    return MlflowClient(tracking_uri=uri), uri


def load_runs(experiment: str, metric: str, tracking_uri: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``run_type=train`` runs of ``experiment``, split by :func:`runs_frame` into inputs and skipped runs.

    Raises:
        ConfigError: the store cannot be read or has no such experiment.
        DataError: no run can be compared (the message counts the skipped runs by reason).
    """
    from mlflow.exceptions import MlflowException

    try:
        client, uri = _client(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage != "active":
            names = sorted(e.name for e in client.search_experiments())
            raise ConfigError(f"no experiment {experiment!r} in {uri}; experiments there: {', '.join(names) or 'none'}")
        records, token = [], None
        while True:
            page = client.search_runs(
                [found.experiment_id], filter_string="tags.run_type = 'train'", max_results=1000, page_token=token
            )
            records += [
                {
                    "run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                    "tags": dict(r.data.tags), "metrics": dict(r.data.metrics), "params": dict(r.data.params),
                }
                for r in page
            ]
            token = page.token
            if not token:
                break
    except MlflowException as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot read MLflow store {tracking_uri or '(default)'}: {first_line}") from e
    runs, skipped = runs_frame(records, metric)
    if runs.empty:
        reasons = skipped["reason"].value_counts()
        detail = "; ".join(f"{n} × {reason}" for reason, n in reasons.items()) or "no run_type=train runs at all"
        raise DataError(
            f"experiment {experiment!r} has no FINISHED run_type=train run with metric {metric!r} ({detail})"
        )
    return runs, skipped
