"""A search's Optuna trials and MLflow runs agree whatever stopped a worker: a trial whose run FINISHED keeps its
value, any other dead worker's trial is failed with its budget returned and its run marked FAILED, never RUNNING."""

from __future__ import annotations

import subprocess
import sys
import time

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from conftest import fresh_store, sigkill_when, train_overrides
from medattn_monai.search import open_storage, search
from medattn_monai.search.liveness import OWNER
from medattn_monai.search.reconcile import TrialRecords, reconcile_trials, tell_outcome
from medattn_monai.tracking.mlflow_runs import get_or_create_experiment

LR = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
STUDY = "reconcile-test"


def _dead_owner() -> dict:
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return {**OWNER, "pid": int(exited.stdout), "start": None}


def _trial_run(client, exp_id: str, number: int, status: str, best: float | None = None, **tags) -> str:
    run = client.create_run(exp_id, run_name=f"trial-{number}", tags={
        "run_type": "trial", "optuna_study": STUDY, "trial_number": str(number), **tags})
    if best is not None:
        client.log_metric(run.info.run_id, "best_val_bacc", best)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def _ask(study, storage, owner: dict, lr: float = 1e-3):
    trial = study.ask(fixed_distributions={"learning_rate": LR})
    storage.set_trial_user_attr(trial._trial_id, "owner", owner)
    return trial


def test_the_rule_on_a_journal(demo_data, tmp_path):
    uri = fresh_store(demo_data, tmp_path)
    client = mlflow.MlflowClient(uri)
    exp_id = get_or_create_experiment(client, "exp")
    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    dead, live = _dead_owner(), OWNER
    finished = _ask(study, storage, dead)
    _trial_run(client, exp_id, finished.number, "FINISHED", 0.61)
    running = _ask(study, storage, dead)
    running_id = _trial_run(client, exp_id, running.number, "RUNNING")
    pruned = _ask(study, storage, dead)
    _trial_run(client, exp_id, pruned.number, "KILLED", pruned="true")
    alive = _ask(study, storage, live)
    alive_id = _trial_run(client, exp_id, alive.number, "RUNNING")
    done_alive = _ask(study, storage, live)
    _trial_run(client, exp_id, done_alive.number, "FINISHED", 0.7)
    never_started = _ask(study, storage, dead)  # killed before its MLflow run existed

    records = TrialRecords(uri, "exp", STUDY, "val_bacc")
    changed = reconcile_trials(study, storage, records, grace=600)

    assert changed == {"complete": [finished.number, done_alive.number], "failed": [running.number,
                                                                                    never_started.number],
                       "pruned": [pruned.number]}
    trials = {t.number: t for t in study.get_trials()}
    assert trials[finished.number].state == TrialState.COMPLETE and trials[finished.number].value == 0.61
    assert trials[done_alive.number].value == 0.7, "a FINISHED run's value is final, whoever's worker it was"
    assert trials[pruned.number].state == TrialState.PRUNED
    assert trials[running.number].state == TrialState.FAIL and trials[running.number].user_attrs["stale"] is True
    assert trials[alive.number].state == TrialState.RUNNING, "a live worker's trial is left alone"
    assert client.get_run(running_id).info.status == "FAILED"
    assert "failed as stale" in client.get_run(running_id).data.tags["error"]
    assert client.get_run(alive_id).info.status == "RUNNING"


def test_optunas_heartbeat_fails_a_silent_trial_and_its_callback_fails_the_run(demo_data, tmp_path):
    uri = fresh_store(demo_data, tmp_path)
    client = mlflow.MlflowClient(uri)
    exp_id = get_or_create_experiment(client, "exp")
    records = TrialRecords(uri, "exp", STUDY, "val_bacc")
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2,
                           stale_trial_callback=records.stale_callback)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    elsewhere = {**OWNER, "host": "another-machine"}  # not this host's process table: only the heartbeat decides
    silent, beating = _ask(study, storage, elsewhere), _ask(study, storage, elsewhere)
    silent_id = _trial_run(client, exp_id, silent.number, "RUNNING")
    storage.record_heartbeat(silent._trial_id)
    time.sleep(3.5)
    storage.record_heartbeat(beating._trial_id)

    assert reconcile_trials(study, storage, records, grace=2) == {}, "Optuna's heartbeat, not our rule, failed it"
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {silent.number: TrialState.FAIL, beating.number: TrialState.RUNNING}
    assert client.get_run(silent_id).info.status == "FAILED"

    # the silent worker was alive after all (a network partition) and finishes: its result is kept, as a new trial
    tell_outcome(study, storage, silent, TrialState.COMPLETE, 0.66)
    (kept,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert kept.value == 0.66 and kept.params == silent.params and kept.user_attrs["recovered_from_trial"] == 0


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    return path


def _search_runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("isic-demo")
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.mark.slow
def test_a_trial_finished_in_mlflow_but_not_told_is_kept_on_rerun(demo_data, tmp_path, space_file, one_thread):
    """The state a SIGKILL between the run's FINISHED and Optuna's tell leaves: rerunning the search keeps it."""
    overrides = train_overrides(demo_data, tmp_path, epochs=1)
    journal = str(tmp_path / "optuna.journal")
    storage = open_storage(journal)
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    exp_id = get_or_create_experiment(client, "isic-demo")  # artifacts beside the store
    parent = client.create_run(exp_id, run_name="search-x", tags={"run_type": "search", "optuna_study": STUDY})
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.set_user_attr("mlflow_parent_run_id", parent.info.run_id)
    killed = _ask(study, storage, _dead_owner())  # the bundle defaults, trial 0 of the demo
    _trial_run(client, exp_id, killed.number, "FINISHED", 0.9, **{"mlflow.parentRunId": parent.info.run_id})

    result = search(n_trials=2, space=str(space_file), storage=journal, study_name=STUDY, quiet=True, **overrides)

    trials = optuna.load_study(study_name=STUDY, storage=open_storage(journal)).get_trials()
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    assert trials[0].value == 0.9, "the finished trial kept its value: it was neither failed nor trained again"
    assert result.best_value >= 0.9 and result.counts == {"COMPLETE": 2}
    runs = _search_runs(overrides["tracking_uri"])
    assert sorted(r.data.tags["trial_number"] for r in runs if r.data.tags["run_type"] == "trial") == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"}, "nothing left RUNNING, the parent included"


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_no_running_run(demo_data, tmp_path, space_file, one_thread):
    overrides = train_overrides(demo_data, tmp_path, epochs=1)
    journal = str(tmp_path / "optuna.journal")
    args = {**overrides, "n_trials": 2, "space": str(space_file), "storage": journal, "study_name": STUDY}
    cmd = [sys.executable, "-m", "medattn_monai.cli", "search"] + [f"--{k}={v}" for k, v in args.items()]

    def trial_running():
        return [r for r in _search_runs(overrides["tracking_uri"])
                if r.data.tags.get("run_type") == "trial" and r.info.status == "RUNNING"]

    (killed,) = sigkill_when(cmd, tmp_path, trial_running, "a trial run starting", poll=0.2, OMP_NUM_THREADS="1")

    result = search(quiet=True, **{k: v for k, v in args.items()})

    client = mlflow.MlflowClient(overrides["tracking_uri"])
    assert client.get_run(killed.info.run_id).info.status == "FAILED"
    trials = optuna.load_study(study_name=STUDY, storage=open_storage(journal)).get_trials()
    stale = [t for t in trials if t.user_attrs.get("stale")]
    assert [t.state for t in stale] == [TrialState.FAIL], "the killed trial was failed and its budget returned"
    assert result.counts == {"COMPLETE": 2, "FAIL": 1}
    assert not [r for r in _search_runs(overrides["tracking_uri"]) if r.info.status == "RUNNING"]
