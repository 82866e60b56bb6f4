"""A training killed hard (SIGKILL) during epoch 2 resumes into the same MLflow run and ends exactly like an
uninterrupted run with the same seed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from conftest import ISIC_CONFIGS, sigkill_when, train_overrides
from medattn_monai.engine import resume
from medattn_monai.tracking import read_run_info


def _epoch(checkpoint: Path) -> int:
    trainer = torch.load(checkpoint, weights_only=True)["trainer"]
    return trainer["iteration"] // trainer["epoch_length"]


def _kill_during_epoch_2(overrides: dict, cwd: Path) -> Path:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(ISIC_CONFIGS / "train.json")]
    cmd += [f"--{k}={v}" for k, v in overrides.items()]
    root = Path(overrides["output_root"])
    # epoch 1 is complete and saved: epoch 2 is running
    found = sigkill_when(cmd, cwd, lambda: list(root.glob("*/*/checkpoint_last.pt")), "training reaching epoch 2",
                         poll=0.02)
    return found[0].parent


def test_sigkill_then_resume_equals_uninterrupted(trained_run, demo_data, tmp_path):
    overrides = train_overrides(demo_data, tmp_path)
    assert {k: v for k, v in overrides.items() if k not in ("output_root", "tracking_uri")} == {
        k: v for k, v in trained_run.overrides.items() if k not in ("output_root", "tracking_uri")
    }, "the reference run must have the same configuration"
    run_dir = _kill_during_epoch_2(overrides, tmp_path)
    assert _epoch(run_dir / "checkpoint_last.pt") == 1

    client = mlflow.MlflowClient(overrides["tracking_uri"])
    run_id = read_run_info(run_dir)["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING", "a SIGKILLed run stays RUNNING until resumed"

    resume(str(run_dir))

    assert read_run_info(run_dir)["run_id"] == run_id
    runs = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id], "resume continues the same run, it opens no other"
    assert client.get_run(run_id).info.status == "FINISHED"

    reference = mlflow.MlflowClient(trained_run.tracking_uri)
    for key in ("val_bacc", "train_loss"):
        got = client.get_metric_history(run_id, key)
        steps = [m.step for m in got]
        assert sorted(steps) == [1, 2, 3] and len(set(steps)) == len(steps), f"{key}: {steps}"
        want = {m.step: m.value for m in reference.get_metric_history(trained_run.info["run_id"], key)}
        assert {m.step: m.value for m in got} == pytest.approx(want, abs=1e-6), key
    assert _epoch(run_dir / "checkpoint_last.pt") == 3
    final = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    expected = torch.load(trained_run.run_dir / "checkpoint_last.pt", weights_only=True)["model"]
    for name, tensor in final["model"].items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-5, msg=name)


def _checkpointer(tmp_path: Path, background: bool | str):
    from medattn_monai.handlers import RunCheckpointer, RunHistory

    net = torch.nn.Linear(2, 2)
    return RunCheckpointer(str(tmp_path), net, torch.optim.SGD(net.parameters(), lr=0.1), RunHistory(),
                           background=background)


def test_checkpoint_writes_in_line_or_in_background(tmp_path):
    # in line: the file is on disk when the epoch's handler returns, and no thread is left
    ckpt = _checkpointer(tmp_path, background=False)
    ckpt._write([({"epoch": 1}, tmp_path / "a.pt")])
    assert ckpt._writer is None and torch.load(tmp_path / "a.pt") == {"epoch": 1}
    # in the background: a failed write surfaces in the training thread at the next wait, naming the file
    from medattn_monai.errors import StorageError

    ckpt = _checkpointer(tmp_path, background=True)
    ckpt._write([({"epoch": 1}, tmp_path / "missing" / "b.pt")])
    with pytest.raises(StorageError, match="cannot write .*missing/b.pt"):
        ckpt.wait()


def test_checkpoint_writer_thread_only_with_a_core_to_spare(tmp_path):
    from medattn_monai.handlers.checkpoint import usable_cores

    cores = usable_cores()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert not _checkpointer(tmp_path, "auto")._in_background()  # CPU training uses every core
        if cores > 1:
            torch.set_num_threads(cores - 1)
            assert _checkpointer(tmp_path, "auto")._in_background()
    finally:
        torch.set_num_threads(threads)


def test_a_dollar_value_in_run_json_runs_nothing_on_resume(trained_run, tmp_path):
    from medattn_monai.engine.launch import resume_training
    from medattn_monai.errors import ConfigError

    run_dir = tmp_path / "runs" / "isic-demo" / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, run_dir)
    marker = tmp_path / "pwned"
    info = json.loads((run_dir / "run.json").read_text())
    info["params"]["seed"] = f"$__import__('pathlib').Path({str(marker)!r}).touch() or 7"
    (run_dir / "run.json").write_text(json.dumps(info))
    status = mlflow.MlflowClient(trained_run.tracking_uri).get_run(info["run_id"]).info.status
    # medattn resume, and the study's resume path (launch.resume_training), both refuse it
    for attempt in (lambda: resume(str(run_dir)), lambda: resume_training(str(run_dir))):
        with pytest.raises(ConfigError, match=r"run.json: seed = .* would be evaluated as code"):
            attempt()
    assert not marker.exists()
    assert mlflow.MlflowClient(trained_run.tracking_uri).get_run(info["run_id"]).info.status == status
