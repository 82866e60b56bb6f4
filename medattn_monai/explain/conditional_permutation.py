"""Label-stratified permutation test: does a model's output depend on a feature *given the true label*?

A feature that is correlated with the diagnosis (age with melanoma, a ruler with a lesion type) predicts the
model's output even when the model never looks at it, simply because the output predicts the label. The question
"does the model use the feature?" is therefore the conditional independence question

    H0:  outputs ⊥ feature | label,

tested by permuting the feature *within* each label stratum (Good 2000, *Permutation Tests*, ch. 3; the
"conditional permutation" of Berrett et al. 2020 for a discrete conditioning variable). Under H0, and with the
samples exchangeable within a stratum, every within-stratum permutation of the feature is equally likely, so
the test is exact at any sample size.

Statistic (one definition for binary, categorical and continuous features, and for K output columns): the share of
the outputs' *within-label* variance that the feature explains,

    T = sum_s ||Z_s^T P_s||_F^2  /  sum_s ||P_s||_F^2,

where, in label stratum s, ``P_s`` (n_s x K) is the outputs centred on their stratum mean and ``Z_s`` encodes the
feature with unit-norm columns:

* continuous: one column, the feature centred on its stratum mean and divided by its stratum norm; then
  ``||Z_s^T P_s||^2`` is the regression sum of squares of each output column on the feature (squared
  within-stratum covariance over the feature's variance), summed over columns;
* categorical (binary included): one column per level, the level's indicator divided by sqrt(level count in the
  stratum); then ``||Z_s^T P_s||^2`` is the one-way ANOVA between-group sum of squares of the outputs, summed over
  columns. For a binary feature both encodings give the same T.

T lies in [0, 1]; the denominator and the column norms do not change under within-stratum permutations, so they
only make T readable. See ``docs/explanations.md`` for the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["PermutationTestResult", "conditional_permutation_result", "conditional_permutation_test", "feature_kind"]

FEATURE_KINDS = ("auto", "binary", "categorical", "continuous")

# Elements of one block of permuted indices (permutations x stratum size): bounds memory at ~100 MB of float64
# intermediates whatever n_permutations is.
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class PermutationTestResult:
    """Outcome of :func:`conditional_permutation_result`.

    Attributes:
        statistic: share of the outputs' within-label variance explained by the feature, in [0, 1].
        p_value: permutation p-value with the +1 correction, ``(1 + #{T_perm >= T}) / (1 + n_permutations)``.
        n_used: rows used (rows whose feature value is missing are dropped).
        n_strata: label strata among the used rows that can vary under permutation (size >= 2).
        kind: how the feature was encoded: ``"binary"``, ``"categorical"`` or ``"continuous"``.
    """

    statistic: float
    p_value: float
    n_used: int
    n_strata: int
    kind: str


def feature_kind(values) -> str:
    """Guess how to encode a feature: ``"categorical"`` for non-numeric or pandas-categorical values, ``"binary"``
    for numeric values with at most two distinct values, else ``"continuous"``.

    Integer-coded categories with more than two levels look continuous: pass ``kind="categorical"`` for them.
    """
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(series.dtype) or series.dropna().nunique() <= 2:
        return "binary"
    return "continuous"


def prepare_test_inputs(outputs, feature, labels, kind: str):
    """Validate the inputs of a conditional test and drop the rows whose feature value is missing.

    Returns:
        ``(outputs, values, labels, kind)``: N' x K float outputs; the feature as floats (continuous) or integer
        level codes (binary, categorical); the labels; the resolved kind. Shared with the KCI test so both see the
        same rows.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind={kind!r} is not one of {FEATURE_KINDS}")
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise DataError(f"outputs must be N or N x K, got shape {out.shape}")
    series = feature.reset_index(drop=True) if isinstance(feature, pd.Series) else pd.Series(feature)
    lab = np.asarray(labels)
    if not (len(series) == len(lab) == len(out)):
        raise DataError(f"outputs ({len(out)}), feature ({len(series)}) and labels ({len(lab)}) differ in length")
    if not np.isfinite(out).all():
        raise DataError("outputs contain NaN or infinite values")
    if pd.isna(pd.Series(lab)).any():
        raise DataError("labels contain missing values")
    if kind == "auto":
        kind = feature_kind(series)
    keep = ~pd.isna(series).to_numpy()
    series, out, lab = series[keep].reset_index(drop=True), out[keep], lab[keep]
    if kind == "continuous":
        try:
            values = series.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"a continuous feature must be numeric: {exc}") from exc
        if not np.isfinite(values).all():
            raise DataError("a continuous feature contains infinite values")
    else:
        values = pd.factorize(series, sort=True)[0]
    return out, values, lab, kind


def _encode_stratum(values: np.ndarray, kind: str) -> np.ndarray:
    """Z_s: the stratum's feature encoding with unit-norm (or zero) columns, n_s x D."""
    if kind == "continuous":
        centred = values - values.mean()
        norm = np.sqrt(np.square(centred).sum())
        # a feature constant in the stratum carries no information here: a zero column contributes 0
        if norm <= 1e-12 * max(1.0, np.abs(values).max()):
            return np.zeros((len(values), 1))
        return (centred / norm)[:, None]
    levels, codes = np.unique(values, return_inverse=True)
    if len(levels) < 2:
        return np.zeros((len(values), 1))
    onehot = (codes[:, None] == np.arange(len(levels))[None, :]).astype(np.float64)
    return onehot / np.sqrt(onehot.sum(axis=0, keepdims=True))


def _permuted_sums(z: np.ndarray, centred: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``‖Z_s[π]ᵀ P_s‖²`` of one stratum for each of ``n_permutations`` uniform permutations π of its rows."""
    n_s = len(z)
    sums = np.zeros(n_permutations)
    block = max(1, _BLOCK_ELEMENTS // n_s)
    for start in range(0, n_permutations, block):
        stop = min(start + block, n_permutations)
        # each row an independent uniform permutation of 0..n_s-1 (Generator.permuted shuffles rows in C)
        idx = rng.permuted(np.broadcast_to(np.arange(n_s), (stop - start, n_s)), axis=1)
        for d in range(z.shape[1]):
            u = z[idx, d] @ centred  # (permutations x n_s) @ (n_s x K): permuted feature against outputs
            sums[start:stop] += np.square(u).sum(axis=1)
    return sums


def conditional_permutation_result(
    outputs, feature, labels, *, n_permutations: int = 10000, seed: int = 0, kind: str = "auto"
) -> PermutationTestResult:
    """Label-stratified permutation test of ``outputs ⊥ feature | labels``, with the statistic and sample size.

    Args:
        outputs: N x K model outputs (class probabilities; N-vector for a single score).
        feature: N feature values (numbers, strings or booleans); missing values (NaN/None) drop their row.
        labels: N true class indices; each distinct value is a stratum. A constant array gives the plain,
            unconditional permutation test.
        n_permutations: number of within-stratum permutations (>= 1).
        seed: seed of the permutations; the same inputs and seed give the same p-value.
        kind: ``"auto"`` (see :func:`feature_kind`), ``"binary"``, ``"categorical"`` or ``"continuous"``.

    Returns:
        :class:`PermutationTestResult`. Strata of size 1 cannot be permuted and contribute nothing; a feature
        constant within every stratum (a constant feature, or one that is a function of the label) gets p = 1.

    Raises:
        ValueError: ``n_permutations < 1`` or an unknown ``kind``.
        DataError: lengths differ, outputs are not finite, labels are missing, or a continuous feature is not
            numeric.
    """
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    n_permutations = int(n_permutations)
    out, values, lab, kind = prepare_test_inputs(outputs, feature, labels, kind)
    rng = np.random.default_rng(seed)

    observed = 0.0
    total_ss = 0.0
    permuted = np.zeros(n_permutations)
    n_strata = 0
    for stratum in np.unique(lab):
        rows = np.flatnonzero(lab == stratum)
        if len(rows) < 2:
            continue
        n_strata += 1
        centred = out[rows] - out[rows].mean(axis=0)  # P_s, n_s x K
        total_ss += float(np.square(centred).sum())
        z = _encode_stratum(values[rows], kind)  # Z_s, n_s x D
        if not z.any() or not centred.any():
            continue  # T_s is 0 under every permutation
        observed += float(np.square(z.T @ centred).sum())
        permuted += _permuted_sums(z, centred, n_permutations, rng)

    n_used = len(lab)
    if total_ss <= 0.0 or observed <= 0.0:
        return PermutationTestResult(0.0, 1.0, n_used, n_strata, kind)
    # the permuted sums take a different floating-point path than the observed one: count near-ties as ties,
    # so a permutation that reproduces the data (e.g. swapping equal values) never looks smaller than it is
    at_least = permuted >= observed * (1.0 - 1e-9)
    p_value = (1.0 + float(at_least.sum())) / (1.0 + n_permutations)
    return PermutationTestResult(observed / total_ss, p_value, n_used, n_strata, kind)


def conditional_permutation_test(
    outputs, feature, labels, *, n_permutations: int = 10000, seed: int = 0, kind: str = "auto"
) -> float:
    """p-value of the label-stratified permutation test of ``outputs ⊥ feature | labels``.

    Permutes the feature within each label stratum (seeded) and compares the share of within-label output
    variance it explains (see the module docstring) with its permutation distribution; the p-value carries the
    +1 correction, so it is never 0. Rows with a missing feature value are dropped; strata of size 1 contribute
    nothing; a feature constant within every stratum gets p = 1.

    Args:
        outputs: N x K class probabilities (or an N-vector score).
        feature: N values: binary, categorical (any hashable) or continuous.
        labels: N true class indices.
        n_permutations: number of permutations (default 10,000).
        seed: permutation seed.
        kind: feature encoding, ``"auto"`` by default (see :func:`feature_kind`).

    Returns:
        The p-value, in (0, 1].
    """
    return conditional_permutation_result(
        outputs, feature, labels, n_permutations=n_permutations, seed=seed, kind=kind
    ).p_value
