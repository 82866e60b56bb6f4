"""Where does a string (a known password) appear? In files under folders, in captured output, in an MLflow store
(run names, params, tags, artifacts) and in an Optuna storage (study and trial attributes). Generic, so any test that
runs commands against real servers can check that a secret leaked nowhere."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def in_files(secret: str, folders: Iterable[str | Path]) -> list[str]:
    """Files under ``folders`` whose bytes contain ``secret``."""
    needle = secret.encode()
    found = []
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path))
    return found


def in_texts(secret: str, texts: dict[str, str]) -> list[str]:
    """Names of the captured ``texts`` (``{"stdout": …}``) that contain ``secret``."""
    return [name for name, text in texts.items() if secret in (text or "")]


def in_mlflow(secret: str, tracking_uri: str, artifacts: bool = True) -> list[str]:
    """Places in the MLflow store of ``tracking_uri`` holding ``secret``: experiment names and tags, run names,
    params, tags, metric keys and, with ``artifacts``, the content of every artifact (downloaded; a caller that can
    read the server's artifact folder directly may scan it with :func:`in_files` instead)."""
    import mlflow
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient(tracking_uri)
    found = []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        if secret in f"{exp.name} {exp.tags} {exp.artifact_location}":
            found.append(f"experiment {exp.name}")
        for run in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=10_000):
            where = f"run {run.info.run_name} ({run.info.run_id})"
            data = run.data
            for kind, values in (("param", data.params), ("tag", data.tags), ("metric", data.metrics)):
                found += [f"{where} {kind} {k}" for k, v in values.items() if secret in f"{k} {v}"]
            if secret in (run.info.run_name or ""):
                found.append(f"{where} name")
            if not artifacts:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp,
                                                            tracking_uri=tracking_uri)
                found += [f"{where} artifact {Path(p).relative_to(local)}" for p in in_files(secret, [local])]
    return found


def in_optuna(secret: str, storage: Any) -> list[str]:
    """Study and trial attributes (user and system) and parameters of an Optuna storage holding ``secret``."""
    import optuna

    found = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        sid = storage.get_study_id_from_name(study.study_name)
        attrs = f"{storage.get_study_user_attrs(sid)} {storage.get_study_system_attrs(sid)}"
        if secret in f"{study.study_name} {attrs}":
            found.append(f"study {study.study_name}")
        for trial in study.get_trials(deepcopy=False):
            if secret in f"{trial.user_attrs} {trial.system_attrs} {trial.params}":
                found.append(f"study {study.study_name} trial {trial.number}")
    return found
