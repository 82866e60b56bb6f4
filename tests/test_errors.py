"""Bad input ends with one clear message naming the file or field, a non-zero exit, and no run left RUNNING."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import mlflow
import pytest
from ignite.engine import Events

from conftest import ISIC_CONFIGS, REPO, train_overrides
from medattn_monai.cli import main
from medattn_monai.errors import find_medattn_error


def _statuses(uri: str) -> list[str]:
    client = mlflow.MlflowClient(uri)
    return [r.info.status for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def _train_cli(overrides: dict, capsys) -> tuple[int, str]:
    args = ["train"] + [f"--{k}={v}" for k, v in overrides.items()]
    code = main(args)
    return code, capsys.readouterr().err


def _train_cli_output(overrides: dict, capsys) -> tuple[int, str, str]:
    code = main(["train"] + [f"--{k}={v}" for k, v in overrides.items()])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("cache", ["auto", "stream"])  # decoded by threads into RAM, or in DataLoader workers
def test_corrupt_jpeg_fails_the_run_and_names_the_file(cache, demo_data, tmp_path, capsys):
    data = tmp_path / "isic"
    shutil.copytree(demo_data.dataset_dir, data)
    victim = json.loads(demo_data.datalist.read_text())["training"][7]["image"]
    (data / victim).write_bytes((data / victim).read_bytes()[:200])
    overrides = train_overrides(demo_data, tmp_path, dataset_dir=data, epochs=1, cache=cache)
    code, out, err = _train_cli_output(overrides, capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("medattn: error: cannot decode image")
    assert victim.split("/")[-1] in err
    # Ignite logs the exception (a worker's with its traceback) before re-raising it: not on the screen by default
    for text in (out, err):
        assert "Traceback" not in text and "terminating due to exception" not in text
    assert _statuses(train_overrides(demo_data, tmp_path)["tracking_uri"]) == ["FAILED"]


def _inference(folder, run_dir, cwd, **overrides) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(ISIC_CONFIGS / "inference.json"),
           "--input_dir", str(folder), "--run_dir", str(run_dir)]
    cmd += [f"--{k}={v}" for k, v in overrides.items()]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MEDATTN_TRACEBACK", None)
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_inference_predicts_every_readable_image_and_lists_the_others(demo_data, trained_run, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = sorted((demo_data.dataset_dir / "ISIC_2019_Training_Input").glob("*.jpg"))[:3]
    for path in good:
        shutil.copy(path, folder / path.name)
    # sorted first and batches of 2: the first batch holds no readable image at all
    (folder / "a_truncated.jpg").write_bytes(good[0].read_bytes()[:300])
    (folder / "b_not_an_image.png").write_text("not an image")
    proc = _inference(folder, trained_run.run_dir, tmp_path, val_batch_size=2, num_workers=1)
    screen = proc.stdout + proc.stderr
    assert proc.returncode == 0, screen
    assert "Traceback" not in screen and "terminating due to exception" not in screen
    warnings = [line for line in screen.splitlines() if "could not be read" in line]
    assert len(warnings) == 1 and "2 of 5 images" in warnings[0], screen
    with open(tmp_path / "inference" / "predictions_inference.csv") as f:
        assert sorted(row["image"] for row in csv.DictReader(f)) == sorted(p.name for p in good)
    with open(tmp_path / "inference" / "unreadable_inference.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["a_truncated.jpg", "b_not_an_image.png"]
    assert all("cannot decode image" in r["reason"] for r in rows)


def test_inference_with_no_readable_image_fails_in_one_line(trained_run, tmp_path):
    from monai.bundle import ConfigWorkflow

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    workflow = ConfigWorkflow(config_file=str(ISIC_CONFIGS / "inference.json"), workflow_type="infer",
                              input_dir=str(folder), run_dir=str(trained_run.run_dir),
                              inference_output_dir=str(tmp_path / "out"), num_workers=0)
    workflow.initialize()
    with pytest.raises(Exception) as err:
        workflow.run()
    message = str(find_medattn_error(err.value))
    assert message.startswith("none of the 1 images could be read (cannot decode image") and "empty.jpg" in message
    assert (tmp_path / "out" / "unreadable_inference.csv").is_file()


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
