"""Multi-process training (the bundle's multi_gpu_train.json under torchrun, gloo on CPU) through the study's
launcher: ranks split the data, only rank 0 records, and the distributed validation equals a single-process
evaluation of the same weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest

from conftest import train_overrides
from medattn_monai.engine.launch import run_training
from medattn_monai.search import search
from medattn_monai.tracking import read_run_info

pytestmark = pytest.mark.slow  # both tests train (under two processes)

TESTS = Path(__file__).resolve().parent


def test_two_gloo_processes_split_the_data_and_agree_with_one(demo_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = train_overrides(demo_data, tmp_path, epochs=1, batch_size=16, val_batch_size=16)
    probe = {"_target_": "ddp_probe.IndexRecorder", "out_dir": str(tmp_path / "seen"),
             "evaluator": "@validate#evaluator"}
    run_dir = run_training("isic_attention_classification", overrides, gpus=2, extra_handlers=[probe])

    seen = [json.loads((tmp_path / "seen" / f"rank{r}.json").read_text()) for r in (0, 1)]
    datalist = json.loads(Path(demo_data.datalist).read_text())
    n_val, n_train = len(datalist["validation"]), len(datalist["training"])
    val = [set(s["val"]["1"]) for s in seen]
    assert not val[0] & val[1], "validation samples are split between ranks, never shared"
    assert val[0] | val[1] == set(range(n_val)), "every validation sample is evaluated exactly once"
    assert sum(len(s["val"]["1"]) for s in seen) == n_val
    train = [set(s["train"]["1"]) for s in seen]
    # the sampler pads the shuffled list to a multiple of the world size by repeating its first indexes
    assert len(train[0] & train[1]) <= (2 - n_train % 2) % 2, "training batches of the two ranks overlap"
    assert len(train[0]) > 0 and len(train[1]) > 0

    client = mlflow.MlflowClient(overrides["tracking_uri"])
    experiment = client.get_experiment_by_name("isic-demo")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "only rank 0 opens an MLflow run"
    run_id = read_run_info(run_dir)["run_id"]
    assert runs[0].info.run_id == run_id and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(run_id, "val_bacc")
    assert [m.step for m in history] == [1], "one validation value per epoch: rank 1 logs nothing"

    # the same weights (model.pt is epoch 1's) evaluated by one process on the validation split
    from medattn_monai.engine import evaluate

    evaluate(run_dir, splits=["validation"], progress=False)
    single = client.get_run(run_id).data.metrics["validation_bacc"]
    assert history[0].value == pytest.approx(single, abs=1e-12)


def test_a_search_prunes_a_two_process_trial_on_every_rank(demo_data, tmp_path, monkeypatch):
    """Rank 0 asks Optuna and tells rank 1: both stop after epoch 1 (a rank left alone would hang DDP)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = train_overrides(demo_data, tmp_path, batch_size=16, val_batch_size=64)
    del overrides["epochs"]
    space = {"learning_rate": {"low": 1e-3, "high": 10.0, "log": True}, "epochs": {"choices": [1, 2]}}
    # trial 0 learns for 1 epoch; trial 1 (hopeless) would run 2 but is below trial 0 after its first
    enqueue = [{"learning_rate": 0.002, "epochs": 1}, {"learning_rate": 10.0, "epochs": 2}]
    result = search(n_trials=2, space=space, storage=str(tmp_path / "optuna.journal"), n_startup_trials=1,
                    n_warmup_steps=0, enqueue=enqueue, gpus_per_run=2, quiet=True, **overrides)
    assert result.counts == {"COMPLETE": 1, "PRUNED": 1}
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    trials = client.search_runs([client.get_experiment_by_name("isic-demo").experiment_id],
                                filter_string="tags.run_type = 'trial'")
    (pruned,) = [r for r in trials if r.data.tags.get("pruned") == "true"]
    assert pruned.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(pruned.info.run_id, "val_bacc")] == [1]
