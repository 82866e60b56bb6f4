"""evaluate and inference take the right model: the run named, or the latest finished run of the bundle's own
dataset; a run or datalist of another dataset is refused naming both; a second evaluation replaces the first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from monai.bundle import ConfigWorkflow

from conftest import CAMELYON_BUNDLE, ISIC_CONFIGS
from medattn_monai.errors import ConfigError, find_medattn_error
from medattn_monai.tracking.run_folder import FINISHED_AT, latest_run_dir, resolve_run_dir


def _fake_run(root: Path, experiment: str, name: str, dataset: str, finished: str | None) -> Path:
    folder = root / experiment / name
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"")
    (folder / "run.json").write_text(json.dumps({"run_name": name, "dataset_name": dataset, "classes": ["a", "b"],
                                                 FINISHED_AT: finished}))
    return folder


def test_the_default_is_the_latest_finished_run_of_the_bundles_dataset(tmp_path):
    isic = _fake_run(tmp_path, "isic-demo", "old", "isic", "2026-01-01T00:00:00+00:00")
    _fake_run(tmp_path, "isic-demo", "killed", "isic", None)  # started later, never finished
    _fake_run(tmp_path, "camelyon17-demo", "newest", "camelyon17", "2026-02-01T00:00:00+00:00")
    assert latest_run_dir(str(tmp_path), "isic") == str(isic)
    assert resolve_run_dir(None, str(tmp_path), "isic") == str(isic)
    with pytest.raises(ConfigError, match="no finished isic run .* pass --run_dir"):
        latest_run_dir(str(tmp_path / "isic-demo"), "isic")


def test_a_run_of_another_dataset_is_refused_naming_both(tmp_path):
    camelyon = _fake_run(tmp_path, "camelyon17-demo", "c", "camelyon17", "2026-02-01T00:00:00+00:00")
    with pytest.raises(ConfigError, match=r"was trained on camelyon17 \(classes \['a', 'b'\]\), but this bundle is "
                                          r"for isic"):
        resolve_run_dir(str(camelyon), str(tmp_path), "isic")


def _evaluate_workflow(**overrides) -> ConfigWorkflow:
    workflow = ConfigWorkflow(config_file=[str(ISIC_CONFIGS / "train.json"), str(ISIC_CONFIGS / "evaluate.json")],
                              workflow_type="infer", **overrides)
    workflow.initialize()
    return workflow


def test_isic_evaluation_after_a_camelyon17_training_takes_the_isic_model(trained_run, camelyon_run, tmp_path):
    root = tmp_path / "runs"
    isic = root / "isic-demo" / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, isic)
    shutil.copytree(camelyon_run.run_dir, root / "camelyon17-demo" / camelyon_run.run_dir.name)
    workflow = _evaluate_workflow(output_root=str(root), log_mlflow=False)
    assert workflow.parser.get_parsed_content("trained_run") == str(isic)
    with pytest.raises(Exception) as err:
        _evaluate_workflow(output_root=str(root), run_dir=str(camelyon_run.run_dir)).parser.get_parsed_content(
            "trained_run")
    assert "was trained on camelyon17" in str(find_medattn_error(err.value))
    # the ISIC run evaluated on the Camelyon17 datalist: the classes differ
    workflow = _evaluate_workflow(run_dir=str(isic), datalist=camelyon_run.overrides["datalist"])
    with pytest.raises(Exception) as err:
        workflow.parser.get_parsed_content("datalist_content")
    message = str(find_medattn_error(err.value))
    assert "has classes ['normal', 'tumor']" in message and "trained on isic" in message


def test_inference_refuses_a_datalist_of_other_classes(trained_run, camelyon_run):
    configs = CAMELYON_BUNDLE / "configs"
    workflow = ConfigWorkflow(config_file=str(configs / "inference.json"), workflow_type="infer",
                              run_dir=str(camelyon_run.run_dir), input_datalist=str(trained_run.overrides["datalist"]))
    workflow.initialize()
    with pytest.raises(Exception) as err:
        workflow.parser.get_parsed_content("dataset")
    assert "trained on camelyon17 with classes ['normal', 'tumor']" in str(find_medattn_error(err.value))


def test_a_second_evaluation_replaces_the_first(trained_run):
    from medattn_monai.engine import evaluate

    client = mlflow.MlflowClient(trained_run.tracking_uri)
    run_id = trained_run.info["run_id"]
    first = [(m.step, m.value) for m in client.get_metric_history(run_id, "test_bacc")]
    evaluate(str(trained_run.run_dir), splits=["test"])
    history = client.get_metric_history(run_id, "test_bacc")
    steps = [m.step for m in history]
    assert len(steps) == len(set(steps)) == len(first) + 1, "one value per evaluation, never two at one step"
    latest = max(history, key=lambda m: m.step)
    assert client.get_run(run_id).data.metrics["test_bacc"] == latest.value and latest.step == max(first)[0] + 1
    for key in ("test_auc", f"test_recall_{trained_run.info['classes'][1]}"):
        assert max(m.step for m in client.get_metric_history(run_id, key)) == latest.step, key
