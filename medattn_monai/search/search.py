"""``medattn search``: an Optuna hyper-parameter search over bundle trainings, each trial an MLflow child run.

Sampler TPE, pruner median (fed the key metric after every epoch by :class:`OptunaPruning`). The objective is the
trial's ``best_<key_metric>`` (``best_val_bacc``). A search is identified by its Optuna study name; any number of
workers (processes, machines) that run the same command on the same storage share its trials until ``n_trials``
trials are done (COMPLETE, PRUNED or RUNNING, or FAILED because the configuration is invalid). A trial whose
worker died is reconciled with its MLflow run (:mod:`.reconcile`): COMPLETE with its value if the run FINISHED,
else marked FAIL with its budget handed back, so rerunning a search after a crash finishes it and loses nothing.
Which mechanism tells a dead worker (Optuna's heartbeat on a database, ours on a journal): :mod:`.liveness`.

MLflow: the first worker opens the parent run (``run_type=search``); every trial is a child run of it
(``run_type=trial``, tags ``trial_number``, ``optuna_study``); the worker that ends the search (no trial left
running) logs ``best_<key_metric>``, tags ``best_trial`` and ``best_params`` and marks the parent FINISHED.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.bundles import DEFAULT_BUNDLE, bundle_configs, load_config
from ..engine.launch import plan_run, run_training
from ..errors import ConfigError, MedattnError, error_message, find_medattn_error
from ..tracking.mlflow_runs import create_run, end_run, final_status, log_params_once, open_client, reopen_run
from ..tracking.naming import cell_hash, network_label, unique_run_name
from ..tracking.run_folder import recorded_best_value
from ..tracking.store import mask_secrets
from .liveness import (
    GRACE_S,
    HEARTBEAT_S,
    check_liveness_settings,
    trial_heartbeat,
    trial_worker_dead,
    uses_optuna_heartbeat,
)
from .reconcile import TrialRecords, reconcile_trials, tell_outcome
from .space import SearchSpace, load_space, parse_enqueue
from .storage import STORAGE_TIMEOUT_S, default_storage, open_storage

__all__ = ["SearchResult", "search", "search_study_name"]

logger = logging.getLogger("medattn")
_NETWORK_KEYS = ("backbone", "attention", "baseline", "matched_to", "family")
_PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class SearchResult:
    """What a search found, and where it lives."""

    study_name: str
    storage: str
    key_metric: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    parent_run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    finished: bool = True

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.counts.items()))
        if self.best_value is None:
            return f"search {self.study_name}: no completed trial ({counts})"
        return (f"search {self.study_name}: best {self.key_metric} {self.best_value:.4f} (trial {self.best_trial}) "
                f"with {json.dumps(self.best_params)} ({counts})")


def search_study_name(experiment: str, network: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    """``<experiment>.<network label>.<hash>``: the hash covers everything the trials share (data, fixed
    hyper-parameters, trial seed, search space), so a changed setup never mixes into an older search's trials."""
    return f"{experiment}.{network_label(**network)}.{cell_hash(dict(identity), exclude=())[:8]}"


@dataclass
class _Setup:
    bundle: str
    overrides: dict[str, Any]
    space: SearchSpace
    attention: str
    backbone: str
    experiment: str
    tracking_uri: str | None
    key_metric: str
    facts: dict[str, Any]
    study_name: str
    storage: str
    fixed: dict[str, Any]
    defaults: dict[str, Any]


def _prepare(bundle: str, space: Any, storage: str | None, study_name: str | None,
             overrides: dict[str, Any]) -> _Setup:
    configs = bundle_configs(bundle, "train.json")
    parser = load_config(configs, **overrides)
    space = load_space(space)
    space.check_keys(set(parser.get()))
    fixed_keys = sorted(set(space.params) & set(overrides))
    if fixed_keys:
        logger.info("search: %s fixed by the command, not searched", fixed_keys)
        space = SearchSpace({k: v for k, v in space.params.items() if k not in fixed_keys}, space.source)
    backbone, attention = parser.get_parsed_content("backbone"), parser.get_parsed_content("attention")
    hyper = dict(parser.get_parsed_content("hyper_parameters"))
    datalist = parser.get_parsed_content("datalist_content")
    dataset = parser.get_parsed_content("dataset_name")
    experiment = parser.get_parsed_content("experiment_name")
    searched = set(space.applicable(attention, backbone))
    fixed = {k: v for k, v in hyper.items() if k not in searched}
    identity = {"dataset": dataset, "split_hash": datalist["split_hash"], "fixed": fixed,
                "space": space.to_dict()}
    network = {k: parser.get_parsed_content(k) for k in _NETWORK_KEYS}
    facts = dict(parser.get_parsed_content("network_facts"))
    tags = {k: facts.get(k) for k in _NETWORK_KEYS}
    tags.update(dataset=dataset, split_hash=datalist["split_hash"])
    return _Setup(
        bundle=bundle, overrides=overrides, space=space, attention=attention, backbone=backbone,
        experiment=experiment, tracking_uri=parser.get_parsed_content("tracking_uri"),
        key_metric=parser.get_parsed_content("key_metric"), facts=tags,
        study_name=study_name or search_study_name(experiment, network, identity),
        storage=storage or default_storage(parser.get_parsed_content("output_root")), fixed=fixed,
        defaults={k: hyper[k] for k in searched if k in hyper and space.contains(k, hyper[k])},
    )


def _open_parent(setup: _Setup, n_trials: int, settings: Mapping[str, Any]) -> str:
    """Create the search's parent MLflow run; returns its id."""
    client = open_client(setup.tracking_uri)
    tags = {**{k: v for k, v in setup.facts.items() if v is not None}, "run_type": "search",
            "optuna_study": setup.study_name, "optuna_storage": mask_secrets(setup.storage)}
    name = unique_run_name(f"search-{network_label(**{k: setup.facts.get(k) for k in _NETWORK_KEYS})}")
    run_id = create_run(client, setup.experiment, name, tags)
    log_params_once(client, run_id, {**setup.fixed, "n_trials": n_trials, **settings})
    client.log_dict(run_id, setup.space.to_dict(), "search_space.json")
    return run_id


def _study(setup: _Setup, storage: Any, sampler: Any, pruner: Any, n_trials: int, settings: Mapping[str, Any],
           enqueue: Sequence[Mapping[str, Any]]) -> tuple[Any, str]:
    """Create the Optuna study with its parent run, or join it (waiting briefly for its creator's parent run)."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    try:
        study = optuna.create_study(study_name=setup.study_name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="maximize")
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=setup.study_name, storage=storage, sampler=sampler, pruner=pruner)
    else:
        parent = _open_parent(setup, n_trials, settings)
        study.set_user_attr(_PARENT_ATTR, parent)
        study.set_user_attr("key_metric", setup.key_metric)
        for params in enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=True)
        return study, parent
    deadline = time.time() + 60
    while _PARENT_ATTR not in study.user_attrs:
        if time.time() > deadline:  # its creator died before opening the parent run: open it ourselves
            study.set_user_attr(_PARENT_ATTR, _open_parent(setup, n_trials, settings))
            break
        time.sleep(0.5)
    return study, study.user_attrs[_PARENT_ATTR]


def _counted(trial: Any) -> bool:
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) or (
        trial.state == TrialState.FAIL and trial.user_attrs.get("invalid", False))


def _budget_left(study: Any, n_trials: int) -> bool:
    return sum(_counted(t) for t in study.get_trials(deepcopy=False)) < n_trials


def _surplus(study: Any, trial: Any, n_trials: int) -> bool:
    # workers asking at the same moment may overshoot the budget: the first n_trials trial numbers win
    ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counted(t)]
    return len(ahead) >= n_trials


def _run_trial(setup: _Setup, study: Any, storage: Any, trial: Any, parent: str, gpus_per_run: int,
               pruner: dict[str, Any], heartbeat_interval: float = HEARTBEAT_S) -> None:
    """Train one trial and tell Optuna its outcome (value, PRUNED or FAIL; once, see :func:`tell_outcome`)."""
    import optuna
    from optuna.trial import TrialState

    params = setup.space.suggest(trial, setup.attention, setup.backbone)
    overrides = {
        **setup.overrides, **params, "run_type": "trial",
        "extra_tags": {**setup.overrides.get("extra_tags", {}), "mlflow.parentRunId": parent,
                       "trial_number": trial.number, "optuna_study": setup.study_name},
    }
    if gpus_per_run > 1:  # a plain description: torchrun's rank 0 reattaches to the trial in the storage
        pruning = {"storage": setup.storage, "study_name": setup.study_name, "trial_id": trial._trial_id,
                   "median_pruner": pruner}
    else:
        pruning = {"trial": trial}
    handler = {"_target_": "medattn_monai.search.pruning.OptunaPruning", "history": "@train#history", **pruning}
    overrides, run_dir = plan_run(setup.bundle, overrides)
    trial.set_user_attr("run_dir", str(Path(run_dir).resolve()))
    trial.set_user_attr("run_name", overrides["run_name"])
    logger.info("trial %d of %s: %s", trial.number, setup.study_name, json.dumps(params))
    with trial_heartbeat(storage, trial._trial_id, heartbeat_interval):
        try:
            run_training(setup.bundle, overrides, gpus_per_run, extra_handlers=[handler])
        except optuna.TrialPruned as e:
            logger.info("trial %d pruned: %s", trial.number, e)
            tell_outcome(study, storage, trial, TrialState.PRUNED)
            return
        except KeyboardInterrupt:
            tell_outcome(study, storage, trial, TrialState.FAIL)
            raise
        except Exception as e:  # a trial's failure is the search's data, not its end
            err = find_medattn_error(e)
            message = mask_secrets(error_message(err or e))
            trial.set_user_attr("error", message[:2000])
            trial.set_user_attr("invalid", isinstance(err, ConfigError))
            tell_outcome(study, storage, trial, TrialState.FAIL)
            if isinstance(err, ConfigError):
                logger.warning("trial %d: invalid configuration %s: %s", trial.number, params, message)
                return
            raise
    value = recorded_best_value(run_dir)
    if value is None:
        trial.set_user_attr("error", f"no {setup.key_metric} was recorded")
        tell_outcome(study, storage, trial, TrialState.FAIL)
        return
    tell_outcome(study, storage, trial, TrialState.COMPLETE, value)


def _finish_parent(setup: _Setup, study: Any, storage: Any, parent: str, status: str | None = None,
                   grace: float = GRACE_S) -> bool:
    """End the parent run when no live trial remains (the last worker out closes it); returns whether it did.

    Status: ``status`` if given (FAILED, KILLED: this worker stopped on an error), else FINISHED when some trial
    completed, else FAILED.
    """
    from optuna.trial import TrialState

    heartbeat = uses_optuna_heartbeat(storage)
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if not trial_worker_dead(t, grace, heartbeat)]
    if running:
        return False
    client = open_client(setup.tracking_uri)
    if client.get_run(parent).info.status != "RUNNING":
        return True  # closed already (a rerun of a finished search)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        client.log_metric(parent, f"best_{setup.key_metric}", float(best.value))
        client.set_tag(parent, "best_trial", str(best.number))
        client.set_tag(parent, "best_params", json.dumps(best.params, sort_keys=True))
        client.log_dict(parent, {"trial": best.number, "value": best.value, "params": best.params},
                        "best_params.json")
    end_run(client, parent, status or ("FINISHED" if complete else "FAILED"))
    return True


def _result(setup: _Setup, study: Any, parent: str, finished: bool) -> SearchResult:
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    complete = counts.get(TrialState.COMPLETE.name, 0) > 0
    best = study.best_trial if complete else None
    return SearchResult(setup.study_name, mask_secrets(setup.storage), setup.key_metric, best.value if best else None,
                        dict(best.params) if best else {}, best.number if best else None, parent, counts, finished)


def _work(setup: _Setup, study: Any, storage: Any, parent: str, n_trials: int, max_failures: int,
          gpus_per_run: int, pruner_args: dict[str, Any], records: TrialRecords, liveness: dict[str, int]) -> None:
    """This worker's share of the trials: reconcile the running ones with MLflow, then ask, train, tell, until the
    budget is spent."""
    import optuna

    failures = 0
    while True:
        changed = reconcile_trials(study, storage, records, liveness["grace_period"])
        if changed:
            logger.info("search %s: trials of stopped workers reconciled with MLflow: %s", setup.study_name, changed)
        if not _budget_left(study, n_trials):
            return
        client = open_client(setup.tracking_uri)
        if client.get_run(parent).info.status != "RUNNING":  # a finished search topped up with more trials
            reopen_run(client, parent, finished_too=True)
        trial = study.ask()
        if _surplus(study, trial, n_trials):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        try:
            _run_trial(setup, study, storage, trial, parent, gpus_per_run, pruner_args, liveness["heartbeat_interval"])
        except MedattnError:
            raise
        except Exception as e:  # crashed trials are retried up to max_failures
            failures += 1
            logger.warning("trial %d crashed (%d/%d): %s", trial.number, failures, max_failures,
                           mask_secrets(str(e)))
            if failures >= max_failures:
                raise


def search(
    bundle: str = DEFAULT_BUNDLE,
    n_trials: int = 20,
    space: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    sampler_seed: int | None = None,
    n_startup_trials: int = 5,
    n_warmup_steps: int = 1,
    enqueue: Any = None,
    enqueue_defaults: bool = False,
    gpus_per_run: int = 1,
    max_failures: int | None = None,
    heartbeat_interval: int = HEARTBEAT_S,
    grace_period: int = GRACE_S,
    storage_timeout: float = STORAGE_TIMEOUT_S,
    quiet: bool = False,
    **overrides: Any,
) -> SearchResult:
    """Search a bundle's hyper-parameters with Optuna; each trial is a tracked training (a child run).

    Longer than 60 lines because its docstring is the command's help; the body is a short sequence of steps.

    Start more workers by running the same command (same bundle, overrides, space and storage) in other
    processes or on other machines; they share the trials until ``n_trials`` are done.

    Args:
        bundle: bundle name or folder.
        n_trials: trials of the whole search, across all its workers (a rerun after a crash tops it up).
        space: search space file (YAML/JSON; default ``medattn_monai/search/default_space.yaml``).
        storage: Optuna storage: a journal file (default ``<output_root>/optuna.journal``; several processes on
            one machine) or a database URL such as ``postgresql://user:pass@host/optuna`` (several machines).
        study_name: Optuna study name (default ``<experiment>.<network>.<hash of the fixed setup>``).
        sampler_seed: seed of the TPE sampler; None draws one. Workers with the same seed propose the same
            parameters, so give each worker its own (or none).
        n_startup_trials: the median pruner judges a trial only after this many trials completed.
        n_warmup_steps: ... and only after this many epochs of the trial.
        enqueue: parameter sets to try first (JSON text, a JSON file, or a list of mappings).
        enqueue_defaults: try the bundle's defaults (where the space contains them) as the first trial, so the
            search never ends worse than the defaults it started from.
        gpus_per_run: devices per trial; above 1 each trial runs under ``torchrun``.
        max_failures: stop after this many crashed trials (default ``n_trials``); invalid configurations
            (e.g. heads that do not divide a layer's width) count as done trials instead.
        heartbeat_interval: seconds between a running trial's heartbeats (Optuna's on a database, ours on a
            journal: :mod:`.liveness`).
        grace_period: seconds without heartbeat after which another host takes a trial's worker for dead.
        storage_timeout: seconds to keep trying to reach a database storage before stopping with one line.
        quiet: do not print the result (a study prints its own summary).
        overrides: bundle config keys fixed for every trial (``--attention ga --epochs 10 --dataset_dir …``);
            a key given here is not searched.

    Returns:
        The :class:`SearchResult` (printed by the command).
    """
    import optuna

    if not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"n_trials must be a positive integer, got {n_trials!r}")
    check_liveness_settings(heartbeat_interval, grace_period)
    enqueued = parse_enqueue(enqueue)  # refused before anything is opened or written
    setup = _prepare(bundle, space, storage, study_name, overrides)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=min(10, max(1, n_trials // 2)))
    pruner_args = {"n_startup_trials": n_startup_trials, "n_warmup_steps": n_warmup_steps}
    pruner = optuna.pruners.MedianPruner(**pruner_args)
    settings = {"sampler": "TPE", "pruner": "median", "n_startup_trials": n_startup_trials,
                "n_warmup_steps": n_warmup_steps, "gpus_per_run": gpus_per_run, "bundle": bundle}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records = TrialRecords(setup.tracking_uri, setup.experiment, setup.study_name, setup.key_metric)
    opened = open_storage(setup.storage, heartbeat_interval, grace_period, records.stale_callback, storage_timeout)
    first = [setup.defaults] if enqueue_defaults and setup.defaults else []
    study, parent = _study(setup, opened, sampler, pruner, n_trials, settings, first + enqueued)
    status = None
    liveness = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    try:
        _work(setup, study, opened, parent, n_trials, n_trials if max_failures is None else max_failures,
              gpus_per_run, pruner_args, records, liveness)
    except BaseException as e:
        status = final_status(e)
        raise
    finally:
        finished = _finish_parent(setup, study, opened, parent, status, grace_period)
    result = _result(setup, study, parent, finished)
    if not quiet:
        print(result)
    return result
