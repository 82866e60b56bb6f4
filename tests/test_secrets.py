"""A password in a tracking URI or an Optuna storage URL is used to connect and appears nowhere else: not in what
train, search, study or export-bundle print, log or write (run folders, run.json, summaries, study_config.yaml),
nor in MLflow params, tags or artifacts, nor in the Optuna storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
import yaml

from leaks import in_files, in_mlflow, in_optuna, in_texts
from medattn_monai.cli import main
from medattn_monai.tracking import store
from medattn_monai.tracking.store import mask_secrets
from team_setup import free_port

PASSWORD = "Pw-7f2a-NotForLogs"


@pytest.mark.parametrize("text, shown", [
    (f"http://alice:{PASSWORD}@host:5000", "http://alice:***@host:5000"),
    (f"error: cannot open postgresql+psycopg://u:p@{PASSWORD}@db:5432/x: refused", "postgresql+psycopg://u:***@db"),
    (f"mysql://u@db/x?password={PASSWORD}&ssl=1", "mysql://u@db/x?password=***&ssl=1"),
    ("sqlite:////tmp/mlflow.db and http://host:5000/path", "sqlite:////tmp/mlflow.db and http://host:5000/path"),
])
def test_mask_secrets_hides_the_password_of_every_uri(text, shown):
    masked = mask_secrets(text)
    assert PASSWORD not in masked and "@" + PASSWORD not in masked and shown in masked


def _bundle_args(demo_data, work: Path) -> list[str]:
    return ["--dataset_dir", str(demo_data.dataset_dir), "--datalist", str(demo_data.datalist), "--epochs", "1",
            "--image_size", "32", "--batch_size", "32", "--val_batch_size", "256", "--progress", "False",
            "--output_root", str(work / "runs")]


def _study_config(demo_data, work: Path, storage: str, tracking_uri: str, **changes) -> Path:
    config = {
        "name": "secrets", "backbones": ["resnet18"], "variants": ["none"], "baselines": [], "seeds": [0],
        "datasets": [{"dataset_dir": str(demo_data.dataset_dir), "datalist": str(demo_data.datalist),
                      "experiment_name": "secrets-study"}],
        "overrides": {"epochs": 1, "image_size": 32, "batch_size": 32, "val_batch_size": 256},
        "search": {"n_trials": 2}, "storage": storage, "tracking_uri": tracking_uri,
        "output_root": str(work / "runs"), "out": str(work / "out"), "compare": False,
        "explain": {"n_images": 8, "n_figures": 1}, **changes,
    }
    path = work.parent / "input" / "study.yaml"  # the user's own file, with the password: not scanned
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_error_lines_name_the_store_without_its_password(demo_data, tmp_path, monkeypatch, capfd, one_thread):
    """Unreachable stores (closed ports): train, search and study stop with the URL masked, nothing trained."""
    tmp_path = tmp_path / "work"  # everything the commands write
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDATTN_TRACKING_TIMEOUT", "2")  # how long a command waits for the tracking server
    closed = free_port()
    tracking = f"http://alice:{PASSWORD}@127.0.0.1:{closed}"
    storage = f"postgresql://team:{PASSWORD}@127.0.0.1:{closed}/optuna"
    local_store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    codes = {"train": main(["train", "--tracking_uri", tracking, *_bundle_args(demo_data, tmp_path)])}
    codes["search"] = main(["search", "--storage", storage, "--storage_timeout", "2", "--n_trials", "1",
                            "--tracking_uri", local_store, *_bundle_args(demo_data, tmp_path)])
    codes["study"] = main(["study", "--config", str(_study_config(demo_data, tmp_path, storage, tracking)),
                           "--storage_timeout", "2"])
    out, err = capfd.readouterr()

    assert codes["train"] != 0 and codes["search"] == 2 and codes["study"] == 2, (codes, err[-3000:])
    assert f"cannot reach the Optuna storage postgresql://team:***@127.0.0.1:{closed}/optuna" in err
    assert f"cannot reach the MLflow tracking server http://alice:***@127.0.0.1:{closed} within 2 s" in err
    assert "Optuna storage postgresql://team:***@" in out, "the study's start-up line names the storage, masked"
    assert not in_texts(PASSWORD, {"stdout": out, "stderr": err})
    assert not in_files(PASSWORD, [tmp_path])
    assert not list((tmp_path / "runs").glob("*/*/model.pt")), "nothing trained"


@pytest.mark.slow
def test_a_known_password_appears_nowhere(demo_data, tmp_path, team_servers, monkeypatch, capfd, one_thread):
    tmp_path = tmp_path / "work"  # everything the commands write
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking = team_servers.tracking_url(f"alice:{PASSWORD}")
    storage = team_servers.new_database(f"secrets_{os.getpid()}_{free_port()}", PASSWORD)
    assert PASSWORD in tracking and PASSWORD in storage
    args = [*_bundle_args(demo_data, tmp_path), "--tracking_uri", tracking, "--experiment_name", "secrets-train"]

    assert main(["train", *args]) == 0
    run_json = json.loads(next((tmp_path / "runs" / "secrets-train").glob("*/run.json")).read_text())
    assert run_json["tracking_uri"] == mask_secrets(tracking) and "alice:***@" in run_json["tracking_uri"]
    run_dir = str(next((tmp_path / "runs" / "secrets-train").glob("*/run.json")).parent)
    assert main(["evaluate", run_dir, "--tracking_uri", tracking]) == 0
    monkeypatch.setattr(store, "_REAL", {})  # as in a new process: only the command line may hold the password
    assert main(["resume", run_dir]) == 2, "run.json's store has no password: resume says what to pass"
    assert main(["search", *args, "--n_trials", "1", "--storage", storage, "--experiment_name", "secrets-search",
                 "--heartbeat_interval", "1", "--grace_period", "5"]) == 0
    study_config = _study_config(demo_data, tmp_path, storage, tracking, search={"n_trials": 1})
    assert main(["study", "--config", str(study_config)]) == 0
    assert main(["export-bundle", "--run-id", run_json["run_id"], "--tracking-uri", tracking,
                 "--out", str(tmp_path / "exported")]) == 0
    out, err = capfd.readouterr()

    assert "pass it with the password (--tracking_uri" in err
    leaks = in_texts(PASSWORD, {"stdout": out, "stderr": err}) + in_files(PASSWORD, [tmp_path])
    leaks += in_mlflow(PASSWORD, tracking)
    import optuna

    leaks += in_optuna(PASSWORD, optuna.storages.RDBStorage(storage))
    assert not leaks
    assert in_files("alice:***@", [tmp_path]) and in_mlflow("alice:***@", tracking), \
        "the scan reads what was written (run.json, local and uploaded, records the store masked)"
    client = mlflow.MlflowClient(tracking)
    parents = client.search_runs([client.get_experiment_by_name("secrets-search").experiment_id],
                                 filter_string="tags.run_type = 'search'")
    assert parents[0].data.tags["optuna_storage"] == mask_secrets(storage)
