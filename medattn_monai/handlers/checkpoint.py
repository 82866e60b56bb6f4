"""Checkpoints every epoch into the run folder (its files: :mod:`medattn_monai.tracking.run_folder`):
``checkpoint_last.pt`` (full state) and ``model.pt`` (best weights by the key metric), and ``run.json`` at the start.

Both files are plain ``state_dict``s, written atomically (a SIGKILL mid-write leaves the previous file intact) from
a copy of the state, on GPU by a background thread so training goes on while they are written, and load with
``torch.load(..., weights_only=True)``. The run's :class:`RunHistory` (per-epoch metrics, best value) is
saved in ``checkpoint_last.pt`` under ``"run"``, so a resumed run knows its past.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from ..errors import ConfigError, StorageError
from ..tracking.atomic_write import temporary_path, write_atomically
from ..tracking.run_folder import (
    BEST_MODEL,
    FINISHED_AT,
    LAST_CHECKPOINT,
    RUN_INFO,
    is_finished,
    load_checkpoint,
    read_run_info,
    update_run_info,
)

__all__ = ["RunHistory", "RunCheckpointer", "unwrap_model", "usable_cores"]


def unwrap_model(net: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside DDP / ``torch.compile`` wrappers (so saved keys never carry ``module.``)."""
    while True:
        if isinstance(net, torch.nn.parallel.DistributedDataParallel):
            net = net.module
        elif hasattr(net, "_orig_mod"):
            net = net._orig_mod
        else:
            return net


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file (:func:`write_atomically`): a failed write (a full disk) leaves the
    previous file and no temporary one, and names the file and how to go on."""
    try:
        write_atomically(path, lambda f: torch.save(obj, f))
    except StorageError as e:
        kept = "the previous one is kept" if path.exists() else "nothing half-written is left"
        raise StorageError(f"{e}; {kept}: make room, then `medattn resume {path.parent}` continues from the run's "
                           "last checkpoint") from None


def _snapshot(obj: Any) -> Any:
    """A copy of a (nested) state dict whose tensors no longer change with training (on the CPU)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, _snapshot(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _is_rank0() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class RunHistory:
    """The per-epoch metrics of a run and its best key metric; saved in ``checkpoint_last.pt`` under ``"run"``.

    Args:
        key_metric: the metric that selects the best epoch (higher is better).
    """

    def __init__(self, key_metric: str = "val_bacc") -> None:
        self.key_metric = key_metric
        self.epochs: dict[int, dict[str, float]] = {}
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def record(self, epoch: int, metrics: Mapping[str, float], select: bool = True) -> bool:
        """Store an epoch's metrics; returns whether it is the new best (always, when ``select`` is False)."""
        self.epochs[epoch] = dict(metrics)
        value = metrics.get(self.key_metric)
        improved = not select or (
            value is not None and not math.isnan(value) and (self.best_value is None or value > self.best_value)
        )
        if improved:
            self.best_value, self.best_epoch = value, epoch
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": {int(e): dict(m) for e, m in self.epochs.items()},
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs = {int(e): {k: float(v) for k, v in m.items()} for e, m in state["history"].items()}
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]


class RunCheckpointer:
    """Save the run's state at every epoch end, after validation.

    Args:
        output_dir: the run's folder.
        network: the trained network.
        optimizer: its optimizer.
        history: the run's :class:`RunHistory` (shared with the tracker and the epoch summary).
        lr_scheduler: its scheduler (stepped per iteration).
        evaluator: the validation engine whose ``state.metrics`` holds the key metric (None: no model selection,
            ``model.pt`` is the last epoch's weights).
        train_metrics: names in the trainer's ``state.metrics`` to record per epoch (e.g. ``train_loss``).
        resume_path: a ``checkpoint_last.pt`` to restore at ``STARTED`` (model, optimizer, scheduler, trainer
            epoch/iteration and the history), so training continues after its last completed epoch.
        run_info: facts about the run written to ``run.json`` at ``STARTED`` (evaluation and inference rebuild the
            network and preprocessing from them); its ``params`` are the hyper-parameters.
        resume: this run continues the run folder's earlier training: its recorded hyper-parameters must equal
            ``run_info["params"]`` (a resumed run must be the run it continues).
        background: write the files in a background thread while training goes on; ``"auto"``: when the network
            is on a GPU or a CPU core is left over beside PyTorch's compute threads. Otherwise the writer would
            take a core from the compute threads, which all wait for the slowest: on 2 cores a background write
            measured about 1 s of a 17 s DenseNet-121 run, more than writing in the training thread.

    Attach it after MONAI's ``ValidationHandler`` so the epoch's validation metrics exist when it runs.
    """

    def __init__(self, output_dir: str, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 history: RunHistory, lr_scheduler: Any = None, evaluator: Engine | None = None,
                 train_metrics: tuple[str, ...] = ("train_loss",), resume_path: str | None = None,
                 run_info: Mapping[str, Any] | None = None, resume: bool = False,
                 background: bool | str = "auto") -> None:
        self.output_dir = Path(output_dir)
        self.network, self.optimizer, self.lr_scheduler = network, optimizer, lr_scheduler
        self.evaluator = evaluator
        self.history = history
        self.train_metrics = tuple(train_metrics)
        self.resume_path = resume_path
        self.run_info = dict(run_info or {})
        self.resume = resume
        self.background = background
        self.trainer: Engine | None = None
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        self._listeners: list[Callable[[list[Path]], None]] = []

    @property
    def last_path(self) -> Path:
        return self.output_dir / LAST_CHECKPOINT

    @property
    def best_path(self) -> Path:
        return self.output_dir / BEST_MODEL

    def attach(self, engine: Engine) -> None:
        self.trainer = engine
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def wait(self, engine: Engine | None = None) -> None:
        """Block until the last checkpoint is on disk; re-raises a write error."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_error is not None:
            error, self._write_error = self._write_error, None
            raise error

    def add_listener(self, listener: Callable[[list[Path]], None]) -> None:
        """Call ``listener(paths)`` with each checkpoint's files once they are on disk (in the thread that wrote
        them: keep it short), e.g. to upload them (:mod:`medattn_monai.tracking.artifact_upload`)."""
        self._listeners.append(listener)

    def _written(self, paths: list[Path]) -> None:
        for listener in self._listeners:
            listener(paths)

    def _in_background(self) -> bool:
        if self.background != "auto":
            return bool(self.background)
        if any(p.is_cuda for p in self.network.parameters()):
            return True
        return usable_cores() > torch.get_num_threads()

    def _write(self, files: list[tuple[Any, Path]]) -> None:
        """Write ``(state, path)`` pairs, in order, in the training thread or a background one (one at a time)."""
        self.wait()
        if not self._in_background():
            for obj, path in files:
                _atomic_save(obj, path)
            self._written([path for _, path in files])
            return

        def run() -> None:
            try:
                for obj, path in files:
                    _atomic_save(obj, path)
                self._written([path for _, path in files])
            except BaseException as e:  # noqa: BLE001 - raised in the training thread by wait()
                self._write_error = e

        # not a daemon: the interpreter finishes the write before it exits
        self._writer = threading.Thread(target=run, name="checkpoint-writer")
        self._writer.start()

    def started(self, engine: Engine) -> None:
        """Check a resume (same hyper-parameters), restore its checkpoint, then write ``run.json``: in this order, so
        a refused resume leaves the run folder as it was."""
        if self.resume:
            self.check_resume()
        elif (self.output_dir / RUN_INFO).is_file():  # another run's folder: a new training would overwrite its files
            other = read_run_info(self.output_dir).get("run_name", self.output_dir.name)
            raise ConfigError(f"{self.output_dir} already holds run {other!r}: resume it (`medattn resume "
                              f"{self.output_dir}`) or choose another run_name; nothing was written")
        if self.resume_path:
            self.restore(engine)
        self.write_run_info(engine)
        if _is_rank0():  # what a process killed mid-write left (a failed write removes its own)
            for name in (LAST_CHECKPOINT, BEST_MODEL):
                temporary_path(self.output_dir / name).unlink(missing_ok=True)

    def check_resume(self) -> None:
        """Refuse to continue a run with other hyper-parameters (it must be the run it continues), or an untracked
        run whose training already finished (a tracked one: its MLflow status decides)."""
        recorded_info = read_run_info(self.output_dir)
        recorded = recorded_info.get("params", {})
        wanted = self.run_info.get("params", {})
        diff = {k: (recorded.get(k), wanted.get(k)) for k in set(recorded) | set(wanted)
                if recorded.get(k) != wanted.get(k)}
        if diff:
            listed = ", ".join(f"{k}: {a!r} (run) vs {b!r} (now)" for k, (a, b) in sorted(diff.items()))
            raise ConfigError(f"cannot resume {self.output_dir} with other hyper-parameters: {listed}")
        if is_finished(recorded_info) and not recorded_info.get("run_id"):
            raise ConfigError(f"{self.output_dir} finished its training at {recorded_info[FINISHED_AT]}: nothing to "
                              "resume (the run is left as it was)")

    def write_run_info(self, engine: Engine) -> None:
        if _is_rank0():  # not finished (again) until this training completes
            update_run_info(self.output_dir, {**self.run_info, FINISHED_AT: None})

    def completed(self, engine: Engine) -> None:
        """Wait for the last checkpoint, then record in ``run.json`` that the training finished (and when):
        evaluation and inference default to the latest finished run of their dataset."""
        self.wait()
        if _is_rank0():
            finished = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            update_run_info(self.output_dir, {FINISHED_AT: finished})

    def restore(self, engine: Engine) -> None:
        """Load ``resume_path`` into the network, optimizer, scheduler, engine state and history."""
        self.wait()
        ckpt = load_checkpoint(self.resume_path)
        unwrap_model(self.network).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in ckpt:
            self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        max_epochs = engine.state.max_epochs
        engine.load_state_dict(ckpt["trainer"])
        if engine.state.epoch > max_epochs:
            raise ConfigError(
                f"{self.resume_path} is at epoch {engine.state.epoch}, beyond the configured epochs={max_epochs}"
            )
        engine.state.max_epochs = max_epochs  # the configuration decides how long training goes
        self.history.load_state_dict(ckpt["run"])

    def epoch_metrics(self, engine: Engine) -> dict[str, float]:
        metrics = {k: float(engine.state.metrics[k]) for k in self.train_metrics if k in engine.state.metrics}
        if self.evaluator is not None and self.evaluator.state is not None:
            metrics.update({k: float(v) for k, v in self.evaluator.state.metrics.items() if _is_number(v)})
        return metrics

    def epoch_completed(self, engine: Engine) -> None:
        improved = self.history.record(engine.state.epoch, self.epoch_metrics(engine),
                                       select=self.evaluator is not None)
        if not _is_rank0():
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        state = _snapshot({
            "model": unwrap_model(self.network).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": dict(engine.state_dict()),
            "run": self.history.state_dict(),
            **({"lr_scheduler": self.lr_scheduler.state_dict()} if self.lr_scheduler is not None else {}),
        })
        # the last checkpoint is written last: it never claims an epoch whose best model is not on disk
        self._write(([(state["model"], self.best_path)] if improved else []) + [(state, self.last_path)])


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
