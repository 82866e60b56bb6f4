"""The whole comparison on a data frame of runs: group summaries, pairwise tests per dataset × family, Friedman.

Within each dataset × family, every attention variant is compared with the plain CNN, with its size-matched CNN
and with the ViT, when those groups exist. Holm's correction runs over the comparisons of one dataset × family,
separately for each test. Runs are pooled into a group only when they share one configuration, and compared only
with references trained with the same settings (:mod:`.cell_groups`). Nothing here reads MLflow or writes files:
:func:`compare_runs` maps a frame of runs (:func:`medattn_monai.stats.run_table.runs_frame`) to frames of results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cell_groups import group_runs
from .comparison_settings import DEFAULT_SETTINGS, ComparisonSettings
from .correction import holm
from .power import detectable_difference, min_mwu_p, min_wilcoxon_p
from .ranking import MIN_BLOCKS, FriedmanResult, friedman_nemenyi, nemenyi_different_pairs
from .two_sample import (
    bootstrap_mean_diff_ci,
    hedges_g,
    mwu_p,
    paired_t_p,
    pooled_std,
    welch_mean_diff_ci,
    welch_p,
    wilcoxon_p,
)
from .variants import PLAIN, VIT, base_variant, is_attention_variant, matched_name, variant_order

__all__ = [
    "GROUP_COLUMNS", "COMPARISON_COLUMNS", "PAIRED_COLUMNS", "FRIEDMAN_COLUMNS", "ComparisonResult",
    "summarize_groups", "compare_runs",
]

GROUP_COLUMNS = ["dataset", "family", "variant", "n", "mean", "std", "median"]
COMPARISON_COLUMNS = [
    "dataset", "family", "variant", "reference", "n", "n_reference", "mean", "mean_reference", "mean_diff",
    "welch_p", "mwu_p", "holm_welch_p", "holm_mwu_p", "hedges_g", "ci_low", "ci_high", "ci_method",
    "detectable_diff",
]
# added to COMPARISON_COLUMNS when at least one comparison pairs runs by seed
PAIRED_COLUMNS = ["n_pairs", "paired_t_p", "wilcoxon_p", "holm_paired_t_p", "holm_wilcoxon_p"]
FRIEDMAN_COLUMNS = [
    "dataset", "family", "variants", "n_seeds", "friedman_p", "critical_difference", "mean_ranks",
    "nemenyi_different", "note",
]
_HOLM = {"welch_p": "holm_welch_p", "mwu_p": "holm_mwu_p", "paired_t_p": "holm_paired_t_p",
         "wilcoxon_p": "holm_wilcoxon_p"}


@dataclass(frozen=True)
class ComparisonResult:
    """What :func:`compare_runs` found.

    Attributes:
        groups: one row per dataset × family × variant, columns :data:`GROUP_COLUMNS`.
        comparisons: one row per comparison, columns :data:`COMPARISON_COLUMNS` (+ :data:`PAIRED_COLUMNS` when
            runs pair by seed anywhere).
        friedman: one row per dataset × family, columns :data:`FRIEDMAN_COLUMNS`; ``note`` says why it was skipped.
        notes: plain-language warnings: groups without test, designs that cannot reach significance, skipped pairs.
        rankings: the Friedman results by ``(dataset, family)``, for the critical-difference diagrams.
        runs: the runs as compared: with ``split_cells``, families and variants carry the labels that tell their
            settings apart (``resnet18 [epochs=2]``, ``plain [learning_rate=0.001]``); else the input.
    """

    groups: pd.DataFrame
    comparisons: pd.DataFrame
    friedman: pd.DataFrame
    notes: tuple[str, ...] = ()
    rankings: dict[tuple[str, str], FriedmanResult] = field(default_factory=dict)
    runs: pd.DataFrame | None = None


def _order(column: pd.Series) -> pd.Series:
    return column.map(variant_order) if column.name in ("variant", "reference") else column


def _sorted(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.sort_values(columns, key=_order, kind="stable").reset_index(drop=True)


def summarize_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """n, mean, standard deviation (n - 1) and median of ``value`` per dataset × family × variant."""
    stats = runs.groupby(["dataset", "family", "variant"])["value"].agg(
        n="count", mean="mean", std="std", median="median"
    )
    return _sorted(stats.reset_index(), ["dataset", "family", "variant"])[GROUP_COLUMNS]


def _seeds_usable(group: pd.DataFrame) -> bool:
    return not group["seed"].isna().any() and not group["seed"].duplicated().any()


def _paired_values(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``a`` and ``b`` at the seeds both have, in seed order (empty when seeds are unusable)."""
    if not (_seeds_usable(a) and _seeds_usable(b)):
        return np.array([]), np.array([])
    common = sorted(set(a["seed"]) & set(b["seed"]))
    va = a.set_index("seed").loc[common, "value"].to_numpy(float)
    vb = b.set_index("seed").loc[common, "value"].to_numpy(float)
    return va, vb


def _mean_diff_ci(x: np.ndarray, y: np.ndarray, settings: ComparisonSettings) -> tuple[float, float]:
    if settings.ci_method == "bootstrap":
        return bootstrap_mean_diff_ci(x, y, n_boot=settings.n_boot, seed=settings.seed)
    return welch_mean_diff_ci(x, y)


def _compare_pair(a: pd.DataFrame, b: pd.DataFrame, settings: ComparisonSettings) -> dict:
    x, y = a["value"].to_numpy(float), b["value"].to_numpy(float)
    ci_low, ci_high = _mean_diff_ci(x, y, settings)
    px, py = _paired_values(a, b)
    alternative = settings.alternative
    return {
        "n": len(x), "n_reference": len(y), "mean": x.mean(), "mean_reference": y.mean(),
        "mean_diff": x.mean() - y.mean(),
        "welch_p": welch_p(x, y, alternative), "mwu_p": mwu_p(x, y, alternative),
        "hedges_g": hedges_g(x, y), "ci_low": ci_low, "ci_high": ci_high, "ci_method": settings.ci_method,
        "detectable_diff": detectable_difference(len(x), len(y), pooled_std(x, y), settings.alpha, settings.power,
                                                 alternative),
        "n_pairs": len(px),
        "paired_t_p": paired_t_p(px, py, alternative), "wilcoxon_p": wilcoxon_p(px, py, alternative),
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _seeds_needed(m: int, alpha: float, min_p: Callable[[int], float]) -> int:
    """The fewest seeds per group for which ``m`` Holm-corrected tests can reach ``alpha``."""
    n = 2
    while m * min_p(n) > alpha and n < 1000:
        n += 1
    return n


def _unreachable(where: str, part: pd.DataFrame, m: int, alpha: float, p_min: float, test: str, design: str,
                 needed: int) -> list[str]:
    """The note for comparisons whose smallest possible p, times Holm's ``m``, stays above ``alpha``."""
    if m * p_min <= alpha:
        return []
    names = ", ".join(f"{v} vs {r}" for v, r in zip(part["variant"], part["reference"], strict=True))
    return [
        f"{where}: {names} cannot reach significance with {test} whatever the data: with {design} the smallest"
        f" possible p is {p_min:.2g}, and Holm over {_plural(m, 'comparison')} makes it at best"
        f" {min(1.0, m * p_min):.3g} > α = {alpha:g}. This needs at least {needed}."
    ]


def _reachability_notes(where: str, rows: pd.DataFrame, alternative: str, alpha: float) -> list[str]:
    """Warn where a rank test cannot reach significance after Holm, whatever the data."""
    notes = []
    tested = rows[rows["mwu_p"].notna()]
    m = len(tested)
    for (n, n_ref), part in tested.groupby(["n", "n_reference"], sort=False):
        needed = _seeds_needed(m, alpha, lambda k: min_mwu_p(k, k, alternative))
        notes += _unreachable(where, part, m, alpha, min_mwu_p(int(n), int(n_ref), alternative), "Mann–Whitney",
                              f"{n} vs {n_ref} runs", f"{needed} seeds per group")
    paired = rows[rows["wilcoxon_p"].notna()]
    m = len(paired)
    for n_pairs, part in paired.groupby("n_pairs", sort=False):
        needed = _seeds_needed(m, alpha, lambda k: min_wilcoxon_p(k, alternative))
        notes += _unreachable(where, part, m, alpha, min_wilcoxon_p(int(n_pairs), alternative),
                              "the Wilcoxon signed-rank test", f"{n_pairs} pairs", f"{needed} paired seeds")
    return notes


def _references(variant: str, names: list[str]) -> list[str]:
    """The groups ``variant`` is compared with: the plain CNN, its own size-matched CNN, the ViT (in that order)."""
    wanted = (PLAIN, matched_name(base_variant(variant)), VIT)
    return sorted((name for name in names if base_variant(name) in wanted), key=variant_order)


def _compare_family(where: tuple[str, str], groups: dict[str, pd.DataFrame],
                  settings: ComparisonSettings) -> tuple[list[dict], list[str]]:
    """The comparisons of one dataset × family, Holm-corrected within it."""
    rows, notes = [], []
    label = "/".join(where)
    for name, group in groups.items():
        if len(group) < 2:
            notes.append(f"{label}: {name} has only {len(group)} run: reported without test")
        elif not _seeds_usable(group):
            notes.append(f"{label}: {name} has missing or repeated seed tags: its runs are not paired by seed")
    for variant in sorted(filter(is_attention_variant, groups), key=variant_order):
        references = _references(variant, list(groups))
        if not references:
            notes.append(f"{label}: {variant} has no plain CNN, size-matched CNN or ViT to compare with")
        for reference in references:
            stats = _compare_pair(groups[variant], groups[reference], settings)
            rows.append({"dataset": where[0], "family": where[1], "variant": variant, "reference": reference, **stats})
    if not any(map(is_attention_variant, groups)):
        notes.append(f"{label}: no attention variant, nothing to compare pairwise")
    if not rows:
        return rows, notes
    frame = pd.DataFrame(rows)
    for column, adjusted in _HOLM.items():
        frame[adjusted] = holm(frame[column].to_numpy(float))
    notes += _reachability_notes(label, frame, settings.alternative, settings.alpha)
    return frame.to_dict("records"), notes


def _format_ranks(ranks: pd.Series) -> str:
    return ", ".join(f"{name} {rank:.2f}" for name, rank in ranks.items())


def _friedman_family(where: tuple[str, str], groups: dict[str, pd.DataFrame], alpha: float,
                   higher_is_better: bool) -> tuple[dict, FriedmanResult | None]:
    """Friedman/Nemenyi over the variants of one dataset × family that share at least MIN_BLOCKS seeds."""
    row = dict.fromkeys(FRIEDMAN_COLUMNS, math.nan) | {"dataset": where[0], "family": where[1], "note": ""}
    names = sorted(groups, key=variant_order)
    row["variants"] = len(names)
    if len(names) < 3:
        row["note"] = f"skipped: {len(names)} variant(s) ({', '.join(names)}); Friedman needs at least 3"
        return row, None
    seeded = {n: g.dropna(subset=["seed"]) for n, g in groups.items()}
    usable = [n for n in names if seeded[n]["seed"].nunique() >= MIN_BLOCKS]
    left_out = [n for n in names if n not in usable]
    # a seed repeated within a group (a rerun) counts once, at the mean of its runs
    long = pd.concat([seeded[n].assign(variant=n) for n in usable]) if usable else pd.DataFrame()
    table = (long.pivot_table(index="seed", columns="variant", values="value", aggfunc="mean").dropna()
             if usable else pd.DataFrame())
    if len(usable) < 3 or len(table) < MIN_BLOCKS:
        row["note"] = (
            f"skipped: Friedman/Nemenyi needs at least 3 variants sharing {MIN_BLOCKS} seeds; "
            f"{len(usable)} variant(s) have {MIN_BLOCKS}+ seeds and they share {len(table)}"
        )
        return row, None
    table = table[sorted(table.columns, key=variant_order)]
    result = friedman_nemenyi(table, alpha=alpha, higher_is_better=higher_is_better)
    row.update({
        "variants": len(usable), "n_seeds": result.n_blocks, "friedman_p": result.p,
        "critical_difference": result.critical_difference, "mean_ranks": _format_ranks(result.mean_ranks),
        "nemenyi_different": "; ".join(
            f"{a} > {b}" for a, b in nemenyi_different_pairs(result.mean_ranks, result.critical_difference)
        ),
        "note": f"left out (fewer than {MIN_BLOCKS} seeds): {', '.join(left_out)}" if left_out else "",
    })
    return row, result


def compare_runs(runs: pd.DataFrame, settings: ComparisonSettings | None = None, **options: Any) -> ComparisonResult:
    """Compare the groups of ``runs`` (columns ``dataset, family, variant, seed, value``).

    Args:
        runs: one row per run, as made by :func:`medattn_monai.stats.run_table.runs_frame`; its ``cell`` and config
            columns (``params.<key>``, ``tags.split_hash``), when present, decide which runs may be pooled and
            compared (:func:`medattn_monai.stats.cell_groups.group_runs`).
        settings: how to test (:class:`~medattn_monai.stats.comparison_settings.ComparisonSettings`); default
            :data:`~medattn_monai.stats.comparison_settings.DEFAULT_SETTINGS`.
        options: settings fields to change, e.g. ``alternative="greater"``, ``ci_method="bootstrap"``,
            ``n_boot=2000``, ``split_cells=True``.

    Raises:
        ValueError: a setting out of range, or ``runs`` lacks a column. TypeError: an unknown option.
        ConfigError: a variant's runs span several configurations, or a dataset × family mixes training settings
            (unless ``split_cells``).
    """
    if settings is not None and not isinstance(settings, ComparisonSettings):
        raise TypeError(f"settings must be a ComparisonSettings, got {settings!r}; pass options by name")
    settings = (settings or DEFAULT_SETTINGS).with_options(**options)
    missing = {"dataset", "family", "variant", "seed", "value"} - set(runs.columns)
    if missing:
        raise ValueError(f"runs frame lacks columns {sorted(missing)}")
    runs, notes = group_runs(runs, split_cells=settings.split_cells)
    rows, friedman_rows, rankings = [], [], {}
    for where, family in runs.groupby(["dataset", "family"], sort=True):
        groups = {str(name): group for name, group in family.groupby("variant")}
        family_rows, family_notes = _compare_family(where, groups, settings)
        rows += family_rows
        notes += family_notes
        friedman_row, ranking = _friedman_family(where, groups, settings.alpha, settings.higher_is_better)
        friedman_rows.append(friedman_row)
        if ranking is not None:
            rankings[where] = ranking
    comparisons = pd.DataFrame(rows, columns=COMPARISON_COLUMNS + PAIRED_COLUMNS)
    if not (comparisons["n_pairs"] >= 2).any():
        comparisons = comparisons[COMPARISON_COLUMNS]
    comparisons = _sorted(comparisons, ["dataset", "family", "variant", "reference"])
    friedman = pd.DataFrame(friedman_rows, columns=FRIEDMAN_COLUMNS)
    return ComparisonResult(summarize_groups(runs), comparisons, friedman, tuple(notes), rankings, runs)
