"""Statistics on fixed numbers, checked against literal values computed independently of the code under test.

Sources of the expected values (the "why we trust it" of each literal):
- by hand: exact rank-test p-values (counting orderings / sign patterns), Holm, Hedges' g, Friedman's statistic.
- mpmath 1.3 (30 digits): Student-t tail probabilities as the regularized incomplete beta
  ``I_{df/(df+t^2)}(df/2, 1/2)`` (and t quantiles by ``findroot`` on it), and the normal tail for the
  tie-corrected Mann–Whitney approximation.
- scipy.optimize.brentq on scipy.stats.nct power curves (the code uses statsmodels); R's
  ``power.t.test(n=10, power=0.8)`` gives the same delta = 1.324947.
- Demšar (2006, JMLR 7, Table 5): Nemenyi's q_0.05 = 2.343 for k = 3.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medattn_monai.stats import (
    bootstrap_mean_diff_ci,
    compare_runs,
    detectable_difference,
    friedman_nemenyi,
    hedges_g,
    holm,
    min_mwu_p,
    min_wilcoxon_p,
    mwu_p,
    nemenyi_different_pairs,
    paired_t_p,
    runs_frame,
    variant_of,
    welch_mean_diff_ci,
    welch_p,
    wilcoxon_p,
)
from medattn_monai.stats.frame_comparison import COMPARISON_COLUMNS, PAIRED_COLUMNS
from medattn_monai.stats.report import latex_table, markdown_table

X5 = [1, 2, 3, 4, 5]
Y5 = [2, 4, 6, 8, 10]


# --- two-sample tests ---------------------------------------------------------------------------------------------

def test_welch_p_matches_incomplete_beta():
    # t = -3 / sqrt(2.5/5 + 10/5) = -1.8974, Welch df = 6.25 / 1.0625 = 5.88235; p from mpmath's betainc
    assert welch_p(X5, Y5) == pytest.approx(0.10753119493062724, rel=1e-9)
    assert welch_p(X5, Y5, "greater") == pytest.approx(0.94623440253468638, rel=1e-9)
    assert welch_p(X5, Y5, "less") == pytest.approx(0.05376559746531362, rel=1e-9)


def test_mwu_exact_p_by_counting_orderings():
    # x = [1, 2, 4], y = [3, 5, 6]: U_x = 1; of the C(6, 3) = 20 orderings, 2 have U <= 1 -> 2-sided 2 * 2/20
    assert mwu_p([1, 2, 4], [3, 5, 6]) == pytest.approx(0.2, abs=1e-12)
    assert mwu_p([1, 2, 4], [3, 5, 6], "less") == pytest.approx(0.1, abs=1e-12)
    assert mwu_p([1, 2, 4], [3, 5, 6], "greater") == pytest.approx(0.95, abs=1e-12)
    # no overlap, 5 vs 5: 2 of C(10, 5) = 252 orderings
    assert mwu_p([0.80, 0.81, 0.82, 0.83, 0.84], [0.70, 0.71, 0.72, 0.73, 0.74]) == pytest.approx(2 / 252, rel=1e-12)


def test_mwu_with_ties_small_samples_use_the_permutation_distribution():
    # x = [0.7, 0.7, 0.8], y = [0.6, 0.7, 0.6]: U_x = 8 (ties count 1/2); of the 20 splits of the pooled values
    # (enumerated with itertools.combinations, U counted with fractions) 3 have U >= 8 -> 3/20, two-sided 3/10
    assert mwu_p([0.7, 0.7, 0.8], [0.6, 0.7, 0.6]) == pytest.approx(0.3, abs=1e-12)
    assert mwu_p([0.7, 0.7, 0.8], [0.6, 0.7, 0.6], "greater") == pytest.approx(0.15, abs=1e-12)


def test_mwu_with_ties_larger_samples_use_the_normal_approximation():
    # 8 vs 8 (12870 arrangements): U = 47, tie-corrected variance, continuity 0.5: z = 1.543369, mpmath's ncdf
    x = [0.70, 0.70, 0.71, 0.72, 0.72, 0.73, 0.75, 0.76]
    y = [0.68, 0.69, 0.70, 0.70, 0.71, 0.71, 0.72, 0.74]
    assert mwu_p(x, y) == pytest.approx(0.12274138589006775, rel=1e-9)
    assert mwu_p(x, y, "greater") == pytest.approx(0.061370692945033874, rel=1e-9)


def test_paired_t_p():
    # d = [0.5, 1, 0.5, 2]: mean 1, sd sqrt(0.5), t = 2 * sqrt(2), df 3; p from mpmath's betainc
    assert paired_t_p([1, 2, 3, 4], [0.5, 1.0, 2.5, 2.0]) == pytest.approx(0.066275602741524255, rel=1e-9)
    assert paired_t_p([1, 2, 3, 4], [0.5, 1.0, 2.5, 2.0], "greater") == pytest.approx(0.033137801370762128, rel=1e-9)


def test_wilcoxon_exact_p_by_counting_sign_patterns():
    # d = [1, 2, 3, 4, 5, -6]: W- = 6; 14 of the 2^6 = 64 sign patterns have W- <= 6 -> two-sided 28/64
    assert wilcoxon_p([1, 2, 3, 4, 5, 0], [0, 0, 0, 0, 0, 6]) == pytest.approx(28 / 64, abs=1e-12)
    # all five differences positive: 1 of 32 patterns on each side
    assert wilcoxon_p([2, 3, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(2 / 32, abs=1e-12)
    assert wilcoxon_p([2, 3, 4, 5, 6], [1, 1, 1, 1, 1], "greater") == pytest.approx(1 / 32, abs=1e-12)
    # ties: d = [1, 1, 2, -2, 3], mid-ranks 1.5, 1.5, 3.5, 3.5, 5, W+ = 11.5; 6 of the 32 sign patterns have
    # W+ >= 11.5 (enumerated with itertools.product) -> two-sided 12/32
    assert wilcoxon_p([1, 1, 2, -2, 3], [0, 0, 0, 0, 0]) == pytest.approx(12 / 32, abs=1e-12)
    # the same difference at 3 seeds, up to float noise: 2 of 8 sign patterns, not the normal approximation's 0.10
    assert wilcoxon_p([0.73, 0.74, 0.75], [0.70, 0.71, 0.72]) == pytest.approx(0.25, abs=1e-12)


def test_degenerate_samples():
    assert math.isnan(welch_p([0.7], [0.6, 0.5]))
    assert math.isnan(mwu_p([0.7], [0.6, 0.5]))
    assert mwu_p([1.0, 1.0, 1.0], [1.0, 1.0]) == 1.0  # no ordering information at all
    assert wilcoxon_p([1, 2], [1, 2]) == 1.0  # every difference zero
    assert math.isnan(hedges_g([1, 1], [1, 1]))
    assert math.isnan(welch_p([0.7, 0.7], [0.8, 0.8]))  # no spread at all: t is undefined
    assert math.isnan(paired_t_p([0.73, 0.74, 0.75], [0.70, 0.71, 0.72]))  # constant difference, up to float noise
    with pytest.raises(ValueError, match="alternative"):
        welch_p(X5, Y5, "bigger")
    with pytest.raises(ValueError, match="equal lengths"):
        paired_t_p([1, 2, 3], [1, 2])


def test_hedges_g_by_hand():
    # s_pooled = sqrt((4 * 2.5 + 4 * 10) / 8) = 2.5; d = -3 / 2.5 = -1.2; J = 1 - 3 / (4 * 10 - 9) = 28/31
    assert hedges_g(X5, Y5) == pytest.approx(-1.2 * 28 / 31, rel=1e-12)


# --- intervals of the mean difference -----------------------------------------------------------------------------

def test_welch_interval_matches_incomplete_beta():
    # d = -3, se = sqrt(2.5/5 + 10/5), Welch df = 5.88235; t_0.975 = 2.45882370969915 (mpmath findroot on betainc)
    assert welch_mean_diff_ci(X5, Y5) == pytest.approx((-6.88774164373698, 0.887741643736976), rel=1e-9)
    assert welch_mean_diff_ci([1, 1, 1], [0, 0, 0]) == (1.0, 1.0)  # no spread at all: the difference itself
    assert welch_mean_diff_ci([0.1 + 0.2, 0.3], [0.1, 0.1]) == pytest.approx((0.2, 0.2))  # float noise is no spread
    assert all(map(math.isnan, welch_mean_diff_ci([1], [0, 0])))
    # leading axes are independent comparisons: the same numbers, computed at once
    low, high = welch_mean_diff_ci(np.array([X5, Y5]), np.array([Y5, X5]))
    assert low == pytest.approx([-6.88774164373698, -0.887741643736976], rel=1e-9)
    assert high == pytest.approx([0.887741643736976, 6.88774164373698], rel=1e-9)



def test_bootstrap_ci_seeded_values():
    # Reference: the indices drawn as bootstrap_mean_diff_ci documents (default_rng(0), x then y), the means and
    # the R-type-7 percentile computed in plain Python (sorted list + interpolation), not numpy.quantile.
    x, y = [0.70, 0.72, 0.75, 0.71], [0.69, 0.70, 0.68]
    low, high = bootstrap_mean_diff_ci(x, y, n_boot=2000, seed=0)
    assert (low, high) == pytest.approx((0.011666666666666603, 0.05249999999999988), abs=1e-12)
    # and close to the exact bootstrap distribution, enumerated over all 4^4 * 3^3 = 6912 resamples by hand-written
    # itertools.product: 2.5 % and 97.5 % points 0.010833 and 0.051667
    assert low == pytest.approx(0.0108333, abs=0.003) and high == pytest.approx(0.0516667, abs=0.003)
    assert bootstrap_mean_diff_ci(x, y, n_boot=2000, seed=0) == (low, high)
    assert bootstrap_mean_diff_ci(x, y, n_boot=2000, seed=1) != (low, high)


def test_bootstrap_ci_of_constant_samples_is_the_difference():
    assert bootstrap_mean_diff_ci([1, 1, 1], [0, 0, 0], n_boot=500, seed=3) == (1.0, 1.0)
    assert all(map(math.isnan, bootstrap_mean_diff_ci([1], [0, 0])))


# --- power --------------------------------------------------------------------------------------------------------

def test_detectable_difference_matches_noncentral_t():
    # brentq on scipy.stats.nct power (R power.t.test(n=10, power=0.8)$delta = 1.324947)
    assert detectable_difference(10, 10, 1.0) == pytest.approx(1.3249473925792306, rel=1e-5)
    assert detectable_difference(10, 10, 0.02) == pytest.approx(0.02 * 1.3249473925792306, rel=1e-5)
    assert detectable_difference(10, 10, 1.0, alternative="greater") == pytest.approx(1.1562971437059888, rel=1e-5)
    assert detectable_difference(5, 8, 1.0) == pytest.approx(1.7549515584695756, rel=1e-5)
    assert math.isnan(detectable_difference(1, 8, 1.0))


def test_smallest_attainable_rank_test_p():
    assert min_mwu_p(5, 5) == pytest.approx(2 / 252)  # 0.0079: times 7 comparisons (Holm) = 0.056 > 0.05
    assert min_mwu_p(5, 5, "greater") == pytest.approx(1 / 252)
    assert min_mwu_p(10, 10) == pytest.approx(2 / 184756)
    assert min_mwu_p(1, 1) == 1.0
    assert min_wilcoxon_p(5) == pytest.approx(1 / 16)
    assert min_wilcoxon_p(10, "greater") == pytest.approx(1 / 1024)


# --- Holm ---------------------------------------------------------------------------------------------------------

def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06) = 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    adjusted = holm([0.01, math.nan, 0.04])  # NaN = no test: not counted, m = 2
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04], rtol=1e-12)
    assert math.isnan(adjusted[1])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped
    assert len(holm([])) == 0


# --- Friedman / Nemenyi -------------------------------------------------------------------------------------------

def test_friedman_nemenyi_by_hand():
    # 5 seeds rank A, B, C as (1,2,3) (1,3,2) (2,1,3) (1,2,3) (1,2,3): rank sums 6, 10, 14;
    # chi2 = 12 / (5*3*4) * (36 + 100 + 196) - 3*5*4 = 6.4, df 2 -> p = exp(-3.2)
    table = pd.DataFrame({
        "A": [0.90, 0.90, 0.80, 0.90, 0.90],
        "B": [0.80, 0.70, 0.90, 0.80, 0.80],
        "C": [0.70, 0.80, 0.70, 0.70, 0.70],
    })
    result = friedman_nemenyi(table)
    assert result.p == pytest.approx(math.exp(-3.2), rel=1e-9)
    # Demšar: CD = q_0.05 * sqrt(k (k+1) / (6 N)) = 2.343 * sqrt(12 / 30)
    assert result.critical_difference == pytest.approx(2.343 * math.sqrt(0.4), abs=1e-3)
    assert result.mean_ranks.to_dict() == pytest.approx({"A": 1.2, "B": 2.0, "C": 2.8})
    assert result.n_blocks == 5
    # only A vs C differ by more than 1.48
    assert nemenyi_different_pairs(result.mean_ranks, result.critical_difference) == [("A", "C")]
    # a loss: lower is better reverses the ranks
    assert friedman_nemenyi(table, higher_is_better=False).mean_ranks.to_dict() == pytest.approx(
        {"C": 1.2, "B": 2.0, "A": 2.8})


def test_friedman_nemenyi_refuses_small_designs():
    with pytest.raises(ValueError, match="3 variants"):
        friedman_nemenyi(pd.DataFrame({"A": range(5), "B": range(5)}))
    with pytest.raises(ValueError, match="5 seeds"):
        friedman_nemenyi(pd.DataFrame({"A": range(4), "B": range(4), "C": range(4)}))


# --- groups from tags ---------------------------------------------------------------------------------------------

def test_variant_of_follows_the_tags():
    assert variant_of({"attention": "none", "baseline": "plain"}) == "plain"
    assert variant_of({"attention": "none", "baseline": "size_matched", "matched_to": "ela"}) == "matched-ela"
    assert variant_of({"attention": "none", "baseline": "vit"}) == "vit"
    assert variant_of({"attention": "ga"}) == "ga"
    for tags, reason in [
        ({"baseline": "size_matched"}, "matched_to"),
        ({"baseline": "wide"}, "unknown baseline"),
        ({"attention": "none"}, "cannot tell"),
        ({}, "cannot tell"),
    ]:
        with pytest.raises(ValueError, match=reason):
            variant_of(tags)


def _record(run_id, variant_tags, value=None, status="FINISHED", **tags):
    base = {"dataset": "isic", "family": "resnet18", "run_type": "train", "seed": "0"}
    metrics = {} if value is None else {"test_bacc": value}
    return {"run_id": run_id, "run_name": f"name-{run_id}", "status": status,
            "tags": {**base, **variant_tags, **tags}, "metrics": metrics}


def test_runs_frame_lists_skipped_runs_with_reasons():
    records = [
        _record("a", {"attention": "ga"}, 0.8),
        _record("b", {"baseline": "plain", "attention": "none"}, 0.7, seed="x"),
        _record("c", {"attention": "ga"}),  # no metric
        _record("d", {"attention": "ga"}, 0.8, status="FAILED"),
        _record("e", {"attention": "ga"}, float("nan")),
        _record("f", {"attention": "ga"}, 0.8, family=""),
        _record("g", {"baseline": "size_matched"}, 0.8),
        _record("h", {"attention": "ga"}, 0.8, run_type="comparison"),  # not an input, not listed
    ]
    runs, skipped = runs_frame(records, "test_bacc")
    assert runs["run_id"].tolist() == ["a", "b"]
    assert runs["variant"].tolist() == ["ga", "plain"]
    assert runs["seed"].tolist()[0] == 0 and pd.isna(runs["seed"].tolist()[1])
    assert dict(zip(skipped["run_id"], skipped["reason"], strict=True)) == {
        "c": "no metric test_bacc",
        "d": "status FAILED",
        "e": "metric test_bacc is nan",
        "f": "missing tag family",
        "g": "baseline=size_matched without a matched_to tag",
    }


# --- the whole comparison on a frame ------------------------------------------------------------------------------

def _runs(spec: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    rows = [
        {"run_id": f"{d}-{f}-{v}-{s}", "dataset": d, "family": f, "variant": v, "seed": s, "value": value}
        for (d, f, v), values in spec.items() for s, value in enumerate(values)
    ]
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def test_compare_runs_groups_comparisons_and_holm():
    runs = _runs({
        ("isic", "resnet18", "plain"): [0.70, 0.71, 0.72, 0.73, 0.74],
        ("isic", "resnet18", "ga"): [0.80, 0.815, 0.83, 0.845, 0.86],
        ("isic", "resnet18", "la"): [0.69, 0.715, 0.725, 0.75, 0.76],
        ("isic", "resnet18", "se"): [0.75],
        ("isic", "densenet121", "plain"): [0.60, 0.62],
        ("isic", "densenet121", "ga"): [0.70, 0.71],
    })
    result = compare_runs(runs, n_boot=500)
    groups = result.groups.set_index(["family", "variant"])
    assert groups.loc[("resnet18", "plain"), ["n", "mean", "median"]].tolist() == pytest.approx([5, 0.72, 0.72])
    assert groups.loc[("resnet18", "plain"), "std"] == pytest.approx(math.sqrt(0.00025))  # sd of 0.70..0.74
    assert list(result.groups["variant"][result.groups["family"] == "resnet18"]) == ["plain", "ga", "la", "se"]

    rows = result.comparisons
    assert list(rows.columns) == COMPARISON_COLUMNS + PAIRED_COLUMNS  # seeds 0.. pair the runs
    res = rows[rows["family"] == "resnet18"].set_index("variant")
    assert res["reference"].tolist() == ["plain", "plain", "plain"]
    # ga vs plain: no overlap, 2/252; Holm within resnet18 counts m = 2 tests (se has one run: no test), and
    # la's p is larger, so ga's is multiplied by 2
    assert res.loc["ga", "mwu_p"] == pytest.approx(2 / 252)
    assert res.loc["ga", "holm_mwu_p"] == pytest.approx(2 * 2 / 252)
    assert res.loc["ga", "mean_diff"] == pytest.approx(0.11)
    assert math.isnan(res.loc["se", "welch_p"]) and math.isnan(res.loc["se", "holm_welch_p"])
    assert res.loc["se", "n"] == 1 and res.loc["se", "mean_diff"] == pytest.approx(0.03)
    # paired: ga - plain = 0.10, 0.105, ..., 0.12 by seed, all positive; Wilcoxon: 1 of 32 sign patterns each
    # side -> 2/32, Holm m = 2
    assert res.loc["ga", "n_pairs"] == 5
    assert res.loc["ga", "wilcoxon_p"] == pytest.approx(2 / 32)
    assert res.loc["ga", "holm_wilcoxon_p"] == pytest.approx(min(1.0, 2 * 2 / 32))
    # the interval is Welch's by default, the bootstrap's on request
    assert res.loc["ga", "ci_method"] == "welch"
    x, y = [0.80, 0.815, 0.83, 0.845, 0.86], [0.70, 0.71, 0.72, 0.73, 0.74]
    assert (res.loc["ga", "ci_low"], res.loc["ga", "ci_high"]) == welch_mean_diff_ci(x, y)
    boot = compare_runs(runs, ci_method="bootstrap", n_boot=500, seed=3).comparisons
    boot = boot[(boot["family"] == "resnet18") & (boot["variant"] == "ga")].iloc[0]
    assert boot["ci_method"] == "bootstrap"
    assert (boot["ci_low"], boot["ci_high"]) == bootstrap_mean_diff_ci(x, y, n_boot=500, seed=3)
    # densenet121 is its own Holm family: m = 1, so the adjusted p is the raw one
    dn = rows[rows["family"] == "densenet121"].iloc[0]
    assert dn["holm_welch_p"] == pytest.approx(dn["welch_p"])

    notes = " ".join(result.notes)
    assert "se has only 1 run" in notes
    assert "cannot reach significance with the Wilcoxon" in notes  # 5 pairs: 2/32 > 0.05 even alone

    friedman = result.friedman.set_index("family")
    # resnet18: plain, ga, la share 5 seeds (se left out); densenet121: only 2 variants
    assert friedman.loc["resnet18", "variants"] == 3 and friedman.loc["resnet18", "n_seeds"] == 5
    assert "se" in friedman.loc["resnet18", "note"]
    assert friedman.loc["densenet121", "note"].startswith("skipped: 2 variant(s)")
    assert set(result.rankings) == {("isic", "resnet18")}


def test_unreachable_significance_is_warned():
    # 4 attention variants vs plain and ViT = 8 comparisons with 5 runs each: 8 * 2/252 = 0.063 > 0.05
    variants = ("plain", "vit", "ga", "la", "ela", "se")
    spec = {("isic", "resnet18", v): [0.7 + 0.01 * i for i in range(5)] for v in variants}
    result = compare_runs(_runs(spec), n_boot=200)
    assert len(result.comparisons) == 8
    note = next(n for n in result.notes if "Mann–Whitney" in n)
    assert "0.0079" in note and "Holm over 8 comparisons" in note and "0.0635 > α = 0.05" in note
    assert "at least 6 seeds per group" in note  # 8 * 2/924 = 0.017 <= 0.05


def test_alternative_greater_halves_the_exact_p():
    spec = {("isic", "resnet18", "plain"): [0.70, 0.71, 0.72, 0.73, 0.74],
            ("isic", "resnet18", "ga"): [0.80, 0.815, 0.83, 0.845, 0.86]}
    two = compare_runs(_runs(spec), n_boot=200).comparisons.iloc[0]
    one = compare_runs(_runs(spec), alternative="greater", n_boot=200).comparisons.iloc[0]
    assert one["mwu_p"] == pytest.approx(1 / 252) and two["mwu_p"] == pytest.approx(2 / 252)
    assert one["detectable_diff"] < two["detectable_diff"]


def test_tables_render():
    frame = pd.DataFrame({"variant": ["ga"], "n": [10], "welch_p": [1.08e-05], "mean_diff": [0.012345]})
    assert markdown_table(frame).splitlines() == [
        "| variant | n | welch_p | mean_diff |", "|---|---:|---:|---:|", "| ga | 10 | 1.08e-05 | 0.01235 |"]
    latex = latex_table(frame, "a caption")
    assert r"variant & n & welch\_p & mean\_diff \\" in latex and r"ga & 10 & 1.08e-05 & 0.01235 \\" in latex


def test_cell_without_attention_variant_says_so():
    spec = {("isic", "resnet18", "plain"): [0.70, 0.72], ("isic", "resnet18", "vit"): [0.60, 0.61]}
    result = compare_runs(_runs(spec), n_boot=100)
    assert result.comparisons.empty and list(result.comparisons.columns) == COMPARISON_COLUMNS
    assert result.notes == ("isic/resnet18: no attention variant, nothing to compare pairwise",)
