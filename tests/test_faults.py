"""Operational faults end in one ``medattn: error:`` line naming the place, leave no temporary file, and never turn a
healthy run FAILED: a full disk, a read-only store, a syntax error in a study config, quotes in names; artifacts
are copies of the run folder's files, not the same files."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest

from conftest import REPO, fresh_store, train_overrides
from medattn_monai.cli import main
from medattn_monai.errors import ConfigError, StorageError

_MB = 1 << 20


def _mount(args: list[str]) -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0 and subprocess.run(
        ["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 100 MB file system (tmpfs, where this process may mount one), else a folder whose children
    may write files of at most 80 MB (``RLIMIT_FSIZE``: writes beyond it fail with EFBIG, SIGXFSZ ignored).
    Either way the demo ResNet18's ``model.pt`` (45 MB) fits and its ``checkpoint_last.pt`` does not."""
    folder = tmp_path / "small"
    folder.mkdir()
    if _mount(["-t", "tmpfs", "-o", "size=100m", "tmpfs", str(folder)]):
        yield folder, None
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
        return
    if not hasattr(resource, "RLIMIT_FSIZE"):
        pytest.skip("this system can neither mount a small file system nor limit file sizes")

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (80 * _MB, 80 * _MB))

    yield folder, limit


def test_a_full_disk_ends_in_one_line_and_leaves_no_temporary_file(demo_data, small_disk, tmp_path):
    folder, limit = small_disk
    overrides = train_overrides(demo_data, tmp_path, epochs=1, output_root=str(folder / "runs"))
    proc = subprocess.run([sys.executable, "-m", "medattn_monai.cli", "train"]
                          + [f"--{k}={v}" for k, v in overrides.items()],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, preexec_fn=limit, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert last.startswith("medattn: error: cannot write ") and "checkpoint_last.pt: " in last, last
    assert "No space left on device" in last or "File too large" in last
    (run_dir,) = (folder / "runs").glob("*/*")
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.pt", "run.json"], "no temporary file is left"
    client = mlflow.MlflowClient(overrides["tracking_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("isic-demo").experiment_id])
    assert run.info.status == "KILLED" and "checkpoint_last.pt" in run.data.tags["error"], "interrupted, resumable"


def test_write_atomically_removes_its_temporary_file_and_keeps_the_old_one(tmp_path):
    from medattn_monai.tracking.atomic_write import temporary_path, write_atomically

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fails(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match=r"cannot write .*f.bin: No space left on device \(.* MB were left"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"old" and not temporary_path(target).exists()
    with pytest.raises(KeyboardInterrupt):  # an interruption is not a storage error, but cleans up all the same
        write_atomically(target, lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert target.read_bytes() == b"old" and not temporary_path(target).exists()


def _read_only(folder: Path) -> bool:
    """Make ``folder`` read-only for this process: its mode for a user, a read-only bind mount for root."""
    if os.geteuid() != 0:
        for path in folder.rglob("*"):
            path.chmod(0o444 if path.is_file() else 0o555)
        folder.chmod(0o555)
        return True
    return _mount(["--bind", str(folder), str(folder)]) and _mount(["-o", "remount,bind,ro", str(folder)])


def test_a_read_only_store_is_named_and_nothing_is_left(demo_data, tmp_path, capsys):
    overrides = train_overrides(demo_data, tmp_path, epochs=1)
    store = Path(unquote(urlparse(overrides["tracking_uri"]).path)).parent
    if not _read_only(store):
        pytest.skip("cannot make a folder read-only here (root without mount)")
    try:
        code = main(["train"] + [f"--{k}={v}" for k, v in overrides.items()])
    finally:
        if os.geteuid() == 0:  # lazily: MLflow keeps its database open in this process
            subprocess.run(["umount", "--lazy", str(store)], check=True)
        else:
            store.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(f"medattn: error: cannot write to the MLflow store "
                                                   f"{overrides['tracking_uri']}: ")
    assert not list(Path(overrides["output_root"]).glob("*/*")), "a run that never began leaves no folder"


def test_artifacts_are_copies_not_the_run_folders_files(trained_run):
    client = mlflow.MlflowClient(trained_run.tracking_uri)
    artifacts = Path(unquote(urlparse(client.get_run(trained_run.info["run_id"]).info.artifact_uri).path))
    for name in ("model.pt", "run.json", "checkpoint_last.pt"):
        ours, uploaded = trained_run.run_dir / name, artifacts / name
        assert uploaded.read_bytes() == ours.read_bytes(), name
        assert not os.path.samefile(ours, uploaded), f"{name}: editing one would change the other"


def test_copy_file_is_independent_and_leaves_nothing_on_failure(tmp_path):
    from medattn_monai.tracking.atomic_write import copy_file

    src, dest = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"x" * 3000)
    copy_file(src, dest)
    with open(src, "r+b") as f:  # edited in place, as an editor or torch.save over the file would
        f.write(b"y")
    assert dest.read_bytes() == b"x" * 3000
    with pytest.raises(StorageError, match="cannot write .*missing/b"):
        copy_file(src, tmp_path / "missing" / "b")


@pytest.mark.parametrize("name", ["it's mine", 'the "best" run', "ünïcødé-λ", "a%b_c*"])
def test_quoted_and_unicode_run_names_find_exactly_their_run(demo_data, tmp_path, name):
    from medattn_monai.tracking.mlflow_runs import create_run, open_client

    client = open_client(fresh_store(demo_data, tmp_path))
    create_run(client, "names", "other", {})
    create_run(client, "names", name, {})
    with pytest.raises(ConfigError, match="already exists"):
        create_run(client, "names", name, {})
    create_run(client, "names", name + "2", {})  # a longer name is another run


@pytest.mark.parametrize("name, message", [
    ("a'b\"c", "single or double quotes but not both"),
    ("a\\b", "no backslash"),
])
def test_names_mlflow_cannot_search_are_refused(demo_data, tmp_path, name, message):
    from medattn_monai.tracking.mlflow_runs import create_run, open_client

    client = open_client(fresh_store(demo_data, tmp_path))
    with pytest.raises(ConfigError, match=message):
        create_run(client, "names", name, {})
    assert client.get_experiment_by_name("names") is None, "the refusal created nothing"


@pytest.mark.parametrize("name, message", [
    ("../escape", "path separator"), ("a/b", "path separator"), ("..", "names a folder itself"), ("", "empty"),
    ("tab\there", "control character"), ("x" * 201, "longer than 200 bytes"),
])
def test_run_names_that_are_no_folder_name_are_refused(name, message):
    from medattn_monai.tracking.run_folder import output_dir_for

    with pytest.raises(ConfigError, match=f"run_name=.* cannot name a run folder: .*{message}"):
        output_dir_for(None, "runs", "isic", name)
    with pytest.raises(ConfigError, match="experiment_name="):
        output_dir_for(None, "runs", "../x", "fine")


@pytest.mark.parametrize("text, message", [
    ("name: x\nseeds: [0, 1\n", r"bad.yaml: not valid YAML: line 3, column 1: expected ',' or ']'"),
    ("- a\n- b\n", "a study config is a mapping of keys"),
    ("name: x\n\tseeds: [0]\n", "line 2, column 1: found character"),
])
def test_a_study_config_that_does_not_parse_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = main(["study", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("medattn: error: ")
    assert message in err.replace(str(tmp_path) + "/", "")


def test_an_unknown_flag_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["demo-data", "--root", str(tmp_path / "elsewhere")])
    err = capsys.readouterr().err
    assert code == 2 and "--root" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing was written with the defaults"


@pytest.mark.parametrize("key, value, message", [
    ("val_interval", 0, "val_interval must be at least 1"), ("num_workers", -3, "num_workers must be at least 0"),
    ("val_batch_size", 0, "val_batch_size must be at least 1"),
    ("cache_budget", 2, "cache_budget must be between 0.01 and 1.0"),
])
def test_out_of_range_run_settings_name_the_key(key, value, message):
    from medattn_monai.engine.config_keys import coerce

    with pytest.raises(ConfigError, match=message):
        coerce(key, value)


def test_a_negative_weight_decay_is_refused():
    import torch

    from medattn_monai.engine.training_setup import make_optimizer

    with pytest.raises(ConfigError, match="bad value for weight_decay: -1"):
        make_optimizer(torch.nn.Linear(2, 2), 0.001, -1)


def test_a_study_whose_out_is_a_file_is_refused_before_it_trains(tmp_path, capsys):
    out = tmp_path / "summary.txt"
    out.write_text("mine")
    code = main(["study", "--demo", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{out} cannot be the study's folder" in err and out.read_text() == "mine"


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    from medattn_monai.networks import summary

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(summary, "print_model_table", interrupted)
    assert main(["models", "--image_size", "64"]) == 130  # other than the stored default table: computed
    err = capsys.readouterr().err
    assert err.strip() == "medattn: interrupted: medattn models stopped"


def test_only_a_search_parent_may_reopen_a_finished_run(demo_data, tmp_path):
    from medattn_monai.tracking.mlflow_runs import create_run, open_client, reopen_run

    client = open_client(fresh_store(demo_data, tmp_path))
    run_id = create_run(client, "search", "parent", {})
    client.set_terminated(run_id, "FINISHED")
    with pytest.raises(ConfigError, match="already FINISHED: nothing to resume"):
        reopen_run(client, run_id)
    assert client.get_run(run_id).info.status == "FINISHED"
    reopen_run(client, run_id, finished_too=True)  # a finished search topped up with more trials
    assert client.get_run(run_id).info.status == "RUNNING"
