"""Feature usage across several annotated features: one conditional test per feature, Holm-corrected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..stats.correction import holm
from .conditional_permutation import conditional_permutation_result
from .kernel_ci import kernel_ci_test

__all__ = ["feature_frame", "feature_usage_table", "holm"]  # holm re-exported: the explain API names it

_ITEM_KEYS = {"image", "label", "index", "image_id"}


def feature_frame(items: Sequence[Mapping[str, Any]], features: Sequence[str]) -> pd.DataFrame:
    """The features of datalist items as a data frame, one column per feature, in the items' order.

    Missing values (``null`` in the JSON, an absent field) become NaN; a column whose present values are all
    numbers (bools included) is numeric, any other column keeps its values (categorical for the test).

    Raises:
        DataError: a feature is in no item (the message lists the fields the items have).
    """
    present = set().union(*(item.keys() for item in items)) if items else set()
    missing = [f for f in features if f not in present]
    if missing:
        raise DataError(f"field(s) {missing} are in no item of the split; "
                        f"its items have {sorted(present - _ITEM_KEYS)}")
    columns = {}
    for name in features:
        column = pd.Series([item.get(name) for item in items], dtype=object)
        values = column.dropna()
        numeric = len(values) > 0 and all(isinstance(v, (int, float, bool, np.number)) for v in values)
        columns[name] = pd.to_numeric(column) if numeric else column
    return pd.DataFrame(columns)


def _feature_columns(features, kinds: Mapping[str, str] | None) -> dict[str, Any]:
    """The features as name -> values, checked: at least one, and ``kinds`` names only given features."""
    columns = dict(features.items()) if isinstance(features, (pd.DataFrame, Mapping)) else None
    if columns is None:
        raise DataError(f"features must be a data frame or a mapping of name to values, got {type(features).__name__}")
    if not columns:
        raise DataError("no features to test")
    unknown = sorted(set(kinds or {}) - set(columns))
    if unknown:
        raise DataError(f"kinds names features that are not given: {unknown}")
    return columns


def feature_usage_table(
    outputs,
    features,
    labels,
    *,
    n_permutations: int = 10000,
    seed: int = 0,
    kinds: Mapping[str, str] | None = None,
    kci: bool = False,
    kci_max_n: int = 1000,
) -> pd.DataFrame:
    """Test each feature for use by the model given the true label, and Holm-correct across features.

    Every feature is tested with :func:`~medattn_monai.explain.conditional_permutation_test` under the same
    ``seed``, so a row's ``p`` equals that function's result for the feature alone.

    Args:
        outputs: N x K class probabilities.
        features: a data frame (one column per feature) or a mapping of feature name to N values.
        labels: N true class indices.
        n_permutations: permutations per feature.
        seed: permutation seed (and KCI subsample seed).
        kinds: optional encoding per feature name (``"binary"``, ``"categorical"``, ``"continuous"``); others
            are ``"auto"``.
        kci: also run the KCI test (causal-learn) as a second opinion, Holm-corrected on its own.
        kci_max_n: rows given to KCI (a seeded subsample above that).

    Returns:
        One row per feature, in the given order, with columns ``feature, kind, statistic, p, p_holm, n_used``
        (and ``p_kci, p_kci_holm`` when ``kci``). ``statistic`` is the share of within-label output variance the
        feature explains; ``n_used`` the rows with a value for the feature. A feature with fewer than two usable
        rows gets ``statistic`` 0 and ``p`` 1.
    """
    columns = _feature_columns(features, kinds)
    rows = []
    for name, values in columns.items():
        values = values.to_numpy() if isinstance(values, pd.Series) else values
        kind = (kinds or {}).get(name, "auto")
        result = conditional_permutation_result(outputs, values, labels, n_permutations=n_permutations, seed=seed,
                                                kind=kind)
        row = {"feature": str(name), "kind": result.kind, "statistic": result.statistic, "p": result.p_value,
               "n_used": result.n_used}
        if kci:
            row["p_kci"] = kernel_ci_test(outputs, values, labels, max_n=kci_max_n, seed=seed, kind=kind)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("p") + 1, "p_holm", holm(table["p"]))
    if kci:
        table["p_kci_holm"] = holm(table["p_kci"])
    return table
