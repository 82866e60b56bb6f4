"""What a design can detect at all: the detectable difference at a given power, and the smallest p a rank test
can ever return for a sample size (when that is above α after correction, no data can make it significant)."""

from __future__ import annotations

import math

from .two_sample import check_alternative

__all__ = ["detectable_difference", "min_mwu_p", "min_wilcoxon_p"]

_STATSMODELS_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def detectable_difference(
    n1: int, n2: int, sd: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided"
) -> float:
    """The smallest true mean difference a two-sample t-test detects with probability ``power`` at level ``alpha``.

    Cohen's d solved from the noncentral t distribution (statsmodels' ``TTestIndPower``, pooled-variance t-test
    with ``n1 + n2 - 2`` degrees of freedom), times ``sd`` (the pooled standard deviation of the runs) to be in
    metric units. NaN when a sample has fewer than two runs or ``sd`` is not finite.
    """
    from statsmodels.stats.power import TTestIndPower

    check_alternative(alternative)
    if n1 < 2 or n2 < 2 or not math.isfinite(sd):
        return math.nan
    d = TTestIndPower().solve_power(
        effect_size=None, nobs1=n1, ratio=n2 / n1, alpha=alpha, power=power,
        alternative=_STATSMODELS_ALTERNATIVE[alternative],
    )
    return float(abs(d) * sd)


def min_mwu_p(n1: int, n2: int, alternative: str = "two-sided") -> float:
    """The smallest p-value an exact Mann–Whitney U test can return for samples of ``n1`` and ``n2``.

    It is reached when the samples do not overlap: one of ``C(n1 + n2, n1)`` equally likely orderings
    (two of them for a two-sided test).
    """
    tails = 2 if check_alternative(alternative) == "two-sided" else 1
    return min(1.0, tails / math.comb(n1 + n2, n1))


def min_wilcoxon_p(n_pairs: int, alternative: str = "two-sided") -> float:
    """The smallest p-value an exact Wilcoxon signed-rank test can return for ``n_pairs`` non-zero differences.

    Reached when all differences have one sign: one of ``2 ** n_pairs`` equally likely sign patterns.
    """
    tails = 2 if check_alternative(alternative) == "two-sided" else 1
    return min(1.0, tails / 2**n_pairs)
