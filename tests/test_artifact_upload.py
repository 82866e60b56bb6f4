"""Checkpoint uploads in the background (``medattn_monai/tracking/artifact_upload.py``), with a stand-in MLflow
client: exactly the files of one checkpoint, in the order written, the newest checkpoint winning over one still
waiting, failures retried; and a run whose folder is not on this machine fetched from its artifacts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from medattn_monai.tracking import artifact_upload
from medattn_monai.tracking.artifact_upload import STAGING, CheckpointUploads, uploads_each_checkpoint


class FakeClient:
    """Records ``(name, content)`` of every upload; fails the first ``failures`` ones; may hold the first upload
    until ``release`` is set."""

    def __init__(self, failures: int = 0, hold: bool = False) -> None:
        self.uploads: list[tuple[str, bytes]] = []
        self.attempts = 0
        self.failures = failures
        self.started, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        self.attempts += 1
        self.started.set()
        self.release.wait(10)
        if self.attempts <= self.failures:
            raise ConnectionError("server restarting")
        self.uploads.append((Path(path).name, Path(path).read_bytes()))


def _write(folder: Path, **files: str) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name.replace("_pt", ".pt").replace("_json", ".json")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)  # as the checkpointer writes: a new file, never an edit
        paths.append(path)
    return paths


def test_which_runs_upload_every_checkpoint():
    assert uploads_each_checkpoint("http://mlflow:5000", "train")
    assert uploads_each_checkpoint("postgresql://db/mlflow", "train")
    assert not uploads_each_checkpoint("sqlite:////tmp/mlflow.db", "train"), "a local store has the folder beside it"
    assert not uploads_each_checkpoint("http://mlflow:5000", "trial"), "a search trial is never resumed"


def test_uploads_the_files_as_written_in_order_even_if_replaced_meanwhile(tmp_path):
    client = FakeClient(hold=True)
    uploads = CheckpointUploads(client, "run", tmp_path)
    uploads.submit(_write(tmp_path, run_json="info 1", model_pt="model 1", checkpoint_last_pt="ckpt 1"))
    assert client.started.wait(10)
    _write(tmp_path, model_pt="model 2")  # replaced while its upload waits: the staged version is uploaded
    client.release.set()
    assert uploads.close(timeout=30)
    assert client.uploads == [("run.json", b"info 1"), ("model.pt", b"model 1"), ("checkpoint_last.pt", b"ckpt 1")]
    assert uploads.is_uploaded(tmp_path / "checkpoint_last.pt") and not uploads.is_uploaded(tmp_path / "model.pt")
    assert not (tmp_path / STAGING).exists()


def test_a_newer_checkpoint_replaces_one_still_waiting(tmp_path):
    client = FakeClient(hold=True)
    uploads = CheckpointUploads(client, "run", tmp_path)
    uploads.submit(_write(tmp_path, run_json="info", model_pt="model 1", checkpoint_last_pt="ckpt 1"))
    assert client.started.wait(10)  # run.json is being uploaded; model 1 and ckpt 1 wait
    uploads.submit(_write(tmp_path, run_json="info", checkpoint_last_pt="ckpt 2"))
    uploads.submit(_write(tmp_path, run_json="info", model_pt="model 3", checkpoint_last_pt="ckpt 3"))
    client.release.set()
    assert uploads.close(timeout=30)
    assert client.uploads == [("run.json", b"info"), ("run.json", b"info"), ("model.pt", b"model 3"),
                              ("checkpoint_last.pt", b"ckpt 3")], "epoch 1's and 2's waiting files were skipped"


def test_a_failed_upload_is_retried_until_it_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact_upload, "_PAUSES", (0.01,))
    client = FakeClient(failures=3)
    uploads = CheckpointUploads(client, "run", tmp_path)
    uploads.submit(_write(tmp_path, model_pt="model", checkpoint_last_pt="ckpt"))
    assert uploads.close(timeout=30)
    assert client.uploads == [("model.pt", b"model"), ("checkpoint_last.pt", b"ckpt")] and client.attempts == 5


def test_close_gives_up_waiting_but_never_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact_upload, "_PAUSES", (0.01,))
    client = FakeClient(failures=10**9)
    uploads = CheckpointUploads(client, "run", tmp_path)
    uploads.submit(_write(tmp_path, checkpoint_last_pt="ckpt"))
    assert not uploads.close(timeout=0.5)
    assert not uploads.is_uploaded(tmp_path / "checkpoint_last.pt"), "the run's end uploads it once more"


def test_a_run_without_a_folder_here_is_fetched_from_its_artifacts(trained_run, tmp_path):
    """What another machine does with a run id: the run's files come from MLflow into
    <output_root>/<experiment>/<run name>, moved into place at once; a second call uses that folder."""
    from medattn_monai.tracking.run_folder import fetch_run_folder, read_run_info

    folder = fetch_run_folder(trained_run.info["run_id"], str(tmp_path / "runs"), trained_run.tracking_uri)
    assert Path(folder) == tmp_path / "runs" / "isic-demo" / trained_run.run_dir.name
    for name in ("model.pt", "checkpoint_last.pt"):
        assert (Path(folder) / name).read_bytes() == (trained_run.run_dir / name).read_bytes(), name
    assert read_run_info(folder)["run_id"] == trained_run.info["run_id"]
    assert sorted(p.name for p in Path(folder).parent.iterdir()) == [trained_run.run_dir.name], "no staging left"
    assert fetch_run_folder(trained_run.info["run_id"], str(tmp_path / "runs"), trained_run.tracking_uri) == folder


def test_a_foreign_folder_in_the_way_is_not_overwritten(trained_run, tmp_path):
    from medattn_monai.errors import ConfigError
    from medattn_monai.tracking.run_folder import fetch_run_folder

    mine = tmp_path / "runs" / "isic-demo" / trained_run.run_dir.name / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(ConfigError, match="exists but is not a run folder"):
        fetch_run_folder(trained_run.info["run_id"], str(tmp_path / "runs"), trained_run.tracking_uri)
    assert mine.read_text() == "mine" and len(list(mine.parent.iterdir())) == 1


def test_uploads_take_a_bounded_share_of_the_time(tmp_path, monkeypatch):
    """After uploading for u seconds the thread rests 9 u: checkpoints written meanwhile wait, and only the newest
    of them is uploaded; closing the uploads sends it at once."""
    import time

    monkeypatch.setattr(artifact_upload, "_MAX_SHARE", 0.1)
    client = FakeClient()
    slow = client.log_artifact
    client.log_artifact = lambda *a, **k: (time.sleep(0.3), slow(*a, **k))  # type: ignore[method-assign]
    uploads = CheckpointUploads(client, "run", tmp_path)
    uploads.submit(_write(tmp_path, checkpoint_last_pt="ckpt 1"))
    deadline = time.monotonic() + 10
    while not client.uploads and time.monotonic() < deadline:
        time.sleep(0.05)
    for n in (2, 3):  # during the rest (about 2.7 s)
        uploads.submit(_write(tmp_path, checkpoint_last_pt=f"ckpt {n}"))
    time.sleep(1.0)
    assert [content for _, content in client.uploads] == [b"ckpt 1"], "resting, not uploading"
    assert uploads.close(timeout=30)
    assert [content for _, content in client.uploads] == [b"ckpt 1", b"ckpt 3"]
