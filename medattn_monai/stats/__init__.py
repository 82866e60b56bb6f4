"""Statistics over runs: does a variant score differently from its references, and could the design tell?

Works on data frames of runs (one row per run, its group and its metric value) and needs no model. The pieces:
:mod:`.run_table` (MLflow records -> a frame of runs), :mod:`.variants` (tags -> group), :mod:`.cell_groups`
(which runs may be pooled and compared: one configuration per group, one training setting per comparison),
:mod:`.two_sample` (tests, effect sizes, intervals), :mod:`.power`, :mod:`.correction` (Holm), :mod:`.ranking`
(Friedman/Nemenyi), :mod:`.comparison_settings` (the settings, defined once), :mod:`.frame_comparison` (all of it
on a frame), :mod:`.report` and :mod:`.plots` (outputs), :mod:`.compare` (the ``medattn compare`` command: read
MLflow, compare, write and log the outputs).
See ``docs/statistics.md`` for what each number means. Importing this package loads neither MLflow nor autorank.
"""

from __future__ import annotations

from .cell_groups import SHARED_SETTINGS, group_runs
from .comparison_settings import DEFAULT_SETTINGS, ComparisonSettings
from .correction import holm
from .frame_comparison import (
    COMPARISON_COLUMNS,
    FRIEDMAN_COLUMNS,
    GROUP_COLUMNS,
    PAIRED_COLUMNS,
    ComparisonResult,
    compare_runs,
    summarize_groups,
)
from .power import detectable_difference, min_mwu_p, min_wilcoxon_p
from .ranking import FriedmanResult, friedman_nemenyi, nemenyi_different_pairs
from .run_table import load_runs, runs_frame
from .two_sample import (
    CI_METHODS,
    bootstrap_mean_diff_ci,
    hedges_g,
    mwu_p,
    paired_t_p,
    pooled_std,
    welch_mean_diff_ci,
    welch_p,
    wilcoxon_p,
)
from .variants import variant_label, variant_of

__all__ = [
    "CI_METHODS", "COMPARISON_COLUMNS", "DEFAULT_SETTINGS", "FRIEDMAN_COLUMNS", "GROUP_COLUMNS", "PAIRED_COLUMNS",
    "SHARED_SETTINGS", "ComparisonResult", "ComparisonSettings", "FriedmanResult", "bootstrap_mean_diff_ci",
    "compare_runs", "detectable_difference", "friedman_nemenyi", "group_runs", "hedges_g", "holm", "load_runs",
    "min_mwu_p", "min_wilcoxon_p", "mwu_p", "nemenyi_different_pairs", "paired_t_p", "pooled_std", "runs_frame",
    "summarize_groups", "variant_label", "variant_of", "welch_mean_diff_ci", "welch_p", "wilcoxon_p",
]
