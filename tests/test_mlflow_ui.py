"""What a user sees in the MLflow UI: the experiment's kind and comparison view (tags), and the runs table itself,
rendered by a real browser (headless Chromium) from ``mlflow ui`` over a store with a plain, a size-matched and a ViT
run. Without Chromium the browser test is skipped with the reason; under ``CI=true`` it fails (``.ci/run`` installs
Debian's ``chromium``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import mlflow
import pytest

from conftest import fresh_store
from medattn_monai.tracking.mlflow_runs import (
    create_run,
    end_run,
    get_or_create_experiment,
    log_metrics,
    log_params_once,
)
from medattn_monai.tracking.naming import make_run_name
from medattn_monai.tracking.tags import logged_params
from medattn_monai.tracking.tracked_run import tracked_run
from medattn_monai.tracking.ui import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    VIEW_COLUMNS,
    VIEW_NAME,
    VIEW_TAG,
    comparison_url,
)

EXPERIMENT = "isic-demo"
# MLflow's server without its background job runner and telemetry: it starts faster and reaches nothing outside
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
SERVER_START_S = 300  # the test machine's cores are shared: MLflow's server took 30-60 s to answer there


# --- the experiment's tags (no browser) -------------------------------------------------------------------------
def test_a_new_experiment_is_model_training_with_the_comparison_view(demo_data, tmp_path):
    client = mlflow.MlflowClient(fresh_store(demo_data, tmp_path))
    tags = client.get_experiment(get_or_create_experiment(client, "isic")).tags
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    view = json.loads(tags[VIEW_TAG])
    assert view["name"] == VIEW_NAME and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["selectedColumns"] == state["columnOrder"][1:] == list(VIEW_COLUMNS)
    assert state["searchFilter"] == "tags.run_type = 'train'"


def test_an_existing_experiment_gets_the_missing_tags_and_keeps_what_was_set(demo_data, tmp_path):
    client = mlflow.MlflowClient(fresh_store(demo_data, tmp_path))
    bare = client.create_experiment("bare")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development", VIEW_TAG: "{}"})
    for name in ("bare", "chosen"):
        create_run(client, name, make_run_name("resnet18", "none", 0, None), {"run_type": "train"})
    assert client.get_experiment(bare).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert json.loads(client.get_experiment(bare).tags[VIEW_TAG])["name"] == VIEW_NAME
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"
    assert client.get_experiment(chosen).tags[VIEW_TAG] == "{}"


def test_a_refused_tag_costs_a_warning_not_the_run(demo_data, tmp_path, monkeypatch, caplog):
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(fresh_store(demo_data, tmp_path))
    client.create_experiment("shared")

    def refuse(*args, **kwargs):
        raise MlflowException("permission denied")

    monkeypatch.setattr(client, "set_experiment_tag", refuse)
    with caplog.at_level(logging.WARNING):
        run_id = create_run(client, "shared", make_run_name("resnet18", "ga", 0, None), {"run_type": "train"})
    assert client.get_run(run_id).info.status == "RUNNING"
    assert "permission denied" in caplog.text and EXPERIMENT_KIND_TAG in caplog.text


# --- the UI in a browser ------------------------------------------------------------------------------------------
def chromium() -> str:
    """Chromium's executable; without one the test is skipped, or fails under ``CI=true`` (CI installs it)."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        reason = "Chromium is not installed (Debian: apt-get install -y chromium): the MLflow UI is tested in a browser"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _log_run(client, config: dict, tags: dict, metrics: dict, seed: int = 0) -> tuple[str, str]:
    """A finished training run as the bundle's tracker records one (name, tags, params, metrics), without training."""
    name = make_run_name(config["backbone"], config["attention"], seed, config["baseline"], config["matched_to"],
                         config["family"])
    tags = {"dataset": "isic", "seed": seed, "run_type": "train", **tags}
    run_id = create_run(client, EXPERIMENT, name, tags)
    log_params_once(client, run_id, logged_params({**config, "seed": seed}, tags), new_run=True)
    log_metrics(client, run_id, metrics)
    end_run(client, run_id, "FINISHED")
    return run_id, name


@pytest.fixture(scope="session")
def browser() -> str:
    """:func:`chromium`, looked up before the trained run and the server are paid for (session scope: set up first)."""
    return chromium()


@pytest.fixture(scope="module")
def ui_store(browser, trained_run, tmp_path_factory) -> dict:
    """A copy of the trained run's store plus a size-matched and a ViT run and a comparison (not a training)."""
    db = tmp_path_factory.mktemp("ui_store") / "mlflow.db"
    shutil.copy(trained_run.tracking_uri[len("sqlite:///"):], db)
    uri = f"sqlite:///{db}"
    client = mlflow.MlflowClient(uri)
    common = {"attention": "none", "family": None, "stages": [3, 4]}
    matched = _log_run(client, {**common, "backbone": "resnet18", "baseline": "size_matched", "matched_to": "ga"},
                       {"backbone": "resnet18", "attention": "none", "baseline": "size_matched", "matched_to": "ga",
                        "family": "resnet18"}, {"best_val_bacc": 0.375, "test_bacc": 0.3125, "test_auc": 0.625})
    vit = _log_run(client, {**common, "backbone": "vit", "baseline": None, "matched_to": None},
                   {"backbone": "vit", "attention": "none", "baseline": "vit", "family": "resnet18"},
                   {"best_val_bacc": 0.25, "test_bacc": 0.1875, "test_auc": 0.5}, seed=1)
    with tracked_run(EXPERIMENT, "comparison-test_bacc-x", {"run_type": "comparison"}, uri) as comparison:
        pass
    return {"uri": uri, "client": client, "trained": trained_run.info["run_id"], "matched": matched[0],
            "vit": vit[0], "comparison": comparison.run_id}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui_server(ui_store, tmp_path_factory):
    """``mlflow ui`` on 127.0.0.1 over :func:`ui_store`, started once for the module; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("ui_server") / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", ui_store["uri"], "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **SERVER_ENV},
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow ui did not answer on {base}: {log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # its own session: the server and the worker it started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def render(browser: str, url: str, out: Path, *extra: str) -> str:
    """The page as headless Chromium renders it (a single-page app: it gets 15 s of virtual time to load)."""
    profile = out / f"profile-{time.monotonic_ns()}"
    profile.mkdir(parents=True)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class RunsTable(HTMLParser):
    """The cells of the runs table (``(run id, column id) -> text``) and its column headers (``column id -> text``).

    MLflow's table (AG Grid) gives each row its run's id (``row-id``) and each cell and header its column's id
    (``col-id``, e.g. ``tags.`backbone```); the pinned run-name column is a separate block with the same row ids.
    """

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                      "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.cells: dict[tuple[str, str], str] = {}
        self.headers: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        where = dict(self.stack[-1][1]) if self.stack else {}
        if "row-id" in a:
            where["row"] = a["row-id"]
        if "col-id" in a and a.get("role") in ("gridcell", "columnheader"):
            where[a["role"]] = a["col-id"]
        if tag not in self.VOID:
            self.stack.append((tag, where))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        where = self.stack[-1][1] if self.stack else {}
        if not data.strip():
            return
        if "row" in where and "gridcell" in where:
            key = (where["row"], where["gridcell"])
            self.cells[key] = self.cells.get(key, "") + data.strip()
        elif "columnheader" in where:
            self.headers[where["columnheader"]] = self.headers.get(where["columnheader"], "") + data.strip()


def test_the_runs_table_shows_the_comparison(browser, ui_store, ui_server, tmp_path):
    client = ui_store["client"]
    experiment = client.get_experiment_by_name(EXPERIMENT)  # made by the trained run's tracker
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING and VIEW_TAG in experiment.tags
    # wide enough that the table draws every column (it draws only the visible ones)
    html = render(browser, comparison_url(experiment.experiment_id, ui_server), tmp_path, "--window-size=3200,1200",
                  "--dump-dom")
    table = RunsTable(html)
    shown = f"headers {table.headers}, rows {sorted({row for row, _ in table.cells})}"
    assert table.headers.get("attributes.`Run Name`") == "Run Name", shown
    for column in VIEW_COLUMNS:
        assert table.headers.get(column) == column.split("`")[1], shown
    for key in ("trained", "matched", "vit"):
        run = client.get_run(ui_store[key])
        assert table.cells[(run.info.run_id, "attributes.`Run Name`")].endswith(run.info.run_name), shown
        for column in VIEW_COLUMNS:
            kind, name = column.split(".", 1)[0], column.split("`")[1]
            text = table.cells.get((run.info.run_id, column))
            if kind == "tags":
                assert text == run.data.tags.get(name, "-"), (key, column, text)
            else:
                assert float(text) == pytest.approx(run.data.metrics[name], abs=5e-4), (key, column, text)
    assert not any(row == ui_store["comparison"] for row, _ in table.cells), "the view shows training runs only"
    assert VIEW_NAME in html, "the Views menu names the open view"
    names = {client.get_run(ui_store[k]).info.run_name.rsplit("-", 3)[0] for k in ("matched", "vit")}
    assert names == {"resnet18-matched-ga-s0", "vit-resnet18-s1"}
