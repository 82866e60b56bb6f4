"""A test-only Ignite handler that records, per DDP rank, which samples the trainer and the validator saw.

Used by ``test_ddp.py`` through the launcher's ``extra_handlers`` (it must be importable in the ``torchrun``
children: the test puts this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
from ignite.engine import Engine, Events


class IndexRecorder:
    """Write ``rank<r>.json``: ``{"train": {epoch: [index, …]}, "val": {epoch: [index, …]}}``."""

    def __init__(self, out_dir: str, evaluator: Engine) -> None:
        self.out_dir, self.evaluator = Path(out_dir), evaluator
        self.seen: dict[str, dict[int, list[int]]] = {"train": {}, "val": {}}
        self.epoch = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record, "train")
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._record, "val")
        engine.add_event_handler(Events.COMPLETED, self._save)

    def _epoch(self, engine: Engine) -> None:
        self.epoch = engine.state.epoch

    def _record(self, engine: Engine, split: str) -> None:
        self.seen[split].setdefault(self.epoch, []).extend(int(i) for i in engine.state.batch["index"])

    def _save(self, engine: Engine) -> None:
        rank = dist.get_rank() if dist.is_initialized() else 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(self.seen))
