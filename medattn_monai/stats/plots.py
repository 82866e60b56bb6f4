"""Figures of a comparison: the runs of every variant (box + points) and the critical-difference diagram.

Figures are made with :class:`matplotlib.figure.Figure` directly, never ``pyplot``: no global figure state, no
display backend needed (saving a PNG uses Agg).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .ranking import FriedmanResult
from .variants import variant_label, variant_order

__all__ = ["runs_figure", "cd_figure"]


def runs_figure(runs: pd.DataFrame, dataset: str, metric: str, seed: int = 0) -> Figure:
    """Box plot with every run as a point, one panel per family, for one dataset.

    Args:
        runs: columns ``dataset, family, variant, value``.
        dataset: the dataset shown.
        metric: the name of ``value``, for the axis label.
        seed: seeds the horizontal jitter of the points, so the figure is reproducible.
    """
    cells = runs[runs["dataset"] == dataset]
    if cells.empty:
        raise ValueError(f"no runs of dataset {dataset!r}")
    families = sorted(cells["family"].unique())
    widest = max(cells.groupby("family")["variant"].nunique())
    fig = Figure(figsize=(max(4.5, 1.1 * widest) * len(families), 4.8), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False, sharey=True)[0]
    rng = np.random.default_rng(seed)
    # one colour per variant across all panels of the figure
    colours = {v: f"C{i % 10}" for i, v in enumerate(sorted(cells["variant"].unique(), key=variant_order))}
    for ax, family in zip(axes, families, strict=True):
        cell = cells[cells["family"] == family]
        variants = sorted(cell["variant"].unique(), key=variant_order)
        values = [cell.loc[cell["variant"] == v, "value"].to_numpy(float) for v in variants]
        ax.boxplot(values, tick_labels=[variant_label(v) for v in variants], showfliers=False, widths=0.5)
        for position, (variant, points) in enumerate(zip(variants, values, strict=True), start=1):
            # jitter only spreads overlapping points sideways; the height is the run's value
            ax.scatter(position + rng.uniform(-0.15, 0.15, len(points)), points, s=16, alpha=0.75, zorder=3,
                       color=colours[variant])
        ax.set_title(f"family: {family}")
        ax.set_xlabel("variant")
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    fig.suptitle(f"{dataset}: {metric} of each run, by variant (points = seeds)")
    return fig


def cd_figure(ranking: FriedmanResult, title: str) -> Figure:
    """The critical-difference diagram of a Friedman/Nemenyi result (autorank's drawing, readable variant names).

    Variants joined by a bar are not significantly different by Nemenyi's test; the CD bar shows the critical
    difference of the mean ranks.
    """
    from autorank import plot_stats

    result = ranking.rank_result
    result = result._replace(rankdf=result.rankdf.rename(index=variant_label))
    k = len(result.rankdf)
    fig = Figure(figsize=(7, 1.2 + 0.25 * k))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.8))
    plot_stats(result, allow_insignificant=True, ax=ax)
    fig.suptitle(f"{title}\nFriedman p = {ranking.p:.3g}, {ranking.n_blocks} seeds, "
                 f"CD = {ranking.critical_difference:.3g} (mean rank, 1 = best)", fontsize=10)
    return fig
