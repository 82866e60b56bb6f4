"""The training run as MLflow records it: tags, params, per-epoch metrics, evaluation metrics, artifacts, status."""

from __future__ import annotations

import mlflow
import pytest
import torch

from conftest import train_overrides
from medattn_monai.data import load_datalist
from medattn_monai.networks import build_network, count_parameters


@pytest.fixture(scope="module")
def client(trained_run):
    return mlflow.MlflowClient(trained_run.tracking_uri)


def test_tags_equal_the_config(trained_run, demo_data, monkeypatch):
    # through the environment, which monkeypatch restores: mlflow.set_tracking_uri would also set
    # MLFLOW_TRACKING_URI, and restoring the default would leave it pointing later runs at ./mlflow.db
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_run.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["isic-demo"],
                              filter_string=f"attributes.run_id = '{trained_run.info['run_id']}'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    expected = {"dataset": "isic", "backbone": "resnet18", "attention": "none", "baseline": "plain",
                "family": "resnet18", "seed": "0", "run_type": "train",
                "split_hash": load_datalist(demo_data.datalist)["split_hash"]}
    for key, value in expected.items():
        assert run[f"tags.{key}"] == value, key
    net = build_network(**trained_run.info["network_args"])
    assert int(run["tags.params_count"]) == count_parameters(net)
    assert len(run["tags.cell"]) == 12 and run["tags.git_commit"]
    assert run["tags.mlflow.runName"] == trained_run.info["run_name"]


def test_every_hyper_parameter_is_a_param(trained_run, client):
    params = client.get_run(trained_run.info["run_id"]).data.params
    for key, value in trained_run.info["params"].items():
        assert key in params, key
    assert params["epochs"] == "3" and params["image_size"] == "32" and params["learning_rate"] == "0.002"


def test_one_val_bacc_per_epoch_and_best_is_their_max(trained_run, client):
    run_id = trained_run.info["run_id"]
    history = client.get_metric_history(run_id, "val_bacc")
    assert sorted(m.step for m in history) == [1, 2, 3]
    losses = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in losses) == [1, 2, 3]
    metrics = client.get_run(run_id).data.metrics
    assert metrics["best_val_bacc"] == pytest.approx(max(m.value for m in history))
    best_epoch = int(metrics["best_epoch"])
    assert [m.value for m in history if m.step == best_epoch][0] == pytest.approx(metrics["best_val_bacc"])


def test_evaluation_is_logged_into_the_training_run(trained_run, client):
    metrics = client.get_run(trained_run.info["run_id"]).data.metrics
    assert 0 <= metrics["test_bacc"] <= 1 and 0 <= metrics["test_auc"] <= 1
    recalls = [k for k in metrics if k.startswith("test_recall_")]
    assert set(recalls) <= {f"test_recall_{c}" for c in trained_run.info["classes"]} and len(recalls) >= 6


def test_artifacts_hold_config_checkpoints_and_predictions(trained_run, client):
    run_id = trained_run.info["run_id"]
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.pt", "checkpoint_last.pt", "run.json"} <= top
    assert {"eval/predictions_test.csv", "eval/confusion_test.csv"} <= {a.path for a in client.list_artifacts(run_id, "eval")}
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model.pt",
                                                tracking_uri=trained_run.tracking_uri)
    state = torch.load(local, weights_only=True)
    assert torch.equal(state["fc.weight"], torch.load(trained_run.run_dir / "model.pt", weights_only=True)["fc.weight"])


def test_checkpoints_are_plain_state_dicts(trained_run):
    last = torch.load(trained_run.run_dir / "checkpoint_last.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "lr_scheduler", "trainer", "run"}
    assert last["trainer"]["iteration"] == 3 * last["trainer"]["epoch_length"]
    assert sorted(last["run"]["history"]) == [1, 2, 3]


def test_monai_tracking_option_logs_nothing_twice(demo_data, tmp_path):
    from medattn_monai.engine import train

    overrides = train_overrides(demo_data, tmp_path, epochs=1)
    run_dir = train(tracking="mlflow", **overrides)
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1, "MONAI's handler must not open a second run"
    run = runs[0]
    assert run.info.status == "FINISHED" and run_dir.endswith(run.info.run_name)
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} logged twice: {steps}"
