"""Optuna pruning from inside a bundle training: report the key metric every epoch, stop hopeless trials.

Attached to the trainer (appended to ``train#handlers``), so at each epoch end it runs after validation and after
the run's :class:`~medattn_monai.handlers.RunHistory` has recorded the epoch. When the pruner says stop, it raises
``optuna.TrialPruned``; the bundle's MLflow tracker then ends the trial's run KILLED with the tag ``pruned=true``.

Under ``torchrun`` only rank 0 talks to the Optuna storage; it broadcasts the decision so every rank stops at the
same epoch (DDP would otherwise hang waiting for the rank that left).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from ..handlers.checkpoint import RunHistory

__all__ = ["OptunaPruning"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class OptunaPruning:
    """Ignite handler that reports ``history``'s key metric to an Optuna trial after every epoch.

    Args:
        history: the run's :class:`RunHistory` (``@train#history`` in the bundle).
        trial: the Optuna trial (in-process searches), or None with ``storage``, ``study_name`` and ``trial_id``
            (a trial run by another process, e.g. under ``torchrun``: rank 0 reattaches to it).
        storage: Optuna storage of the trial (see :func:`medattn_monai.search.open_storage`).
        study_name: Optuna study of the trial.
        trial_id: the trial's storage id (``trial._trial_id``).
        median_pruner: keyword arguments of the search's ``optuna.pruners.MedianPruner`` (a pruner lives in the
            process that created it, not in the storage, so a reattaching process builds the same one).
    """

    def __init__(self, history: RunHistory, trial: Any = None, storage: str | None = None,
                 study_name: str | None = None, trial_id: int | None = None,
                 median_pruner: dict[str, Any] | None = None) -> None:
        if trial is None and (storage is None or study_name is None or trial_id is None or median_pruner is None):
            raise ValueError("OptunaPruning needs a trial, or storage, study_name, trial_id and median_pruner")
        self.history = history
        self.trial = trial
        self.storage, self.study_name, self.trial_id = storage, study_name, trial_id
        self.median_pruner = median_pruner

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def _trial(self) -> Any:
        if self.trial is None:
            import optuna

            from .storage import open_storage

            study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage),
                                      pruner=optuna.pruners.MedianPruner(**self.median_pruner))
            self.trial = optuna.trial.Trial(study, self.trial_id)
        return self.trial

    def _should_prune(self, epoch: int, last: bool) -> bool:
        value = self.history.epochs.get(epoch, {}).get(self.history.key_metric)
        if value is None:  # no validation this epoch (val_interval > 1): nothing to judge
            return False
        trial = self._trial()
        trial.report(float("nan") if math.isnan(value) else float(value), epoch)
        # after the last epoch there is nothing left to save: the trial completes with its value
        return not last and bool(trial.should_prune())

    def epoch_completed(self, engine: Engine) -> None:
        import optuna

        epoch = engine.state.epoch
        last = epoch >= engine.state.max_epochs
        if _distributed():
            rank0 = dist.get_rank() == 0
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            decision = torch.tensor([int(self._should_prune(epoch, last)) if rank0 else 0], device=device)
            dist.broadcast(decision, src=0)
            prune = bool(decision.item())
        else:
            prune = self._should_prune(epoch, last)
        if prune:
            value = self.history.epochs.get(epoch, {}).get(self.history.key_metric, float("nan"))
            raise optuna.TrialPruned(f"trial pruned after epoch {epoch}: {self.history.key_metric} {value:.4f} is "
                                     "below the median of earlier trials at this epoch (not an error)")
