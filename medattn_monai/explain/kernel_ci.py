"""Kernel conditional independence test (KCI) of ``outputs ⊥ feature | label``: a second opinion.

Zhang, Peters, Janzing & Schölkopf, "Kernel-based Conditional Independence Test and Application in Causal
Discovery", UAI 2011, through causal-learn's ``causallearn.utils.cit`` (an optional dependency). KCI detects
non-linear dependence that the permutation test's linear/ANOVA statistic may miss, but its null distribution is
an approximation and its cost grows as N^3, so it runs on a seeded subsample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .conditional_permutation import prepare_test_inputs

__all__ = ["kernel_ci_test"]


def _columns(values: np.ndarray, kind: str) -> np.ndarray:
    """Numeric columns for a kernel: one-hot for categorical values, the standardised value for continuous ones."""
    if kind == "continuous":
        std = values.std()
        return ((values - values.mean()) / (std if std > 0 else 1.0))[:, None]
    return pd.get_dummies(values).to_numpy(dtype=np.float64)


def kernel_ci_test(outputs, feature, labels, *, max_n: int = 1000, seed: int = 0, kind: str = "auto") -> float:
    """p-value of causal-learn's KCI test of ``outputs ⊥ feature | labels`` on at most ``max_n`` rows.

    The feature (one-hot if categorical), the outputs (all K columns) and the label (one-hot) are each one
    multivariate variable with a Gaussian kernel. Rows with a missing feature value are dropped first; above
    ``max_n`` rows a seeded random subsample is used (KCI's cost is cubic in N).

    Args:
        outputs: N x K class probabilities (or an N-vector score).
        feature: N feature values.
        labels: N true class indices.
        max_n: largest number of rows given to KCI.
        seed: seed of the subsample.
        kind: feature encoding, as in :func:`~medattn_monai.explain.conditional_permutation_test`.

    Returns:
        The p-value; 1.0 for a feature with a single value among the used rows.

    Raises:
        ConfigError: causal-learn is not installed.
    """
    try:
        from causallearn.utils.cit import CIT
    except ImportError as exc:
        raise ConfigError(
            "the KCI second opinion needs causal-learn, which is not installed: pip install causal-learn"
        ) from exc
    if max_n < 10:
        raise ValueError(f"max_n must be >= 10, got {max_n}")
    out, values, lab, kind = prepare_test_inputs(outputs, feature, labels, kind)
    if len(lab) > max_n:
        rows = np.sort(np.random.default_rng(seed).choice(len(lab), size=max_n, replace=False))
        out, values, lab = out[rows], values[rows], lab[rows]
    if len(np.unique(values)) < 2:
        return 1.0
    x = _columns(values, kind)
    z = pd.get_dummies(lab).to_numpy(dtype=np.float64)
    data = np.hstack([x, out, z])
    nx, nk = x.shape[1], out.shape[1]
    cols_x = list(range(nx))
    cols_y = list(range(nx, nx + nk))
    cols_z = list(range(nx + nk, data.shape[1]))
    test = CIT(data, "kci")
    if len(cols_z) == 1:  # a single label: nothing to condition on
        return float(test(cols_x, cols_y))
    return float(test(cols_x, cols_y, cols_z))
