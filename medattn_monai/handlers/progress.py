"""What the user sees while training: a progress bar per epoch and one summary line per epoch."""

from __future__ import annotations

import logging
import time
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar

__all__ = ["TrainingProgressBar", "EpochSummary"]

logger = logging.getLogger("medattn")


class TrainingProgressBar(ProgressBar):
    """Ignite's tqdm progress bar showing the running loss; attach it like any MONAI handler."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("persist", False)
        kwargs.setdefault("desc", "train")
        super().__init__(**kwargs)

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("output_transform",
                          lambda out: {"loss": out["loss"].item()} if isinstance(out, dict) else out)
        super().attach(engine, *args, **kwargs)


class EpochSummary:
    """Logs one line per epoch: the epoch's metrics, the best key metric so far and the time taken.

    Args:
        history: the run's :class:`~medattn_monai.handlers.RunHistory`.
        output_dir: the run folder, named when the training starts (the bundles pass it when MLflow does not record
            the run; otherwise :class:`~medattn_monai.handlers.MLflowTracker` names it with the MLflow run).
    """

    def __init__(self, history: Any, output_dir: str | None = None) -> None:
        self.history = history
        self.output_dir = output_dir
        self._t0 = time.perf_counter()

    def attach(self, engine: Engine) -> None:
        if self.output_dir:
            engine.add_event_handler(Events.STARTED, lambda _: logger.info("run folder %s", self.output_dir))
        engine.add_event_handler(Events.EPOCH_STARTED, self._start)
        # registered at STARTED so it runs after validation and checkpointing
        engine.add_event_handler(Events.STARTED, self._register)

    def _register(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        epoch, total = engine.state.epoch, engine.state.max_epochs
        h = self.history
        parts = [f"{k} {v:.4f}" for k, v in h.epochs.get(epoch, {}).items()]
        if h.best_value is not None:
            parts.append(f"best {h.key_metric} {h.best_value:.4f} (epoch {h.best_epoch})")
        logger.info("epoch %d/%d  %s  [%.1f s]", epoch, total, "  ".join(parts), time.perf_counter() - self._t0)
