"""``medattn study``: killed after its first run and started again, it finishes without retraining that run; a run
that keeps failing is retried once and reported."""

from __future__ import annotations

import json
import sys

import mlflow
import pytest
import yaml

from conftest import fresh_store, sigkill_when
from medattn_monai.study import StudyIncomplete, study

EXPERIMENT = "isic-demo"


def _config(demo_data, tmp_path, **changes) -> dict:
    return {
        "name": "restart",
        "datasets": [{"dataset_dir": str(demo_data.dataset_dir), "datalist": str(demo_data.datalist)}],
        "backbones": ["resnet18"],
        "variants": ["ga", "la"],
        "baselines": [],
        "seeds": [0, 1],
        "overrides": {"epochs": 1, "image_size": 32, "batch_size": 32, "val_batch_size": 256},
        "search": False,
        "storage": str(tmp_path / "optuna.journal"),
        "heartbeat_interval": 1,
        "grace_period": 5,  # a claim the killed worker created but had not yet named is stale after this
        "tracking_uri": fresh_store(demo_data, tmp_path),
        "output_root": str(tmp_path / "runs"),
        "out": str(tmp_path / "out"),
        "compare": {"n_boot": 200},
        "explain": {"n_images": 8, "n_figures": 1},
        **changes,
    }


def _runs_of_type(uri: str, run_type: str) -> list:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.run_type = '{run_type}'")


def _train_runs(uri: str) -> list:
    return _runs_of_type(uri, "train")


def _kill_after_first_run(config_path, uri: str, cwd) -> object:
    cmd = [sys.executable, "-m", "medattn_monai.cli", "study", "--config", str(config_path)]
    # the first (cell, seed) is trained and evaluated: kill the study mid-way
    done = sigkill_when(cmd, cwd, lambda: [r for r in _train_runs(uri) if r.data.tags.get("evaluated") == "true"],
                        "the study finishing a run", poll=0.2, OMP_NUM_THREADS="1")
    return done[0]


@pytest.mark.slow
def test_study_killed_after_its_first_run_resumes_without_retraining_it(demo_data, tmp_path, one_thread, capsys):
    config = _config(demo_data, tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    first = _kill_after_first_run(path, config["tracking_uri"], tmp_path)
    cell, seed = first.data.tags["cell"], first.data.tags["seed"]

    capsys.readouterr()
    result = study(config=str(path))
    screen = capsys.readouterr()
    # the study's own lines: one per finished run, not each training's epochs, MLflow and engine lines
    finished = [line for line in screen.out.splitlines() if line.startswith(("resnet18-ga seed", "resnet18-la seed"))]
    assert len(finished) == 4 and sum("done before" in line for line in finished) == 1, screen.out
    for noise in ("epoch 1/1", "Engine run", "Epoch[", "Got new best", "MLflow run", "evaluation 1 of run"):
        assert noise not in screen.out + screen.err, noise
    assert "mlflow ui --backend-store-uri sqlite:///" in screen.out

    assert len(result.outcomes) == 4
    again = [o for o in result.outcomes if o["cell_hash"] == cell and str(o["seed"]) == seed]
    assert again == [{**again[0], "action": "skipped", "run_id": first.info.run_id}], "the finished run is kept"
    assert {o["action"] for o in result.outcomes} - {"skipped"} <= {"trained", "resumed"}
    runs = _train_runs(config["tracking_uri"])
    same = [r for r in runs if r.data.tags["cell"] == cell and r.data.tags["seed"] == seed]
    assert [r.info.run_id for r in same] == [first.info.run_id], "that (cell, seed) was not trained again"
    done = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("evaluated") == "true"]
    assert len(done) == 4 and {r.data.tags["attention"] for r in done} == {"ga", "la"}
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], "the killed worker's run was resumed, " \
        "or marked FAILED when it had no checkpoint"
    assert all("test_bacc" in r.data.metrics and r.data.tags["study"] == "restart" for r in done)
    assert {(r.data.tags["cell"], r.data.tags["seed"]) for r in done} == {
        (o["cell_hash"], str(o["seed"])) for o in result.outcomes}

    summary = result.summary.set_index(["cell", "metric"])
    for label in ("resnet18-ga", "resnet18-la"):
        row = summary.loc[(label, "test_bacc")]
        values = result.runs[result.runs["cell"] == label]["test_bacc"]
        assert row["n"] == 2 and row["mean"] == pytest.approx(values.mean())
        assert row["std"] == pytest.approx(values.std())
    assert (tmp_path / "out" / "study_summary.md").is_file()
    assert (tmp_path / "out" / "comparison" / EXPERIMENT / "comparison.csv").is_file()

    explained = _runs_of_type(config["tracking_uri"], "explain")
    assert sorted(r.data.tags["explained_run_id"] for r in explained) == sorted(
        result.runs.sort_values("seed").groupby("cell")["run_id"].first()), "one explanation per cell (first seed)"

    rerun = study(config=str(path), compare=False)
    assert {o["action"] for o in rerun.outcomes} == {"skipped"}, "a finished study trains nothing more"
    assert len(_runs_of_type(config["tracking_uri"], "explain")) == 2, "nor explains a run twice"


@pytest.mark.slow
def test_a_failing_run_is_retried_once_and_reported(demo_data, tmp_path, one_thread):
    config = _config(demo_data, tmp_path, variants=["la"], seeds=[0], compare=False,
                     params={"resnet18-la": {"window": 4}})  # an even window cannot be centred: every try fails
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(StudyIncomplete, match="resnet18-la seed 0.*window=4"):
        study(config=str(path))
    (failure,) = json.loads((tmp_path / "out" / "study_outcomes.json").read_text())
    assert failure["action"] == "failed" and len(failure["errors"]) == 2, "one try and one retry"


def test_the_matrix_has_every_variant_and_baseline_once():
    from medattn_monai.study import matrix

    cells = matrix(2, ["resnet18", "efficientnet-b0"], ["ga", "se"], ["plain", "size_matched", "vit"])
    labels = [c.label for c in cells if c.dataset == 0]
    assert labels == ["resnet18-plain", "resnet18-ga", "resnet18-se", "resnet18-matched-ga", "resnet18-matched-se",
                      "vit-resnet18", "efficientnet-b0-plain", "efficientnet-b0-ga", "efficientnet-b0-matched-ga",
                      "vit-efficientnet-b0"], "se is built into EfficientNet-B0: no se cell there"
    assert len(cells) == 2 * len(labels)


@pytest.mark.parametrize("change, message", [
    ({"seeds": 0}, "seeds must be"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"search": {"seed": 3}, "seeds": 5}, "search.seed 3 is one of the study's seeds"),
    ({"search": {"n_trails": 3}}, "unknown key.*n_trails"),
    ({"baselines": ["matched"]}, "baselines.*unknown"),
    ({"datasets": []}, "datasets must be"),
    ({"gpu_per_run": 2}, "unknown key.*gpu_per_run"),
])
def test_a_bad_study_config_names_the_key(change, message, tmp_path):
    from medattn_monai.errors import ConfigError

    config = {"datasets": [{"dataset_dir": "x", "datalist": "y.json"}], **change}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        study(config=str(path))


def test_a_claim_whose_creator_died_before_naming_itself_goes_stale(tmp_path):
    """A worker killed between creating a claim and writing its owner into it must not block that run for good."""
    import time

    from optuna.study import StudyDirection

    from medattn_monai.search.storage import open_storage
    from medattn_monai.study.claims import claim_state, try_claim

    storage = open_storage(str(tmp_path / "optuna.journal"))
    storage.create_new_study([StudyDirection.MAXIMIZE], "claim:exp/cell/s0#0")  # no owner: its creator died
    assert claim_state(storage, "exp/cell/s0", grace=0.5) == ("held", 0), "it may be naming itself right now"
    time.sleep(0.6)
    assert claim_state(storage, "exp/cell/s0", grace=0.5) == ("stale", 0)
    claim = try_claim(storage, "exp/cell/s0", grace=0.5)
    assert claim is not None and claim.generation == 1
