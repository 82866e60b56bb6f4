"""The training run as MLflow records it: tags, params, per-epoch metrics, evaluation metrics, artifacts, status."""

from __future__ import annotations

import mlflow
import pytest
import torch

from conftest import train_overrides
from medattn_monai.data import load_datalist
from medattn_monai.networks import build_network, count_parameters
from medattn_monai.tracking.naming import make_run_name, run_name_for
from medattn_monai.tracking.tags import NETWORK_KEYS, logged_params


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
    for key in trained_run.info["params"]:
        assert key in params, key
    assert params["epochs"] == "3" and params["image_size"] == "32" and params["learning_rate"] == "0.002"


def test_the_networks_params_agree_with_its_tags(trained_run, client):
    run = client.get_run(trained_run.info["run_id"])
    for key in NETWORK_KEYS:
        assert run.data.params[key] == run.data.tags.get(key, "None"), key
    assert run.data.params["baseline"] == "plain" and run.data.params["family"] == "resnet18"
    # run.json keeps the config's own values: resume compares them with the config
    assert trained_run.info["params"]["baseline"] is None and trained_run.info["params"]["stages"] == [3, 4]


def test_logged_params_take_the_values_the_tags_carry():
    config = {"backbone": "vit", "attention": "none", "baseline": None, "matched_to": None, "family": None,
              "stages": [3, 4], "epochs": 2}
    tags = {"backbone": "vit", "attention": "none", "baseline": "vit", "family": "resnet18", "run_type": "train"}
    assert logged_params(config, tags) == {**config, "baseline": "vit", "family": "resnet18", "stages": None}
    assert logged_params(config, {"run_type": "train"}) == config, "tags without a network change nothing"


@pytest.mark.parametrize("network, prefix", [
    (("resnet18", "none", None, None, None), "resnet18-plain-s3"),
    (("resnet18", "none", "plain", None, None), "resnet18-plain-s3"),
    (("resnet18", "none", "size_matched", "ga", None), "resnet18-matched-ga-s3"),
    (("vit", "none", None, None, None), "vit-resnet18-s3"),
    (("vit", "none", None, None, "densenet121"), "vit-densenet121-s3"),
    (("densenet121", "la", None, None, None), "densenet121-la-s3"),
])
def test_run_names_tell_a_size_matched_cnn_and_a_vit_from_the_plain_cnn(network, prefix):
    backbone, attention, baseline, matched_to, family = network
    args = {"backbone": backbone, "attention": attention, "baseline": baseline, "matched_to": matched_to,
            "family": family, "num_classes": 8}
    assert run_name_for(None, args, 3).rsplit("-", 3)[0] == prefix
    assert make_run_name(backbone, attention, 3, baseline, matched_to, family).rsplit("-", 3)[0] == prefix


def test_a_given_run_name_is_kept():
    assert run_name_for(None, {"backbone": "resnet18", "attention": "none"}, 0, "given-name") == "given-name"


def test_a_planned_training_is_named_after_its_network(demo_data, tmp_path):
    from medattn_monai.engine.launch import plan_run

    base = {"dataset_dir": str(demo_data.dataset_dir), "datalist": str(demo_data.datalist),
            "output_root": str(tmp_path)}
    cases = [({}, "resnet18-plain-s0"), ({"baseline": "size_matched", "matched_to": "ga"}, "resnet18-matched-ga-s0"),
             ({"backbone": "vit"}, "vit-resnet18-s0")]
    for extra, prefix in cases:
        overrides, run_dir = plan_run("isic_attention_classification", {**base, **extra})
        assert overrides["run_name"].rsplit("-", 3)[0] == prefix and run_dir.endswith(overrides["run_name"])


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
    evaluated = {a.path for a in client.list_artifacts(run_id, "eval")}
    assert {"eval/predictions_test.csv", "eval/confusion_test.csv"} <= evaluated
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model.pt",
                                                tracking_uri=trained_run.tracking_uri)
    state = torch.load(local, weights_only=True)
    assert torch.equal(state["fc.weight"], torch.load(trained_run.run_dir / "model.pt", weights_only=True)["fc.weight"])


def test_checkpoints_are_plain_state_dicts(trained_run):
    last = torch.load(trained_run.run_dir / "checkpoint_last.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "lr_scheduler", "trainer", "run"}
    assert last["trainer"]["iteration"] == 3 * last["trainer"]["epoch_length"]
    assert sorted(last["run"]["history"]) == [1, 2, 3]


@pytest.mark.slow
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
