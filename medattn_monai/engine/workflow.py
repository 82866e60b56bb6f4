"""``medattn train | resume | evaluate``: run a bundle's configs through MONAI's ``ConfigWorkflow``.

The same as ``python -m monai.bundle run …`` with the bundle's config files; these functions add the bookkeeping a
study needs: finding a run folder from an MLflow run id, resuming with the run's own settings, returning the run
folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..console import apply_engine_logging
from ..errors import ConfigError
from ..tracking.mlflow_runs import open_client, resumable_run
from ..tracking.run_folder import (
    BEST_MODEL,
    FINISHED_AT,
    RUN_INFO,
    fetch_run_folder,
    is_finished,
    read_run_info,
    resume_checkpoint,
)
from ..tracking.run_lock import lock_run_folder, unlock_run_folder
from ..tracking.store import remember_uri, unmask_uri
from .bundles import DEFAULT_BUNDLE, apply_overrides, bundle_configs, data_overrides, locate_bundle

__all__ = ["DATA_PATHS", "run_workflow", "train", "resume", "evaluate", "recorded_bundle"]

# run settings that may differ on resume (they do not change results)
_RESUMABLE_SETTINGS = ("cache", "num_workers", "amp", "channels_last", "compile", "retain_host_memory",
                       "val_batch_size", "feature_usage")
# where the data is on the machine that resumes (another machine may keep it elsewhere; the split must be the same)
DATA_PATHS = ("dataset_dir", "datalist")


def run_workflow(config_files: Sequence[str], workflow_type: str = "train", tracking: str | None = None,
                 extra_handlers: Sequence[Any] = (), **overrides: Any) -> Any:
    """Create, initialise, run and finalise a ``ConfigWorkflow``; returns the workflow (its parser has the config).

    Args:
        config_files: the bundle's config files (base first, overlays after).
        workflow_type: MONAI's workflow type (``train``, ``infer``).
        tracking: MONAI's ``--tracking`` option.
        extra_handlers: config items (``{"_target_": …}`` dicts, which may hold live objects) appended to
            ``train#handlers``, after the bundle's own: e.g. a hyper-parameter search's pruning handler.
        overrides: config keys; unknown keys are refused (a typo would otherwise silently do nothing).
    """
    from monai.bundle import ConfigWorkflow

    config_files = list(config_files)
    workflow = ConfigWorkflow(config_file=config_files, workflow_type=workflow_type, tracking=tracking,
                              meta_file=str(Path(config_files[0]).parent / "metadata.json"))
    apply_engine_logging()  # after the bundle's logging.conf: --verbose decides what the engines show
    apply_overrides(workflow.parser, config_files, overrides)
    if extra_handlers:
        workflow.parser["train#handlers"] = list(workflow.parser["train#handlers"]) + list(extra_handlers)
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    return workflow


def train(bundle: str = DEFAULT_BUNDLE, multi_gpu: bool = False, tracking: str | None = None, **overrides: Any) -> str:
    """Train a bundle; every ``--key value`` overrides that config key. Returns the run folder.

    Args:
        bundle: bundle name (``isic_attention_classification``, ``camelyon17_attention_classification``) or folder.
        multi_gpu: add the bundle's ``multi_gpu_train.json`` (launch under ``torchrun``).
        tracking: MONAI's ``--tracking`` option (``mlflow`` is accepted; the bundle tracks runs in any case).
        overrides: config keys, e.g. ``--attention ga --epochs 20 --seed 3``.
    """
    names = ["train.json"] + (["multi_gpu_train.json"] if multi_gpu else [])
    workflow = run_workflow(bundle_configs(bundle, *names), "train", tracking, **overrides)
    return str(workflow.parser.get_parsed_content("output_dir"))


def resume(run_id: str, output_root: str = "runs", tracking_uri: str | None = None, multi_gpu: bool = False,
           **settings: Any) -> str:
    """Continue an interrupted training from its last checkpoint into the same MLflow run; returns the run folder.

    From any machine that reaches the run's tracking server: a run whose folder is not here is fetched from its
    MLflow artifacts into ``<output_root>/<experiment>/<run name>`` (its checkpoint is uploaded as it trains, see
    ``medattn_monai/tracking/artifact_upload.py``).

    Args:
        run_id: the run's MLflow run id, or its run folder.
        output_root: where run folders live (to find one by run id, or to fetch it into).
        tracking_uri: the MLflow store (to find a run by id; needed with its password when ``run.json`` records
            the store with the password masked, unless ``MLFLOW_TRACKING_URI`` holds it).
        multi_gpu: add the bundle's ``multi_gpu_train.json`` (launch under ``torchrun``).
        settings: run settings to change (``cache``, ``num_workers``, ``amp``, …) and where the data is on this
            machine (``dataset_dir``, ``datalist``: the datalist must split the data as the run's did);
            hyper-parameters cannot change.
    """
    bad = [k for k in settings if k not in _RESUMABLE_SETTINGS + DATA_PATHS]
    if bad:
        raise ConfigError(f"resume can change only {_RESUMABLE_SETTINGS + DATA_PATHS}, not {bad}")
    remember_uri(tracking_uri)  # the store of run.json's record, whose password is masked there
    run_dir = fetch_run_folder(run_id, output_root, tracking_uri)
    info = read_run_info(run_dir)
    source = str(Path(run_dir) / RUN_INFO)
    missing = [k for k in ("params", "dataset_dir", "datalist", "output_root", "bundle_root") if k not in info]
    if missing or not isinstance(info["params"], dict):
        raise ConfigError(f"{source} is not a complete run record (it lacks {missing or ['params as a mapping']}): "
                          "the run cannot be resumed from it")
    data = {k: settings.pop(k, info[k]) for k in DATA_PATHS}
    _check_same_split(data["datalist"], info, source)
    recorded = {k: v for k, v in info.get("settings", {}).items() if k in _RESUMABLE_SETTINGS}
    # run.json is data (a run folder may come from anyone): nothing in it may become a MONAI expression
    overrides = data_overrides({
        **info["params"],
        **recorded,
        **data,
        "output_root": os.path.abspath(Path(run_dir).parent.parent),  # where the folder is now
        **({"tracking_uri": info["tracking_uri"], "experiment_name": info["experiment_name"]}
           if info.get("tracking_uri") else {}),
    }, source)
    if "tracking_uri" in overrides:  # run.json has it without its password: the real one is given, or refused here
        overrides["tracking_uri"] = unmask_uri(overrides["tracking_uri"], given=tracking_uri)
    _refuse_early(run_dir, info, overrides.get("tracking_uri"))
    overrides.update(settings, resume_from=os.path.abspath(run_dir))
    names = ["train.json"] + (["multi_gpu_train.json"] if multi_gpu else [])
    run_workflow(bundle_configs(recorded_bundle(info, source), *names), "train", **overrides)
    return run_dir


def _refuse_early(run_dir: str, info: dict[str, Any], tracking_uri: str | None) -> None:
    """What the bundle's handlers would refuse at the start of training (a FINISHED run, an unreadable checkpoint),
    refused before its data are loaded, and without touching the run."""
    resume_checkpoint(run_dir)
    unlock_run_folder(lock_run_folder(run_dir))  # refused now if another process is training it
    if info.get("run_id") and tracking_uri:
        resumable_run(open_client(tracking_uri), info["run_id"])
    elif is_finished(info):
        raise ConfigError(f"{run_dir} finished its training at {info[FINISHED_AT]}: nothing to resume (the run is "
                          "left as it was)")


def _check_same_split(datalist: str, info: dict[str, Any], source: str) -> None:
    """Refuse a datalist (given for this machine) whose split differs from the one the run was trained on."""
    if datalist == info.get("datalist") or not info.get("split_hash"):
        return
    from ..data import load_datalist

    found = load_datalist(datalist)["split_hash"]
    if found != info["split_hash"]:
        raise ConfigError(f"datalist {datalist} splits the data differently from the run's (split_hash {found}, "
                          f"{source} records {info['split_hash']}): a resumed run must train on the same split")


def recorded_bundle(info: dict[str, Any], source: str) -> str:
    """The folder of the bundle a run was trained with, found by its name among this installation's bundles.

    ``run.json`` records the bundle's folder, but a path read from a file never chooses which config files run
    (they execute code): only the folder's name is used.
    """
    name = Path(str(info.get("bundle_root", ""))).name
    if not name:
        raise ConfigError(f"{source} names no bundle_root")
    return locate_bundle(name)


def evaluate(run_id: str, splits: Sequence[str] | None = None, output_root: str = "runs",
             tracking_uri: str | None = None, **overrides: Any) -> str:
    """Evaluate a trained run on its test split(s) and log the metrics into its MLflow run; returns the run folder.

    Args:
        run_id: the run's MLflow run id, or its run folder (from any machine that reaches its tracking server: a run
            whose folder is not here is fetched from its artifacts, as :func:`resume` does).
        splits: splits to evaluate (default: the bundle's ``eval_splits``).
        output_root: where run folders live (to find one by run id).
        tracking_uri: the MLflow store (to find a run by id).
        overrides: more config keys (e.g. ``--val_batch_size 256``).
    """
    remember_uri(tracking_uri)  # the store of run.json's record, whose password is masked there
    run_dir = fetch_run_folder(run_id, output_root, tracking_uri, artifacts=(RUN_INFO, BEST_MODEL))
    info = read_run_info(run_dir)
    if splits is not None:
        overrides["eval_splits"] = list(splits) if not isinstance(splits, str) else [splits]
    bundle = recorded_bundle(info, str(Path(run_dir) / RUN_INFO))
    run_workflow(bundle_configs(bundle, "train.json", "evaluate.json"), "infer", run_dir=os.path.abspath(run_dir),
                 **overrides)
    return run_dir
