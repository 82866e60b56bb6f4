"""A team without a shared file system, against real servers set up as docs/team.md says (``team_servers``):
two study workers started together, a worker killed hard and its run taken over from another host, the tracking
server restarted during a training, a known password nowhere, and the commands that work from any machine.

The two workers' study is run once for the module (``team_study``); the takeover's uninterrupted reference is one
of its runs. Every worker is a process of its own with one thread, in an empty working directory of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import torch
import yaml

from conftest import REPO, sigkill_when
from leaks import in_files, in_mlflow, in_optuna, in_texts
from team_setup import MEDATTN, _env, doc_blocks, free_port, run_block

EXPERIMENT = "team-demo"
CELLS = ("none", "ga")
SEEDS = (0, 1)
WORKER_TIMEOUT_S = 900


def _config(demo_data, experiment: str, **changes) -> dict:
    """The tests' team.yaml: ISIC demo data, 2 cells × 2 seeds, a 2-trial search per cell, 2 epochs at 32 px."""
    return {
        "name": "team",
        "datasets": [{"dataset_dir": str(demo_data.dataset_dir), "datalist": str(demo_data.datalist),
                      "experiment_name": experiment}],
        "backbones": ["resnet18"], "variants": list(CELLS), "baselines": [], "seeds": list(SEEDS),
        "overrides": {"epochs": 2, "image_size": 32, "batch_size": 32, "val_batch_size": 256},
        "search": {"n_trials": 2, "overrides": {"epochs": 1}},
        "output_root": "runs", "out": "results", "compare": False, "explain": False,
        **changes,
    }


def _worker_dir(root: Path, name: str, config: dict) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "team.yaml").write_text(yaml.safe_dump(config))
    return folder


def _summary(stdout: str) -> str:
    """The summary table a worker prints: the lines before its ``runs: …`` line, back to the blank line."""
    lines = stdout.splitlines()
    end = max(i for i, line in enumerate(lines) if line.startswith("runs: "))
    start = max(i for i in range(end) if not lines[i].strip() and i < end - 1)
    return "\n".join(lines[start:end]).strip()


def _runs(uri: str, experiment: str, query: str = "") -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], filter_string=query, max_results=1000)


@pytest.fixture(scope="module")
def team_study(team_servers, demo_data, tmp_path_factory) -> SimpleNamespace:
    """Two ``medattn study --config team.yaml`` workers (docs/team.md's worker line), started at the same moment on
    a fresh database, each in its own empty working directory with its own ``output_root``."""
    root = tmp_path_factory.mktemp("team_study")
    config = _config(demo_data, EXPERIMENT)
    folders = [_worker_dir(root, f"worker{i}", config) for i in (1, 2)]
    script = "set -euo pipefail\n" + MEDATTN + doc_blocks()["worker"]
    env = _env(team_servers.settings, OMP_NUM_THREADS="1")
    start = time.monotonic()
    workers = [subprocess.Popen(["bash", "-c", script], cwd=f, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for f in folders]
    outputs = [w.communicate(timeout=WORKER_TIMEOUT_S) for w in workers]
    return SimpleNamespace(folders=folders, outputs=outputs, codes=[w.returncode for w in workers],
                           seconds=time.monotonic() - start, uri=team_servers.tracking_url(),
                           storage=team_servers.storage_url(), password=team_servers.settings["PGPASSWORD"])


def test_two_workers_share_one_study_without_shared_files(team_study):
    logs = "\n".join(err[-3000:] for _, err in team_study.outputs)
    assert team_study.codes == [0, 0], logs
    uri = team_study.uri
    train = _runs(uri, EXPERIMENT, "tags.run_type = 'train'")
    assert sorted((r.data.tags["attention"], r.data.tags["seed"]) for r in train) == sorted(
        (cell, str(seed)) for cell in CELLS for seed in SEEDS), "exactly one run per (cell, seed)"
    assert all(r.info.status == "FINISHED" and r.data.tags.get("evaluated") == "true" for r in train)
    assert all("test_bacc" in r.data.metrics for r in train)
    parents = _runs(uri, EXPERIMENT, "tags.run_type = 'search'")
    assert sorted(r.data.tags["attention"] for r in parents) == sorted(CELLS), "one search per cell"
    for parent in parents:
        trials = _runs(uri, EXPERIMENT, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        assert parent.info.status == "FINISHED" and len(trials) == 2, parent.data.tags
        assert sorted(r.data.tags["trial_number"] for r in trials) == ["0", "1"]
    assert not [r.info.run_name for r in _runs(uri, EXPERIMENT) if r.info.status == "RUNNING"]
    for run in train:  # the files are on the server, not on a shared disk
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model.pt", tracking_uri=uri)
        assert torch.load(path, map_location="cpu", weights_only=True), run.info.run_name
    summaries = [_summary(out) for out, _ in team_study.outputs]
    assert summaries[0] == summaries[1] and "resnet18-ga" in summaries[0], summaries
    print(f"two workers: {team_study.seconds:.0f} s")


def test_a_storage_password_appears_nowhere(team_study, team_servers):
    """The storage URL carries the database password: nothing the workers print, write, record in MLflow (params,
    tags, artifacts on the server) or in Optuna holds it."""
    import optuna

    password = team_study.password
    assert password in team_study.storage
    leaks = in_texts(password, {f"worker{i} {stream}": text for i, pair in enumerate(team_study.outputs)
                                for stream, text in zip(("stdout", "stderr"), pair, strict=True)})
    leaks += in_files(password, team_study.folders)
    leaks += in_mlflow(password, team_study.uri, artifacts=False) + in_files(password, [team_servers.artifacts])
    leaks += in_optuna(password, optuna.storages.RDBStorage(team_study.storage))
    assert not leaks
    assert "postgresql://team:***@" in team_study.outputs[0][0], "the start-up line names the storage, masked"


def _epoch(checkpoint: Path) -> int:
    trainer = torch.load(checkpoint, map_location="cpu", weights_only=True)["trainer"]
    return trainer["iteration"] // trainer["epoch_length"]


def _uploaded_checkpoint(folder: Path, artifacts: Path) -> list[Path]:
    """The checkpoint artifact of the run training in ``folder``, once the server has it."""
    infos = list(folder.glob("runs/*/*/run.json"))
    run_id = json.loads(infos[0].read_text()).get("run_id") if infos else None
    return list(artifacts.glob(f"*/{run_id}/artifacts/checkpoint_last.pt")) if run_id else []


def _no_other_host() -> str | None:
    """Why this machine cannot play another host (a UTS namespace with its own hostname), or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing"
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare --uts is not allowed here: {probe.stderr.strip()}"


def test_a_dead_workers_run_is_taken_over_from_another_host(team_study, team_servers, demo_data, tmp_path):
    """Worker A is killed hard in epoch 2 of a seed run; worker B, another host (its own UTS namespace and
    hostname) with its own empty folder, resumes the run from its checkpoint artifact into the same MLflow run, and
    it ends as the uninterrupted run of the same seed and parameters did in the two workers' study."""
    assert team_study.codes == [0, 0]
    reason = _no_other_host()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") == "true" else pytest.skip(reason)
    uri = team_study.uri
    parent = _runs(uri, EXPERIMENT, "tags.run_type = 'search' and tags.attention = 'none'")[0]
    reference = _runs(uri, EXPERIMENT, "tags.run_type = 'train' and tags.attention = 'none' and tags.seed = '0'")[0]
    params = json.loads(parent.data.tags["best_params"])
    storage = team_servers.new_database(f"takeover_{os.getpid()}_{free_port()}", "takeover-pw")
    config = _config(demo_data, "team-takeover", variants=["none"], seeds=[0], params={"resnet18-plain": params},
                     storage=storage, tracking_uri=uri, heartbeat_interval=1, grace_period=3)
    a, b = _worker_dir(tmp_path, "a", config), _worker_dir(tmp_path, "b", config)
    study = [sys.executable, "-m", "medattn_monai.cli", "study", "--config", "team.yaml"]

    found = sigkill_when(study, a, lambda: _uploaded_checkpoint(a, team_servers.artifacts),
                         "worker A's first checkpoint reaching the server", poll=0.05, timeout=600, OMP_NUM_THREADS="1")
    assert _epoch(found[0]) == 1, "A was killed during epoch 2"
    run_id = found[0].parent.parent.name
    client = mlflow.MlflowClient(uri)
    assert client.get_run(run_id).info.status == "RUNNING"

    other_host = ["unshare", "--uts", "bash", "-c", 'hostname worker-b && exec "$@"', "-", *study]
    done = subprocess.run(other_host, cwd=b, env=_env(team_servers.settings, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs: 1 resumed" in done.stdout, done.stdout[-2000:]
    runs = _runs(uri, "team-takeover", "tags.run_type = 'train'")
    assert [r.info.run_id for r in runs] == [run_id], "B resumed A's run, it trained no other"
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["evaluated"] == "true"
    assert (b / "runs" / "team-takeover" / runs[0].info.run_name / "checkpoint_last.pt").is_file()
    for key in runs[0].data.metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step: {steps}"
    for key in ("train_loss", "val_bacc"):
        got = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        want = {m.step: m.value for m in client.get_metric_history(reference.info.run_id, key)}
        assert sorted(got) == [1, 2] and got == pytest.approx(want, abs=1e-6), key
    assert runs[0].data.metrics["test_bacc"] == pytest.approx(reference.data.metrics["test_bacc"], abs=1e-6)


def test_training_survives_a_tracking_server_restart(team_servers, demo_data, tmp_path):
    """The tracking server is killed during epoch 2 and started again 3 s later (it then takes seconds to come up):
    the training goes on and its run ends FINISHED with every epoch's metrics."""
    uri = team_servers.tracking_url()
    cmd = [sys.executable, "-m", "medattn_monai.cli", "train", "--dataset_dir", str(demo_data.dataset_dir),
           "--datalist", str(demo_data.datalist), "--epochs", "2", "--image_size", "32", "--batch_size", "32",
           "--val_batch_size", "256", "--progress", "False", "--output_root", "runs", "--tracking_uri", uri,
           "--experiment_name", "team-restart"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env({}, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while not _uploaded_checkpoint(tmp_path, team_servers.artifacts):
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.05)
        team_servers.restart_mlflow(down_s=3)
        _, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    run = _runs(uri, "team-restart")[0]
    assert run.info.status == "FINISHED"
    client = mlflow.MlflowClient(uri)
    for key in ("train_loss", "val_bacc"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [1, 2], key
    assert "best_val_bacc" in run.data.metrics


def test_any_machine_evaluates_and_exports_a_run_by_its_id(team_study, team_servers, tmp_path):
    """docs/team.md's commands for any machine, in an empty folder: the run's files come from the server."""
    assert team_study.codes == [0, 0]
    run = _runs(team_study.uri, EXPERIMENT, "tags.run_type = 'train' and tags.seed = '1'")[0]
    before = len(mlflow.MlflowClient(team_study.uri).get_metric_history(run.info.run_id, "test_bacc"))
    run_block("any-machine", team_servers.settings, cwd=tmp_path, timeout=600, RUN_ID=run.info.run_id,
              OMP_NUM_THREADS="1")
    assert (tmp_path / "runs" / EXPERIMENT / run.info.run_name / "model.pt").is_file()
    assert (tmp_path / f"exported-{run.info.run_id}" / "configs" / "metadata.json").is_file()
    after = mlflow.MlflowClient(team_study.uri).get_metric_history(run.info.run_id, "test_bacc")
    assert len(after) == before + 1, "the evaluation was logged into the run on the server"


def test_an_unreachable_tracking_server_stops_a_command_at_once(demo_data, tmp_path):
    """No server behind the tracking URI: one line naming it (password masked) within MEDATTN_TRACKING_TIMEOUT
    seconds, a non-zero exit, nothing trained."""
    uri = f"http://alice:Pw-unreachable@127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "medattn_monai.cli", "train", "--dataset_dir", str(demo_data.dataset_dir),
           "--datalist", str(demo_data.datalist), "--epochs", "1", "--image_size", "32", "--progress", "False",
           "--output_root", "runs", "--tracking_uri", uri]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                                  "MEDATTN_TRACKING_TIMEOUT": "3"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("medattn: error:")]
    assert lines == [f"medattn: error: cannot reach the MLflow tracking server {uri.replace('Pw-unreachable', '***')}"
                     f" within 3 s: [Errno 111] Connection refused (is it running, and is the URL right? "
                     "MEDATTN_TRACKING_TIMEOUT sets how long to wait)"], done.stderr[-3000:]
    assert "Pw-unreachable" not in done.stdout + done.stderr
    assert time.monotonic() - start < 120
    assert not list(tmp_path.glob("runs/*/*/model.pt")), "nothing trained"
