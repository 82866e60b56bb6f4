"""Optuna and MLflow agree on every trial, whatever stopped its worker.

A trial is a RUNNING Optuna trial and an MLflow run (``run_type=trial``, tags ``optuna_study`` and
``trial_number``). A worker can die between the two records: after its run FINISHED and before Optuna's ``tell``,
or in the middle of the training (the run then stays RUNNING). One rule puts them back in agreement, applied by
every worker before it asks for a trial (so on every restart), and by the stale-trial callback of Optuna's
heartbeat (:mod:`.liveness`):

- a RUNNING trial whose MLflow run FINISHED with ``best_<key metric>`` is COMPLETE with that value (its outcome is
  final, so this holds whether its worker lives or not); a run that ended KILLED by the pruner makes it PRUNED;
- any other trial whose worker is dead is failed, which gives its budget back to the search, and its MLflow run,
  if still RUNNING, is marked FAILED with the reason in its ``error`` tag.

Optuna's heartbeat fails a stale trial before calling the callback, and a finished trial cannot change state: there
a FINISHED run's result is kept as a new COMPLETE (or PRUNED) trial with the same parameters, value and user
attributes, plus ``recovered_from_trial``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from ..tracking.mlflow_runs import filter_literal, open_client
from .liveness import trial_worker_dead, uses_optuna_heartbeat

__all__ = ["TrialRecords", "reconcile_trials", "tell_outcome"]

logger = logging.getLogger("medattn")


class TrialRecords:
    """The MLflow runs of one search's trials, and what they say about each trial's outcome."""

    def __init__(self, tracking_uri: str | None, experiment: str, study_name: str, key_metric: str) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.study_name, self.key_metric = study_name, key_metric

    def runs(self) -> dict[int, Any]:
        """``trial number -> MLflow run`` (the newest, if a trial number was ever recorded twice)."""
        client = open_client(self.tracking_uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return {}
        query = f"tags.optuna_study = {filter_literal(self.study_name)} and tags.run_type = 'trial'"
        found: dict[int, Any] = {}
        for run in client.search_runs([exp.experiment_id], filter_string=query,
                                      order_by=["attributes.start_time DESC"]):
            number = run.data.tags.get("trial_number", "")
            if number.isdigit():
                found.setdefault(int(number), run)
        return found

    def outcome(self, run: Any) -> tuple[Any, float | None] | None:
        """``(state, value)`` that a trial's MLflow run records as final, or None (no final outcome)."""
        from optuna.trial import TrialState

        if run is None:
            return None
        value = run.data.metrics.get(f"best_{self.key_metric}")
        if run.info.status == "FINISHED" and value is not None:
            return TrialState.COMPLETE, float(value)
        if run.info.status == "KILLED" and run.data.tags.get("pruned") == "true":
            return TrialState.PRUNED, None
        return None

    def mark_failed(self, run: Any, number: int) -> None:
        """End a dead worker's RUNNING trial run FAILED (never left RUNNING), saying why."""
        if run is None or run.info.status != "RUNNING":
            return
        client = open_client(self.tracking_uri)
        client.set_tag(run.info.run_id, "error", f"its search worker stopped: trial {number} was failed as stale "
                                                 "and its budget returned to the search")
        client.set_terminated(run.info.run_id, status="FAILED")

    def stale_callback(self, study: Any, trial: Any) -> None:
        """Optuna's stale-trial callback: ``trial`` is FAIL already; keep a FINISHED run's result, else fail its
        run (see the module docstring)."""
        run = self.runs().get(trial.number)
        outcome = self.outcome(run)
        if outcome is None:
            self.mark_failed(run, trial.number)
            logger.info("search %s: trial %d of a worker without heartbeat failed", self.study_name, trial.number)
            return
        _add_copy(study, trial, *outcome)


def _add_copy(study: Any, trial: Any, state: Any, value: float | None) -> None:
    """Record the outcome of a trial that was failed meanwhile, as a new trial with its parameters and value."""
    import optuna

    copy = optuna.trial.create_trial(
        state=state, value=value, params=trial.params, distributions=trial.distributions,
        user_attrs={**trial.user_attrs, "recovered_from_trial": trial.number},
        intermediate_values=trial.intermediate_values)
    study.add_trial(copy)
    logger.info("search %s: trial %d was failed as stale, but its run ended %s: kept as a new trial",
                study.study_name, trial.number, state.name)


def tell_outcome(study: Any, storage: Any, trial: Any, state: Any, value: float | None = None) -> None:
    """Tell a trial's outcome once: a trial told already (by a worker that read its MLflow run) stays as it is; one
    failed as stale while its worker lived keeps its COMPLETE or PRUNED result as a new trial."""
    from optuna.trial import TrialState

    current = storage.get_trial(trial._trial_id)
    if current.state == TrialState.RUNNING:
        study.tell(trial, value, state=state, skip_if_finished=True)
    elif current.state == TrialState.FAIL and state in (TrialState.COMPLETE, TrialState.PRUNED):
        _add_copy(study, current, state, value)


def reconcile_trials(study: Any, storage: Any, records: TrialRecords, grace: float) -> dict[str, list[int]]:
    """Apply the module's rule to the RUNNING trials of ``study``; returns the trial numbers it changed, by outcome.

    Then, on a database storage with a heartbeat, Optuna fails the trials without heartbeat for ``grace_period``
    (calling :meth:`TrialRecords.stale_callback`).
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    heartbeat = uses_optuna_heartbeat(storage)
    changed: dict[str, list[int]] = {}
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    runs = records.runs() if running else {}
    for trial in running:
        run, outcome = runs.get(trial.number), records.outcome(runs.get(trial.number))
        try:
            if outcome is not None:
                storage.set_trial_user_attr(trial._trial_id, "mlflow_run_id", run.info.run_id)
                study.tell(trial.number, outcome[1], state=outcome[0], skip_if_finished=True)
                changed.setdefault(outcome[0].name.lower(), []).append(trial.number)
            elif trial_worker_dead(trial, grace, heartbeat):
                storage.set_trial_user_attr(trial._trial_id, "stale", True)
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                records.mark_failed(run, trial.number)
                changed.setdefault("failed", []).append(trial.number)
        except (UpdateFinishedTrialError, RuntimeError):
            pass  # another worker got there first
    if heartbeat:
        with warnings.catch_warnings():  # "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return changed
