"""A command that refuses changes no state: every run keeps its status, end time, tags and metric histories, and its
run folder its files. A run that finishes a second time drops its stale ``error`` tag and logs each ``best_*`` once.

Each test damages a copy of the shared ``trained_run`` (its folder and its MLflow store, artifacts included).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from medattn_monai.cli import main


def copy_of(trained_run: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The trained run's folder and store copied under ``tmp_path``, every path in them pointing at the copies."""
    old_store = trained_run.work / "mlruns"
    store = tmp_path / "mlruns"
    shutil.copytree(old_store, store)
    db = sqlite3.connect(store / "mlflow.db")
    with db:
        db.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                   (str(old_store), str(store)))
        db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (str(old_store), str(store)))
    db.close()
    run_dir = tmp_path / "runs" / trained_run.run_dir.parent.name / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, run_dir)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    info = json.loads((run_dir / "run.json").read_text())
    info.update(tracking_uri=uri, output_root=str(tmp_path / "runs"))
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    return SimpleNamespace(run_dir=run_dir, uri=uri, run_id=info["run_id"], client=mlflow.MlflowClient(uri))


def state(run: SimpleNamespace) -> dict:
    """Everything a refusal must leave alone: each run's status, times, tags, metric histories, and the folder."""
    client = run.client
    runs = {}
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id]):
            histories = {k: [(m.step, m.value, m.timestamp) for m in client.get_metric_history(r.info.run_id, k)]
                         for k in r.data.metrics}
            runs[r.info.run_id] = (r.info.status, r.info.start_time, r.info.end_time, r.data.tags, histories)
    files = {str(p.relative_to(run.run_dir)): p.read_bytes() for p in sorted(run.run_dir.rglob("*")) if p.is_file()}
    return {"runs": runs, "files": files}


def _train_args(trained_run: SimpleNamespace, run: SimpleNamespace, **change) -> list[str]:
    overrides = {**trained_run.overrides, "tracking_uri": run.uri, "output_root": str(run.run_dir.parents[1]),
                 "resume_from": str(run.run_dir), **change}
    return ["train"] + [f"--{k}={v}" for k, v in overrides.items()]


def _refused(args: list[str], capsys, message: str) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err, err[-3000:]


def _fail(run: SimpleNamespace) -> None:
    """Mark the copied run FAILED with an error tag, as an interrupted training leaves it."""
    run.client.set_tag(run.run_id, "error", "an earlier failure")
    run.client.set_terminated(run.run_id, "FAILED")


def test_refusals_of_a_finished_run_change_nothing(trained_run, tmp_path, capsys):
    run = copy_of(trained_run, tmp_path)
    assert run.client.get_run(run.run_id).info.status == "FINISHED"
    before = state(run)
    _refused(["resume", str(run.run_dir)], capsys, "already FINISHED: nothing to resume")
    assert state(run) == before
    # the bundle's own path (train --resume_from) refuses in its tracker, before it touches the run
    _refused(_train_args(trained_run, run), capsys, "already FINISHED: nothing to resume")
    assert state(run) == before


@pytest.mark.parametrize("args, message", [
    (lambda tr, run: _train_args(tr, run, attention="ga"), "with other hyper-parameters: attention"),
    (lambda tr, run: ["resume", str(run.run_dir), "--epochs", "9"], "resume can change only"),
    (lambda tr, run: ["resume", str(run.run_dir), "--bogus_key", "1"], "resume can change only"),
])
def test_refused_resumes_of_a_failed_run_change_nothing(trained_run, tmp_path, capsys, args, message):
    run = copy_of(trained_run, tmp_path)
    _fail(run)
    before = state(run)
    _refused(args(trained_run, run), capsys, message)
    assert state(run) == before


def test_a_truncated_checkpoint_is_named_and_the_run_left_as_it_was(trained_run, tmp_path, capsys):
    run = copy_of(trained_run, tmp_path)
    _fail(run)
    ckpt = run.run_dir / "checkpoint_last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = state(run)
    for args in (["resume", str(run.run_dir)], _train_args(trained_run, run)):
        _refused(args, capsys, f"cannot resume from {ckpt}: the file is truncated or corrupt")
        assert state(run) == before
    err_hint = "model.pt holds only the best weights"
    main(["resume", str(run.run_dir)])
    assert err_hint in capsys.readouterr().err


def test_a_run_finished_again_drops_its_error_tag_and_logs_best_once(trained_run, tmp_path):
    from medattn_monai.engine import resume

    run = copy_of(trained_run, tmp_path)
    _fail(run)  # e.g. its final upload failed after every epoch was done
    resume(str(run.run_dir))  # nothing left to train: it only finishes the record
    record = run.client.get_run(run.run_id)
    assert record.info.status == "FINISHED"
    assert "error" not in record.data.tags
    for key in ("best_val_bacc", "best_epoch"):
        assert len(run.client.get_metric_history(run.run_id, key)) == 1, key


def test_a_run_being_trained_by_another_process_is_refused(trained_run, tmp_path, capsys):
    import subprocess
    import sys

    from conftest import REPO

    run = copy_of(trained_run, tmp_path)
    _fail(run)
    before = state(run)
    hold = ("import sys, time; from medattn_monai.tracking.run_lock import lock_run_folder; "
            "lock = lock_run_folder(sys.argv[1]); print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run.run_dir)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        _refused(["resume", str(run.run_dir)], capsys, f"is being trained by pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    (run.run_dir / ".training.lock").unlink()  # what the SIGKILLed holder left; the next training takes it over
    assert state(run) == before


def test_a_new_training_never_writes_into_another_runs_folder(trained_run, tmp_path, capsys):
    run = copy_of(trained_run, tmp_path)
    before = state(run)
    # untracked: no MLflow name check stands in the way, the folder check does
    args = _train_args(trained_run, run, resume_from="null", run_name=run.run_dir.name, log_mlflow="false")
    _refused(args, capsys, f"{run.run_dir} already holds run {run.run_dir.name!r}")
    assert state(run) == before


def test_a_truncated_model_is_named_by_evaluate(trained_run, tmp_path, capsys):
    run = copy_of(trained_run, tmp_path)
    model = run.run_dir / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    before = state(run)
    _refused(["evaluate", str(run.run_dir)], capsys, f"{model} is truncated or corrupt")
    assert state(run) == before


@pytest.mark.parametrize("enqueue, said", [
    ("{bad json", "--enqueue is not JSON text or a readable JSON file"),
    ('[{"learning_rate": "$__import__(\'os\').getcwd()"}]', "would be evaluated as code"),
])
def test_a_refused_enqueue_opens_no_storage_and_no_store(demo_data, tmp_path, monkeypatch, capsys, enqueue, said):
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--dataset_dir", str(demo_data.dataset_dir), "--datalist", str(demo_data.datalist),
                 "--n_trials", "1", "--output_root", str(tmp_path / "runs"),
                 "--tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--enqueue", enqueue])
    assert code == 2 and said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "no Optuna journal, no MLflow store"
