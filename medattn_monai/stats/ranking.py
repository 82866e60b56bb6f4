"""All variants of one dataset × family at once: Friedman's test with the Nemenyi post-hoc test (Demšar 2006).

Seeds are the blocks: each seed ranks the variants (1 = best), the Friedman test asks whether the mean ranks differ
more than chance allows, and two variants differ by Nemenyi's test when their mean ranks are further apart than the
critical difference. The computation is autorank's (Herbold 2020), which also draws the critical-difference diagram.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["MIN_BLOCKS", "FriedmanResult", "friedman_nemenyi", "nemenyi_different_pairs"]

# autorank refuses fewer paired measurements than this
MIN_BLOCKS = 5


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's p, Nemenyi's critical difference, the mean ranks (1 = best) and autorank's result for plots."""

    p: float
    critical_difference: float
    mean_ranks: pd.Series
    n_blocks: int
    rank_result: Any


def friedman_nemenyi(table: pd.DataFrame, alpha: float = 0.05, higher_is_better: bool = True) -> FriedmanResult:
    """Friedman test and Nemenyi critical difference over the columns (variants) of ``table``, rows are seeds.

    Args:
        table: one row per seed (block), one column per variant, no missing values.
        alpha: level of the test and of the critical difference.
        higher_is_better: rank the largest value 1 (balanced accuracy) or the smallest (a loss).

    Raises:
        ValueError: fewer than 3 variants, fewer than :data:`MIN_BLOCKS` seeds, or missing values.
    """
    from autorank import autorank

    if table.shape[1] < 3:
        raise ValueError(f"Friedman/Nemenyi needs at least 3 variants, got {table.shape[1]}")
    if table.shape[0] < MIN_BLOCKS:
        raise ValueError(f"Friedman/Nemenyi needs at least {MIN_BLOCKS} seeds, got {table.shape[0]}")
    if table.isna().any().any():
        raise ValueError("the table of seeds × variants has missing values")
    # autorank prints its choices even when not verbose, and its normality checks warn on tiny or constant
    # samples; the Friedman test relies on neither
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        result = autorank(
            table.reset_index(drop=True).rename_axis(None, axis=1).astype(float), alpha=alpha, verbose=False,
            order="descending" if higher_is_better else "ascending", force_mode="nonparametric",
        )
    ranks = result.rankdf["meanrank"].astype(float).sort_values()
    return FriedmanResult(float(result.pvalue), float(result.cd), ranks, int(table.shape[0]), result)


def nemenyi_different_pairs(mean_ranks: pd.Series, critical_difference: float) -> list[tuple[str, str]]:
    """The pairs ``(better, worse)`` whose mean ranks differ by more than the critical difference."""
    ranks = mean_ranks.sort_values()
    names = list(ranks.index)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if ranks[b] - ranks[a] > critical_difference
    ]
