"""A study's results: the runs it covers (one row per run), mean ± std per cell and metric, and the files and the
bookkeeping MLflow run that hold them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..stats.report import latex_table, markdown_table
from ..tracking import tracked_run, unique_run_name
from .config import StudyConfig
from .plan import CellPlan, find_runs, is_done

__all__ = ["collect_runs", "log_summary", "summarize", "wide_summary", "write_summary"]


def _metric_columns(metrics: Mapping[str, float]) -> list[str]:
    # the study's numbers: best_<key> and every evaluation metric, not the last epoch's per-epoch values
    return sorted(k for k in metrics if f"best_{k}" not in metrics and k not in ("train_loss", "best_epoch"))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n per cell and metric of a frame with one row per run (``experiment, cell, seed, …``).

    Returns one row per (experiment, cell, metric) with ``n, mean, std``; std is the sample standard deviation
    (n - 1), NaN for a single run.
    """
    id_cols = ["experiment", "cell", "cell_hash", "seed", "run_id", "run_name"]
    metric_cols = [c for c in runs.columns if c not in id_cols]
    long = runs.melt(id_vars=["experiment", "cell"], value_vars=metric_cols, var_name="metric").dropna()
    grouped = long.groupby(["experiment", "cell", "metric"], sort=False)["value"]
    return grouped.agg(n="count", mean="mean", std="std").reset_index()


def collect_runs(plans: list[CellPlan]) -> pd.DataFrame:
    rows = []
    for plan in plans:
        if not plan.cell_hash:
            continue
        for seed in plan.seeds:
            done = [r for r in find_runs(plan, seed) if is_done(r)]
            if not done:
                continue
            run = done[0]
            rows.append({"experiment": plan.experiment, "cell": plan.label, "cell_hash": plan.cell_hash, "seed": seed,
                         "run_id": run.info.run_id, "run_name": run.info.run_name,
                         **{k: run.data.metrics[k] for k in _metric_columns(run.data.metrics)}})
    return pd.DataFrame(rows)


def wide_summary(summary: pd.DataFrame, terminal: bool = False) -> pd.DataFrame:
    if summary.empty:
        return summary
    shown = summary
    if terminal:  # per-class recalls make the terminal table unreadable; they stay in the files
        shown = summary[~summary["metric"].str.contains("_recall_")]
    text = shown.assign(value=[f"{m:.4f} ± {s:.4f}" if pd.notna(s) else f"{m:.4f}"
                               for m, s in zip(shown["mean"], shown["std"], strict=True)])
    table = text.pivot_table(index=["experiment", "cell"], columns="metric", values="value", aggfunc="first",
                             sort=False)
    n = shown.groupby(["experiment", "cell"], sort=False)["n"].max()
    return table.assign(n=n).reset_index()


def write_summary(runs: pd.DataFrame, summary: pd.DataFrame, out: Path, cfg: StudyConfig,
                   outcomes: list[dict[str, Any]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"study_runs.csv": runs, "study_summary.csv": summary}
    for name, frame in files.items():
        frame.to_csv(out / name, index=False)
    wide = wide_summary(summary)
    title = f"Study {cfg.name}: mean ± std over seeds"
    (out / "study_summary.md").write_text(
        f"# {title}\n\n" + (markdown_table(wide) if not wide.empty else "(no finished runs)") + "\n")
    if not wide.empty:
        (out / "study_summary.tex").write_text(latex_table(wide, title) + "\n")
    (out / "study_outcomes.json").write_text(json.dumps(outcomes, indent=1, default=str) + "\n")
    names = ("study_runs.csv", "study_summary.csv", "study_summary.md", "study_summary.tex", "study_outcomes.json")
    return [out / n for n in names if (out / n).is_file()]


def log_summary(cfg: StudyConfig, plans: list[CellPlan], files: list[Path], config_text: str) -> None:
    """One bookkeeping run per experiment (``run_type=comparison``, tag ``study``) holding the summary files."""
    by_experiment: dict[str, CellPlan] = {}
    for plan in plans:
        if plan.experiment:
            by_experiment.setdefault(plan.experiment, plan)
    for experiment, plan in by_experiment.items():
        tags = {"run_type": "comparison", "study": cfg.name}
        params = {"cells": sum(p.experiment == experiment for p in plans), "seeds": json.dumps(cfg.seeds)}
        with tracked_run(experiment, unique_run_name(f"study-{cfg.name}"), tags, plan.tracking_uri, params) as run:
            run.client.log_text(run.run_id, config_text, "study_config.yaml")
            for path in files:
                run.client.log_artifact(run.run_id, str(path))

