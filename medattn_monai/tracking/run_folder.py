"""A trained run: the one place that knows its folder, its files and how to rebuild its model.

A training writes ``<output_root>/<experiment>/<run name>/``:

- ``run.json`` (:data:`RUN_INFO`): what the run is: name, hyper-parameters, network arguments, classes, data
  paths, the MLflow run id, experiment and store when the run is tracked, and ``finished_at`` once its training
  completed (evaluation and inference pick the latest finished run of their dataset by default:
  :func:`resolve_run_dir`);
- ``model.pt`` (:data:`BEST_MODEL`): the best weights by the key metric, a plain ``state_dict``;
- ``checkpoint_last.pt`` (:data:`LAST_CHECKPOINT`): the full state after the last completed epoch (model,
  optimizer, scheduler, engine, and the run's history under ``"run"``).

The same files are the run's MLflow artifacts (``model.pt`` at the artifact root), so a run whose folder is not on
this machine (a team sharing one tracking server) is read from its artifacts: :func:`locate_run` finds a run by its
folder or its MLflow run id and downloads what is missing; :func:`load_network` rebuilds its network with its
weights.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .atomic_write import storage_error, write_atomically
from .store import mask_secrets

__all__ = [
    "BEST_MODEL", "FINISHED_AT", "LAST_CHECKPOINT", "RUN_INFO", "RunLocation", "check_classes",
    "damaged_file", "fetch_run_folder", "is_finished", "latest_run_dir", "load_checkpoint",
    "load_network", "locate_run", "mlflow_record", "output_dir_for", "read_run_info",
    "recorded_best_value", "resolve_run_dir", "resume_checkpoint", "unreadable_checkpoint",
    "update_run_info",
]

logger = logging.getLogger("medattn")

RUN_INFO = "run.json"
BEST_MODEL = "model.pt"
LAST_CHECKPOINT = "checkpoint_last.pt"
FINISHED_AT = "finished_at"  # run.json: when the training completed its last epoch (None while it runs)


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a run folder (see the module docstring)."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: {RUN_INFO} not found")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path} is not a run record: it holds a {type(info).__name__}, not an object")
    return info


def update_run_info(run_dir: str | Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``fields`` into the run folder's ``run.json`` (written atomically); returns the result."""
    path = Path(run_dir) / RUN_INFO
    info = read_run_info(run_dir) if path.is_file() else {}
    info.update(fields)
    text = (json.dumps(info, indent=1, default=str) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(path, e) from None
    write_atomically(path, lambda f: f.write(text))
    return info


def output_dir_for(resume_from: str | None, output_root: str, experiment: str, run_name: str) -> str:
    """The run folder: the resumed one, else ``<output_root>/<experiment>/<run_name>`` (names that are not plain
    folder names are refused: :func:`~medattn_monai.tracking.naming.check_run_name`)."""
    if resume_from:
        return str(resume_from)
    from .naming import check_run_name

    return os.path.join(output_root, check_run_name(experiment, "experiment_name"), check_run_name(run_name))


def resume_checkpoint(resume_from: str | None) -> str | None:
    """``checkpoint_last.pt`` of the run folder being resumed, if it has one (a run killed in epoch 1 has none)."""
    if not resume_from:
        return None
    if not Path(resume_from).is_dir():
        raise ConfigError(f"resume_from={resume_from!r} is not a run folder")
    path = Path(resume_from) / LAST_CHECKPOINT
    if not path.is_file():
        return None
    problem = damaged_file(path)
    if problem:
        raise unreadable_checkpoint(path, ValueError(problem))
    return str(path)


def damaged_file(path: str | Path) -> str | None:
    """Why a ``torch.save`` file cannot be loaded, found without loading it (None when it looks whole): it is a zip
    file whose index is at its end, so a truncated or overwritten one is told in no time."""
    try:
        with zipfile.ZipFile(path):
            return None
    except (OSError, zipfile.BadZipFile) as e:
        return str(e)


def unreadable_checkpoint(path: str | Path, error: BaseException) -> ConfigError:
    """The error of a ``checkpoint_last.pt`` that does not load: it names the file and the ways on."""
    return ConfigError(
        f"cannot resume from {path}: the file is truncated or corrupt ({str(error).splitlines()[0][:200]}); the run "
        f"is left as it was. Put back an earlier copy of it (e.g. the run's MLflow artifact {LAST_CHECKPOINT}, if "
        f"it is intact) and resume again, or train afresh under a new run_name ({BEST_MODEL} holds only the best "
        "weights, not the optimizer and schedule a resume needs)")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``checkpoint_last.pt`` (weights only) with its parts; an unreadable one is refused naming the file."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file raises many types
        raise unreadable_checkpoint(path, e) from None
    missing = [k for k in ("model", "optimizer", "trainer", "run") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise unreadable_checkpoint(path, ValueError(f"it lacks {missing}"))
    return ckpt


def recorded_best_value(run_dir: str | Path) -> float | None:
    """The run's best key-metric value (``best_val_bacc``) as its last checkpoint records it."""
    path = Path(run_dir) / LAST_CHECKPOINT
    if not path.is_file():
        return None
    value = load_checkpoint(path)["run"]["best_value"]
    return None if value is None else float(value)


def is_finished(info: Mapping[str, Any]) -> bool:
    """Whether the run's training completed every epoch (``run.json``'s ``finished_at``, set when it ends)."""
    return bool(info.get(FINISHED_AT))


def latest_run_dir(output_root: str, dataset_name: str | None = None) -> str:
    """The run folder under ``output_root`` that finished last, with a best model (of ``dataset_name`` if given).

    Only finished trainings count: a run still training, killed or failed is never picked by default (name it
    explicitly to use it anyway).
    """
    root = Path(output_root)
    runs = []
    for path in root.glob(f"*/*/{RUN_INFO}"):
        if not (path.parent / BEST_MODEL).is_file():
            continue
        info = read_run_info(path.parent)
        if is_finished(info) and (dataset_name is None or info.get("dataset_name") == dataset_name):
            runs.append((str(info[FINISHED_AT]), str(path.parent)))
    if not runs:
        what = f"finished {dataset_name} run" if dataset_name else "finished run"
        raise ConfigError(f"no {what} (a folder with {RUN_INFO}, {BEST_MODEL} and a completed training) under "
                          f"{root}: train one first, or pass --run_dir")
    return max(runs)[1]


def resolve_run_dir(run_dir: str | None, output_root: str, dataset_name: str) -> str:
    """The trained run a bundle evaluates or predicts with: ``run_dir`` when given, else the run of the bundle's
    own dataset that finished last under ``output_root``.

    Raises:
        ConfigError: no such run, or the run was trained on another dataset (naming both): a model of one
            dataset must never be applied to another's images.
    """
    if not run_dir:
        return latest_run_dir(output_root, dataset_name)
    info = read_run_info(run_dir)
    trained_on = info.get("dataset_name")
    if trained_on != dataset_name:
        raise ConfigError(f"run {run_dir} was trained on {trained_on} (classes {info.get('classes')}), but this "
                          f"bundle is for {dataset_name}: use the {trained_on} bundle's configs, or pass a run trained "
                          f"on {dataset_name}")
    return str(run_dir)


def check_classes(info: Mapping[str, Any], classes: Sequence[str], datalist: str) -> None:
    """Refuse a datalist whose classes differ from those the run was trained on, naming both."""
    if list(classes) != list(info.get("classes", [])):
        raise ConfigError(f"datalist {datalist} has classes {list(classes)}, but run {info.get('run_name')} was "
                          f"trained on {info.get('dataset_name')} with classes {info.get('classes')}")


def mlflow_record(client: Any, run_id: str) -> Any:
    """The MLflow run ``run_id`` of ``client``'s store; a clear error when the store has no such run."""
    try:
        return client.get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises several types for a missing run
        raise ConfigError(f"{run_id!r} is neither a run folder nor an MLflow run id in "
                          f"{mask_secrets(client.tracking_uri)}") from None


def _folder_of(client: Any, record: Any, output_root: str | Path) -> Path:
    """Where the run of MLflow ``record`` has its folder on this machine: ``<output_root>/<experiment>/<run name>``."""
    return Path(output_root) / client.get_experiment(record.info.experiment_id).name / record.info.run_name


def fetch_run_folder(run: str, output_root: str = "runs", tracking_uri: str | None = None,
                     artifacts: Sequence[str] = (RUN_INFO, BEST_MODEL, LAST_CHECKPOINT)) -> str:
    """The folder of a run on this machine, made from its MLflow artifacts when it is not here.

    A run folder (a path) or the folder ``<output_root>/<experiment>/<run name>`` of an MLflow run id is used as it
    is. Otherwise that folder is created from the run's ``artifacts`` (``run.json`` is required): how a worker on
    another machine takes a run over, a team sharing the tracking server but no file system. The files are
    downloaded into a hidden folder beside it and moved into place at once, so a kill leaves no half run folder.
    A folder here without ``checkpoint_last.pt`` (wanted in ``artifacts``) gets the run's uploaded one, if it has
    one, together with the ``model.pt`` uploaded before it (another machine trained the run further).

    Raises:
        ConfigError: neither a run folder nor a run id of the store, no ``run.json`` artifact, or the folder exists
            without ``run.json`` (it is not overwritten).
    """
    if Path(run, RUN_INFO).is_file():
        return str(run)
    if Path(run).exists():
        raise ConfigError(f"{run} is not a run folder: {RUN_INFO} not found")
    from .mlflow_runs import open_client

    client = open_client(tracking_uri)
    record = mlflow_record(client, run)
    folder = _folder_of(client, record, output_root)
    staging = folder.parent / f".{folder.name}.download-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    if (folder / RUN_INFO).is_file():
        if LAST_CHECKPOINT in artifacts and not (folder / LAST_CHECKPOINT).is_file():
            _download(client, record.info.run_id, staging, (LAST_CHECKPOINT, BEST_MODEL), required=())
            for name in (BEST_MODEL, LAST_CHECKPOINT):  # the order they were written in: see handlers/checkpoint.py
                if (staging / LAST_CHECKPOINT).is_file() and (staging / name).is_file():
                    os.replace(staging / name, folder / name)
            shutil.rmtree(staging, ignore_errors=True)
        return str(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists but is not a run folder ({RUN_INFO} missing): move it away to fetch "
                          f"run {run} ({record.info.run_name}) there")
    try:
        _download(client, record.info.run_id, staging, artifacts)
        if folder.exists():
            folder.rmdir()  # empty
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("run %s (%s) has no folder on this machine: %s downloaded from MLflow into %s", record.info.run_name,
                record.info.run_id, ", ".join(n for n in artifacts if (folder / n).is_file()), folder)
    return str(folder)


@dataclass(frozen=True)
class RunLocation:
    """Where a run's files are on this machine: its own folder, or a folder its artifacts were downloaded to."""

    run_dir: Path
    info: dict[str, Any]
    downloaded: bool = False

    @property
    def run_id(self) -> str | None:
        """The MLflow run id (None when the run was not tracked)."""
        return self.info.get("run_id")


def _download(client: Any, run_id: str, folder: Path, names: Sequence[str],
              required: Sequence[str] = (RUN_INFO,)) -> None:
    """The artifacts ``names`` of a run (at its artifact root) into ``folder``; those ``required`` must exist, the
    others may be missing. A store that cannot be read raises (a missing file is not taken for an outage)."""
    present = {Path(f.path).name for f in client.list_artifacts(run_id) if not f.is_dir}
    missing = [name for name in required if name not in present]
    if missing:
        raise ConfigError(f"run {run_id} has no run folder here and no {', '.join(missing)} artifact")
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in present:
            client.download_artifacts(run_id, name, str(folder))


def locate_run(run: str | Path, output_root: str = "runs", tracking_uri: str | None = None,
               download_dir: str | Path | None = None,
               artifacts: Sequence[str] = (RUN_INFO, BEST_MODEL)) -> RunLocation:
    """Find a run by its folder or its MLflow run id; download its ``artifacts`` when its folder is not here.

    Args:
        run: a run folder, or an MLflow run id (its folder is looked up as ``<output_root>/<experiment>/<name>``).
        output_root: where run folders live.
        tracking_uri: the MLflow store of a run id (default: see ``resolve_tracking_uri``).
        download_dir: where a run without a local folder is downloaded (default: a new temporary folder).
        artifacts: the files to download for such a run (``run.json`` is always needed).

    Raises:
        ConfigError: neither a run folder nor a run id of the store, or the run has no ``run.json`` artifact.
    """
    run = str(run)
    if Path(run, RUN_INFO).is_file():
        return RunLocation(Path(run), read_run_info(run))
    from .mlflow_runs import open_client

    client = open_client(tracking_uri)
    record = mlflow_record(client, run)  # a path that is not a run folder: its message says so
    run_dir = _folder_of(client, record, output_root)
    if Path(run_dir, RUN_INFO).is_file():
        return RunLocation(run_dir, read_run_info(run_dir))
    if Path(run).exists():
        raise ConfigError(f"run {run} ({record.info.run_name}) has no run folder at {run_dir}: pass the folder "
                          "instead")
    folder = Path(download_dir) if download_dir else Path(tempfile.mkdtemp(prefix=f"medattn-run-{run[:8]}-"))
    _download(client, record.info.run_id, folder, artifacts)
    logger.info("run %s has no folder under %s: its artifacts %s were downloaded to %s", run, output_root,
                ", ".join(artifacts), folder)
    return RunLocation(folder, read_run_info(folder), downloaded=True)


def load_network(location: RunLocation, device: Any = "cpu") -> Any:
    """The run's network rebuilt from ``run.json``'s ``network_args`` with the weights of ``model.pt``, in eval mode.

    Raises:
        ConfigError: the run has no ``model.pt`` (stopped before its first validation), or the network does not
            rebuild from its arguments with those weights exactly (a changed network, a corrupt file).
    """
    import torch

    from ..networks import build_network

    path = location.run_dir / BEST_MODEL
    label = f"{location.info.get('run_name', location.run_dir.name)} ({location.run_dir})"
    if not path.is_file():
        where = f"in {location.run_dir}"
        if location.downloaded:
            where += " (downloaded) nor among its MLflow artifacts"
        raise ConfigError(f"run {label} has no checkpoint: {BEST_MODEL} is not {where}; was the training stopped "
                          "before its first validation?")
    args = location.info.get("network_args")
    try:
        network = build_network(**args)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 - a bad argument, a changed network or a corrupt file: all refuse
        raise ConfigError(f"the network of run {label} cannot be rebuilt from run.json's network_args {args} "
                          f"with its {BEST_MODEL}: {e}") from None
    return network.to(device).eval()
