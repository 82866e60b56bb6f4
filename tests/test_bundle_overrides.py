"""Strict overrides at every bundle entry point: an unknown key is refused with the closest known one before anything
is built or logged, booleans are parsed strictly, and values read from files are data, never code."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest
from monai.bundle import ConfigWorkflow

from conftest import ISIC_CONFIGS, REPO, train_overrides
from medattn_monai.engine.bundles import data_overrides
from medattn_monai.errors import ConfigError, find_medattn_error


def _initialized(**overrides) -> ConfigWorkflow:
    workflow = ConfigWorkflow(config_file=str(ISIC_CONFIGS / "train.json"), workflow_type="train", **overrides)
    workflow.initialize()
    return workflow


def _refusal(**overrides) -> str:
    with pytest.raises(Exception) as err:  # MONAI wraps what an initialize expression raised
        _initialized(**overrides)
    error = find_medattn_error(err.value)
    assert isinstance(error, ConfigError), err.value
    return str(error)


def test_a_misspelt_key_is_refused_before_anything_is_built(demo_data, tmp_path):
    overrides = train_overrides(demo_data, tmp_path, epochz=2)
    message = _refusal(**overrides)
    assert message.startswith("unknown config key 'epochz' (did you mean 'epochs'?)")
    assert "attenton" in _refusal(**train_overrides(demo_data, tmp_path, attenton="ga"))
    assert not (tmp_path / "runs").exists()
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


@pytest.mark.parametrize("typed, parsed", [("false", False), ("No", False), ("0", False), ("TRUE", True),
                                           ("yes", True), (False, False)])
def test_booleans_are_parsed_strictly(typed, parsed, demo_data, tmp_path):
    workflow = _initialized(**train_overrides(demo_data, tmp_path, log_mlflow=typed))
    assert workflow.parser.get_parsed_content("log_mlflow") is parsed
    # the tracker is switched off (or on) by the parsed value, not by a truthy string
    assert workflow.parser.get_parsed_content("train#handlers#1#_disabled_") is (not parsed)


def test_a_value_that_is_no_boolean_names_the_key(demo_data, tmp_path):
    message = _refusal(**train_overrides(demo_data, tmp_path, log_mlflow="maybe"))
    assert "log_mlflow must be a boolean (true/false, 1/0, yes/no), got 'maybe'" in message
    assert "epochs must be an integer, got 'ten'" in _refusal(**train_overrides(demo_data, tmp_path, epochs="ten"))


def test_monai_bundle_run_from_the_repository_root_refuses_a_misspelt_key(tmp_path):
    # the README's command, unchanged, with a typo: one line naming the key, nothing trained
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
           "bundles/isic_attention_classification/configs/train.json", "--epochz", "2",
           "--output_root", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("medattn: error: unknown config key 'epochz' (did you mean 'epochs'?)"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_values_read_from_files_are_data():
    source = "runs/x/run.json"
    for bad in ("$__import__('os').system('true') or 7", "@seed", "%train.json#seed"):
        with pytest.raises(ConfigError, match="would be evaluated as code"):
            data_overrides({"seed": bad}, source)
    with pytest.raises(ConfigError, match=r"extra_tags.note = '\$1'"):
        data_overrides({"extra_tags": {"note": "$1"}}, source)
    with pytest.raises(ConfigError, match=r"stages\[1\]"):
        data_overrides({"stages": [3, "@x"]}, source)
    with pytest.raises(ConfigError, match="is not a bundle key"):
        data_overrides({"train#trainer#max_epochs": 1}, source)
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        data_overrides({"epochs": [1]}, source)
    assert data_overrides({"log_mlflow": "false", "seed": "7", "heads": "None", "dataset_dir": "data/x"}, source) == {
        "log_mlflow": False, "seed": 7, "heads": None, "dataset_dir": "data/x"}


def test_the_study_refuses_code_in_its_config():
    from medattn_monai.study.config import StudyConfig
    from medattn_monai.study.plan import plans_of

    cfg = StudyConfig.from_dict({"datasets": [{"dataset_dir": "$__import__('os').getcwd()"}], "seeds": 1,
                                 "backbones": ["resnet18"], "variants": ["none"]}, source="study.yaml")
    with pytest.raises(ConfigError, match="would be evaluated as code"):
        plans_of(cfg)[0].overrides(0)
