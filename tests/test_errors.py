"""Bad input ends with one clear message naming the file or field, a non-zero exit, and no run left RUNNING."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import mlflow
import pytest
from ignite.engine import Events

from conftest import ISIC_CONFIGS, REPO, train_overrides
from medattn_monai.cli import main


def _statuses(uri: str) -> list[str]:
    client = mlflow.MlflowClient(uri)
    return [r.info.status for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def _train_cli(overrides: dict, capsys) -> tuple[int, str]:
    args = ["train"] + [f"--{k}={v}" for k, v in overrides.items()]
    code = main(args)
    return code, capsys.readouterr().err


def test_corrupt_jpeg_fails_the_run_and_names_the_file(demo_data, tmp_path, capsys):
    data = tmp_path / "isic"
    shutil.copytree(demo_data.dataset_dir, data)
    victim = json.loads(demo_data.datalist.read_text())["training"][7]["image"]
    (data / victim).write_bytes((data / victim).read_bytes()[:200])
    code, err = _train_cli(train_overrides(demo_data, tmp_path, dataset_dir=data, epochs=1), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("medattn: error: cannot decode image")
    assert victim.split("/")[-1] in err and "Traceback" not in err
    assert _statuses(train_overrides(demo_data, tmp_path)["tracking_uri"]) == ["FAILED"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset_dir": "/nonexistent/isic"}, "dataset_dir not found: /nonexistent/isic"),
        ({"bogus_key": 3}, "unknown config key 'bogus_key' (no similar key)"),
        ({"epochz": 1}, "unknown config key 'epochz' (did you mean 'epochs'?)"),
        ({"log_mlflow": "maybe"}, "log_mlflow must be a boolean (true/false, 1/0, yes/no), got 'maybe'"),
        ({"epochs": 0}, "bad value for epochs: 0"),
        ({"cache": "disk"}, "cache='disk' is not one of"),
        ({"retain_host_memory": "sometimes"}, "retain_host_memory must be auto or a boolean"),
    ],
)
def test_bad_settings_fail_before_any_run(change, message, demo_data, tmp_path, capsys):
    overrides = train_overrides(demo_data, tmp_path, **change)
    code, err = _train_cli(overrides, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert "RUNNING" not in _statuses(overrides["tracking_uri"])


def test_missing_image_and_empty_split_are_named(demo_data, tmp_path, capsys):
    d = json.loads(demo_data.datalist.read_text())
    d["training"][3]["image"] = "ISIC_2019_Training_Input/ISIC_missing.jpg"
    bad = tmp_path / "missing.json"
    bad.write_text(json.dumps(d))
    code, err = _train_cli(train_overrides(demo_data, tmp_path, datalist=bad), capsys)
    assert code == 2 and "image not found:" in err and "ISIC_missing.jpg" in err
    d = json.loads(demo_data.datalist.read_text())
    d["validation"] = []
    bad.write_text(json.dumps(d))
    code, err = _train_cli(train_overrides(demo_data, tmp_path, datalist=bad), capsys)
    assert code == 2 and "split 'validation'" in err and "is empty" in err


def test_unknown_class_column_in_the_converter(demo_data, tmp_path, capsys):
    data = tmp_path / "isic"
    shutil.copytree(demo_data.dataset_dir, data)
    gt = data / "ISIC_2019_Training_GroundTruth.csv"
    gt.write_text(gt.read_text().replace("VASC", "VASCULAR", 1))
    code = main(["prepare", "isic2019", str(data), str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and "lacks column(s) ['VASC']" in err and str(gt) in err
    assert not (tmp_path / "out.json").exists()


def test_ctrl_c_marks_the_run_killed(demo_data, tmp_path):
    from monai.bundle import ConfigWorkflow

    overrides = train_overrides(demo_data, tmp_path, epochs=1)
    workflow = ConfigWorkflow(config_file=str(ISIC_CONFIGS / "train.json"), workflow_type="train", **overrides)
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")

    def interrupt(engine):
        raise KeyboardInterrupt

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert _statuses(overrides["tracking_uri"]) == ["KILLED"]


def test_monai_bundle_cli_prints_one_line_not_a_traceback(demo_data, tmp_path):
    overrides = train_overrides(demo_data, tmp_path, dataset_dir=str(tmp_path / "nowhere"))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(ISIC_CONFIGS / "train.json")]
    cmd += [f"--{k}={v}" for k, v in overrides.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == f"medattn: error: dataset_dir not found: {tmp_path / 'nowhere'}"
    assert "Traceback" not in proc.stderr
