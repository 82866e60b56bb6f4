"""Reseed every source of randomness at each epoch start from ``(seed, epoch)``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..data.augment import epoch_seed

__all__ = ["EpochSeeder"]


class EpochSeeder:
    """At ``EPOCH_STARTED``: seed torch, numpy and ``random`` from ``(seed, epoch)`` and call ``set_epoch`` on targets.

    Epoch ``e`` then draws the same random numbers whether the run was interrupted before it or not, which is what
    makes ``resume`` continue exactly like an uninterrupted run.

    Args:
        seed: the run's seed.
        targets: objects with ``set_epoch(epoch)`` (the batch augmentation, the loader's worker seeds).
    """

    def __init__(self, seed: int, targets: Sequence[Any] = ()) -> None:
        self.seed = int(seed)
        self.targets = [t for t in targets if t is not None]
        for t in self.targets:
            if not callable(getattr(t, "set_epoch", None)):
                raise ValueError(f"EpochSeeder target {t!r} has no set_epoch(epoch) method")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        s = epoch_seed(self.seed, epoch)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        for t in self.targets:
            t.set_epoch(epoch)
