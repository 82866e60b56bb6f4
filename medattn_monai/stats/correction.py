"""Holm's step-down correction for the several comparisons made within one dataset × family."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["holm"]


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (Holm 1979), in the input order; NaN entries (no test) stay NaN and do not count.

    With the ``m`` p-values sorted ascending, the i-th (from 0) becomes ``(m - i) · p``, made non-decreasing
    along the sorted order and capped at 1. It controls the family-wise error rate like Bonferroni but rejects more.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if len(tested) == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted
