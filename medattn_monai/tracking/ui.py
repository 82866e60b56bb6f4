"""What the MLflow UI shows of an experiment: its kind and the saved view of the study's comparison.

Both are experiment tags, set when the project creates an experiment and added to an existing one that lacks them
when a run is logged into it (never overwriting a value someone set):

- ``mlflow.experimentKind = custom_model_development``: MLflow's experiment kind for model training (the UI's
  "Machine learning"; the other kinds are ``genai_development`` and the inferred ones). MLflow 3.17's UI takes the
  kind from its sidebar switch "GenAI | Model training" instead (the ``workflowType`` URL parameter, else the
  browser's last choice, else GenAI), so :func:`comparison_url` names the workflow in the URL as well.
- ``mlflow.sharedViewState.<id>``: a saved view of the runs table (MLflow 3.17 lists them under "Views" and
  opens one with ``?viewStateShareKey=<id>``). Its value is ``{"name", "createdAt", "updatedAt", "state"}``, the
  state being the JSON of the table's search facets (filter, sort) and UI state (columns, their order). MLflow
  has no default view for the runs table; the browser remembers the last layout per experiment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .store import mlflow_ui_command, resolve_tracking_uri

__all__ = ["EXPERIMENT_KIND_TAG", "MODEL_TRAINING", "VIEW_ID", "VIEW_NAME", "VIEW_TAG", "VIEW_COLUMNS",
           "comparison_view", "experiment_ui_tags", "add_missing_ui_tags", "comparison_url", "run_url", "ui_address",
           "where_to_watch"]

logger = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
VIEW_ID = "medattn-comparison"
VIEW_NAME = "medattn comparison"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
# the design's tags of a training run, then the metrics a comparison reads (the run name is always shown first)
VIEW_TAGS = ("backbone", "attention", "baseline", "matched_to", "seed")
VIEW_METRICS = ("best_val_bacc", "test_bacc", "test_auc")
VIEW_COLUMNS = tuple(f"tags.`{k}`" for k in VIEW_TAGS) + tuple(f"metrics.`{k}`" for k in VIEW_METRICS)
RUN_NAME_COLUMN = "attributes.`Run Name`"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def comparison_view(now_ms: int | None = None) -> str:
    """The value of :data:`VIEW_TAG`: training runs only, sorted by run name (a network's seeds side by side), with
    :data:`VIEW_COLUMNS` in that order after the run name (column ids as the UI's table names them)."""
    state = {
        "searchFilter": "tags.run_type = 'train'",
        "orderByKey": "tags.`mlflow.runName`",
        "orderByAsc": True,
        "selectedColumns": list(VIEW_COLUMNS),
        # the run name (always shown) first and wide enough for resnet18-matched-ga-s0-<time>-<hex>
        "columnOrder": [RUN_NAME_COLUMN, *VIEW_COLUMNS],
        "columnWidths": {RUN_NAME_COLUMN: 330},
    }
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    return json.dumps({"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": json.dumps(state)})


def experiment_ui_tags() -> dict[str, str]:
    """The tags a new experiment is created with: the model-training kind and the comparison view."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING, VIEW_TAG: comparison_view()}


def add_missing_ui_tags(client: Any, experiment_id: str, tags: Mapping[str, str]) -> None:
    """Give an existing experiment (whose tags are ``tags``) the UI tags it lacks; a value already there stays.

    A store that refuses (e.g. a server where this user may log runs but not edit the experiment) costs a warning:
    the runs are what matters.
    """
    for key, value in experiment_ui_tags().items():
        if key in tags:
            continue
        try:
            client.set_experiment_tag(experiment_id, key, value)
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for a refused write
            logger.warning("could not set the MLflow UI tag %s on experiment %s: %s", key, experiment_id, e)


def comparison_url(experiment_id: str, ui: str = LOCAL_UI) -> str:
    """The address of the experiment's runs table in the comparison view, in the UI's model-training mode."""
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_ID})
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, ui: str = LOCAL_UI) -> str:
    """The address of one run's page in the UI."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def ui_address(tracking_uri: str | None = None) -> str | None:
    """The UI of a tracking server (its address without user or password); None for a local store, whose UI is
    started with :func:`~medattn_monai.tracking.store.mlflow_ui_command`."""
    uri = resolve_tracking_uri(tracking_uri)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def where_to_watch(tracking_uri: str | None, experiment_id: str, run_id: str | None = None) -> str:
    """One line saying where a run (or, without ``run_id``, the experiment's comparison view) is seen in the UI."""
    server = ui_address(tracking_uri)
    url = (run_url(experiment_id, run_id, server or LOCAL_UI) if run_id
           else comparison_url(experiment_id, server or LOCAL_UI))
    if server:
        return f"MLflow UI: {url}"
    return f"MLflow UI: start it with `{mlflow_ui_command(tracking_uri)}`, then open {url}"
