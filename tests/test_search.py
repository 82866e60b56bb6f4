"""``medattn search``: trials are child runs of one parent, pruning ends a trial KILLED with ``pruned=true``, the
objective is the trial's ``best_val_bacc``, and workers on one journal storage share the trial budget exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import mlflow
import optuna
import pytest

from conftest import REPO, train_overrides
from medattn_monai.errors import ConfigError
from medattn_monai.search import SearchSpace, load_space, open_storage, search
from medattn_monai.search.liveness import OWNER
from medattn_monai.study.claims import claim_state, try_claim


def _runs(uri: str, experiment: str = "isic-demo") -> list:
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


@pytest.mark.slow
def test_pruned_trial_is_a_killed_child_and_the_best_value_is_the_best_child(demo_data, tmp_path, one_thread):
    overrides = train_overrides(demo_data, tmp_path, epochs=2)
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {low: 1.0e-3, high: 10.0, log: true}\n")
    # trial 0 learns; trial 1's learning rate is hopeless: after epoch 1 it is below trial 0's epoch 1
    result = search(n_trials=2, space=str(space), storage=str(tmp_path / "optuna.journal"), n_startup_trials=1,
                    n_warmup_steps=0, enqueue=[{"learning_rate": 0.002}, {"learning_rate": 10.0}], quiet=True,
                    **overrides)

    runs = _runs(overrides["tracking_uri"])
    parents = [r for r in runs if r.data.tags["run_type"] == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1 == 2
    assert {c.data.tags["run_type"] for c in children} == {"trial"}
    assert sorted(c.data.tags["trial_number"] for c in children) == ["0", "1"]
    pruned = [c for c in children if c.data.tags.get("pruned") == "true"]
    assert len(pruned) == 1 and pruned[0].data.tags["trial_number"] == "1"
    assert pruned[0].info.status == "KILLED"
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    assert [m.step for m in client.get_metric_history(pruned[0].info.run_id, "val_bacc")] == [1], \
        "the pruned trial stopped after epoch 1 of 2, and its epoch is recorded"
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 1

    study = optuna.load_study(study_name=result.study_name, storage=open_storage(result.storage))
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "PRUNED"]
    best_child = max(c.data.metrics["best_val_bacc"] for c in finished)
    assert study.best_value == best_child == result.best_value
    assert parent.data.metrics["best_val_bacc"] == best_child
    assert json.loads(parent.data.tags["best_params"]) == {"learning_rate": 0.002}
    assert study.best_trial.user_attrs["run_name"] == finished[0].info.run_name


_WORKER = textwrap.dedent("""
    import json, pathlib, sys, time
    from medattn_monai.search import search
    args = json.loads(sys.argv[1])
    ready = pathlib.Path(args.pop("ready"))
    (ready / sys.argv[2]).touch()
    while len(list(ready.iterdir())) < 2:  # start together, so the two workers overlap
        time.sleep(0.05)
    search(quiet=True, **args)
""")


@pytest.mark.slow
def test_two_workers_on_one_journal_share_the_trials(demo_data, tmp_path):
    ready = tmp_path / "ready"
    ready.mkdir()
    args = {**train_overrides(demo_data, tmp_path, epochs=1), "n_trials": 4,
            "storage": str(tmp_path / "optuna.journal"), "ready": str(ready)}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(args), name], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(e[-3000:] for e in errors)

    storage = open_storage(args["storage"])
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.state.name for t in trials} == {"COMPLETE"}
    owners = {t.user_attrs["owner"]["pid"] for t in trials}
    assert len(owners) == 2, "both workers ran trials"
    by_owner = {pid: [(t.datetime_start, t.datetime_complete) for t in trials if t.user_attrs["owner"]["pid"] == pid]
                for pid in owners}
    a, b = by_owner.values()
    assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b), "the workers' trials overlapped in time"

    runs = _runs(args["tracking_uri"])
    parents = [r for r in runs if r.data.tags["run_type"] == "search"]
    children = [r for r in runs if r.data.tags["run_type"] == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.tags["trial_number"] for c in children) == ["0", "1", "2", "3"], "none lost or duplicated"
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {t.user_attrs["run_name"] for t in trials} == {c.info.run_name for c in children}


def test_space_restricts_parameters_to_the_networks_that_have_them():
    space = load_space()
    assert set(space.applicable("none", "resnet18")) == {"learning_rate", "weight_decay", "batch_size",
                                                          "label_smoothing"}
    assert {"heads"} <= set(space.applicable("ga", "resnet18")) and "window" not in space.applicable("ga", "resnet18")
    assert {"heads", "window"} <= set(space.applicable("la", "densenet121"))
    assert "heads" not in space.applicable("ela", "resnet18") and "window" in space.applicable("ela", "resnet18")
    assert space.contains("learning_rate", 0.002) and not space.contains("learning_rate", 1.0)
    assert space.contains("batch_size", 32) and not space.contains("batch_size", 33)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = space.suggest(trial, "la", "resnet18")
    assert 1e-4 <= values["learning_rate"] <= 1e-2 and values["window"] in (5, 7, 9)


@pytest.mark.parametrize("spec, message", [
    ({"learning_rate": {"low": 0.1, "high": 0.01}}, "low < high"),
    ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "low > 0"),
    ({"batch_size": {"choices": []}}, "non-empty list"),
    ({"batch_size": {"choices": [8], "low": 1}}, "either choices"),
    ({"heads": {"choices": [1], "variant": ["ga"]}}, "unknown field"),
])
def test_bad_space_is_refused_with_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(spec)


def test_search_refuses_a_space_key_the_bundle_lacks(demo_data, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learnig_rate": {"low": 1e-4, "high": 1e-2}}))
    with pytest.raises(ConfigError, match="learnig_rate"):
        search(space=str(space), storage=str(tmp_path / "j"), **train_overrides(demo_data, tmp_path))


def test_claims_are_exclusive_and_a_dead_holders_claim_is_taken_over(tmp_path):
    storage = open_storage(str(tmp_path / "claims.journal"))
    first = try_claim(storage, "cell/s0")
    assert first is not None and try_claim(storage, "cell/s0") is None, "a live claim excludes others"
    assert claim_state(storage, "cell/s0") == ("held", 0)
    # a claim whose process has exited (same host) is stale and goes to the next generation
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.set_study_user_attr(first.study_id, "owner", {**OWNER, "pid": int(dead.stdout), "start": None})
    assert claim_state(storage, "cell/s0")[0] == "stale"
    second = try_claim(storage, "cell/s0")
    assert second is not None and second.generation == 1
    with second:
        second.finish()
    assert claim_state(storage, "cell/s0") == ("done", 1)
    assert try_claim(storage, "cell/s0").generation == 2, "done work may be claimed again (its record decides)"
    with try_claim(storage, "cell/s1"):  # left without finish(): given back
        pass
    assert claim_state(storage, "cell/s1") == ("released", 0)
    assert try_claim(storage, "cell/s1").generation == 1


def test_a_dead_workers_running_trial_is_failed_and_its_budget_returned(tmp_path):
    from medattn_monai.search.reconcile import TrialRecords, reconcile_trials

    storage = open_storage(str(tmp_path / "trials.journal"))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    alive, dead = study.ask(), study.ask()
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.set_trial_user_attr(alive._trial_id, "owner", OWNER)
    storage.set_trial_user_attr(dead._trial_id, "owner", {**OWNER, "pid": int(exited.stdout), "start": None})
    records = TrialRecords(f"sqlite:///{tmp_path / 'mlflow.db'}", "none-yet", "s", "val_bacc")
    assert reconcile_trials(study, storage, records, grace=600) == {"failed": [dead.number]}
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {alive.number: "RUNNING", dead.number: "FAIL"}
    assert study.get_trials()[dead.number].user_attrs["stale"] is True
