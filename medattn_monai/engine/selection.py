"""Model selection on a chosen validation split: which split the per-epoch validator reads for a key metric.

The ISIC bundle validates on ``validation`` (``val_bacc``). Camelyon17 also offers WILDS' out-of-distribution
validation hospital: ``key_metric: val_ood_bacc`` validates every epoch on ``val_ood`` instead and keeps the model
that is best there (WILDS' OOD model-selection protocol); evaluation reports every split either way.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..metrics.balanced_accuracy import BalancedAccuracy

__all__ = ["SELECTION_SPLITS", "selection_split", "selection_metric"]

# key metric -> the split the per-epoch validator evaluates
SELECTION_SPLITS = {"val_bacc": "validation", "val_ood_bacc": "val_ood"}


def selection_split(key_metric: str) -> str:
    """The split whose balanced accuracy ``key_metric`` is."""
    if key_metric not in SELECTION_SPLITS:
        raise ConfigError(f"key_metric={key_metric!r} is not one of {list(SELECTION_SPLITS)}")
    return SELECTION_SPLITS[key_metric]


def selection_metric(key_metric: str, num_classes: int) -> dict[str, BalancedAccuracy]:
    """The validator's ``key_val_metric``: balanced accuracy under the name ``key_metric``."""
    selection_split(key_metric)
    return {key_metric: BalancedAccuracy(num_classes=num_classes)}
