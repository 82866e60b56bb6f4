"""Feature usage during training: the label-stratified permutation test on the validation outputs, every N epochs.

Attached to the validation evaluator, the handler collects the class probabilities of each validation run and, on
the epochs it is due, tests every configured feature (:func:`~medattn_monai.explain.feature_usage_table`). The
p-values go into the evaluator's ``state.metrics`` as ``fu_p_<feature>``: the run's history records them with the
epoch's validation metrics, and the bundle's MLflow tracker logs them into the training run with step = epoch
(logged once per step, resumed runs included), so the MLflow UI shows how usage develops over training.

The handler draws its permutations from its own seeded generator: it changes nothing about the training, whose
randomness is reseeded from (seed, epoch) anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from ignite.engine import Engine, Events

from ..errors import ConfigError
from ..handlers.predictions import EvaluatorOutputs
from .analysis_run import metric_key
from .feature_usage_table import feature_frame, feature_usage_table

__all__ = ["FeatureUsageHandler", "feature_usage_handler"]

logger = logging.getLogger("medattn")


class FeatureUsageHandler:
    """Ignite handler for a validation evaluator: every ``every`` epochs, ``fu_p_<feature>`` per feature.

    Args:
        items: the validation split's items (the evaluator's ``dataset.data``): each has ``index`` (its position,
            which the batches carry), ``label`` and the feature fields.
        features: item fields to test.
        every: test on epochs ``every``, ``2·every``, … (the evaluator must run on those epochs: ``val_interval``).
        n_permutations: permutations per feature (1000 resolve p down to 0.001 at a fraction of a second).
        seed: permutation seed.
        kinds: optional encoding per feature (``binary``, ``categorical``, ``continuous``).
        pred_key: key of the logits in the evaluator's output.

    Raises:
        ConfigError: no features, or ``every`` < 1.
        DataError: a feature is in no item.
    """

    def __init__(self, items: Sequence[Mapping[str, Any]], features: Sequence[str], every: int = 1,
                 n_permutations: int = 1000, seed: int = 0, kinds: Mapping[str, str] | None = None,
                 pred_key: str = "pred") -> None:
        self.features = [str(f) for f in features]
        if not self.features:
            raise ConfigError("feature_usage needs at least one feature")
        if int(every) < 1:
            raise ConfigError(f"feature_usage every must be >= 1, got {every}")
        self.every = int(every)
        self.n_permutations = int(n_permutations)
        self.seed = int(seed)
        self.kinds = dict(kinds or {})
        self.position = {int(item.get("index", i)): i for i, item in enumerate(items)}
        self.labels = np.array([int(item["label"]) for item in items])
        self.frame = feature_frame(items, self.features)
        self.keys = {f: metric_key("fu_p", f) for f in self.features}
        self.last_table: pd.DataFrame | None = None
        self.outputs = EvaluatorOutputs(pred_key)

    def attach(self, engine: Engine) -> None:
        self.outputs.attach(engine)
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        for key in self.keys.values():  # no stale value from an earlier epoch is recorded for this one
            engine.state.metrics.pop(key, None)

    def _completed(self, engine: Engine) -> None:
        epoch = engine.state.epoch  # MONAI's evaluator runs as epoch N of the training
        if epoch % self.every or not len(self.outputs):
            return
        probs, indices, _ = self.outputs.gathered()  # from every rank, in split order
        rows = np.array([self.position[int(i)] for i in indices])
        rows, first = np.unique(rows, return_index=True)  # a padded duplicate counts once
        table = feature_usage_table(probs[first], self.frame.iloc[rows].reset_index(drop=True), self.labels[rows],
                                    n_permutations=self.n_permutations, seed=self.seed, kinds=self.kinds)
        for feature, p in zip(table["feature"], table["p"], strict=True):
            engine.state.metrics[self.keys[feature]] = float(p)
        self.last_table = table
        logger.debug("epoch %d feature usage:\n%s", epoch, table.to_string(index=False))


def feature_usage_handler(items: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> FeatureUsageHandler:
    """The handler from the bundle's ``feature_usage`` key: ``{"features": [...], "every": 1, "n_permutations":
    1000, "seed": 0, "kinds": {}}`` (missing keys take these defaults)."""
    allowed = {"features", "every", "n_permutations", "seed", "kinds"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(f"feature_usage has unknown key(s) {unknown}; known: {sorted(allowed)}")
    return FeatureUsageHandler(items, **dict(settings))

