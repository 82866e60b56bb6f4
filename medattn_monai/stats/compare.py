"""``medattn compare``: read the runs of an experiment, compare them, write the tables and figures, log them.

The same function serves the command line and a notebook; :func:`compare_runs` is the part that needs no store.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..errors import ConfigError
from .comparison_settings import DEFAULT_SETTINGS, ComparisonSettings
from .frame_comparison import ComparisonResult, compare_runs
from .plots import cd_figure, runs_figure
from .report import latex_report, markdown_report, terminal_report
from .run_table import load_runs

__all__ = ["compare", "write_outputs"]


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _save(fig: Figure, path: Path) -> Path:
    # tight bounding box: the CD diagram writes long variant names outside its axes
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def write_outputs(
    result: ComparisonResult,
    runs: pd.DataFrame,
    skipped: pd.DataFrame,
    out: str | Path,
    metric: str,
    title: str,
    settings: dict,
) -> list[Path]:
    """Write the tables (CSV, Markdown, LaTeX), the notes and the figures into ``out``; return the files written.

    Files: ``comparison.csv``, ``groups.csv``, ``friedman.csv``, ``comparison.md``, ``comparison.tex``,
    ``notes.txt``, ``input_runs.csv`` (the runs compared, with their ids), ``skipped_runs.csv``,
    ``runs_<dataset>.png`` per dataset and ``cd_<dataset>_<family>.png`` per Friedman test that ran. The
    figures show the groups as compared (``result.runs``: with ``split_cells``, each configuration apart).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "comparison.csv": result.comparisons, "groups.csv": result.groups, "friedman.csv": result.friedman,
        "input_runs.csv": runs, "skipped_runs.csv": skipped,
    }
    files = []
    for name, frame in tables.items():
        frame.to_csv(out / name, index=False)
        files.append(out / name)
    texts = {
        "comparison.md": markdown_report(result, title, settings, skipped),
        "comparison.tex": latex_report(result, title),
        "notes.txt": "".join(f"{note}\n" for note in result.notes),
    }
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
        files.append(out / name)
    compared = runs if result.runs is None else result.runs
    for dataset in sorted(compared["dataset"].unique()):
        fig = runs_figure(compared, dataset, metric, seed=int(settings.get("seed", 0)))
        files.append(_save(fig, out / f"runs_{_file_part(dataset)}.png"))
    for (dataset, family), ranking in sorted(result.rankings.items()):
        fig = cd_figure(ranking, f"{dataset} / {family}: {metric}, Friedman + Nemenyi")
        files.append(_save(fig, out / f"cd_{_file_part(dataset)}_{_file_part(family)}.png"))
    return files


def _log_comparison(experiment: str, metric: str, tracking_uri: str | None, runs: pd.DataFrame,
                    settings: dict, files: list[Path]) -> str:
    from ..tracking import tracked_run, unique_run_name

    tags = {"run_type": "comparison"}
    for key in ("dataset", "family"):
        values = runs[key].unique()
        if len(values) == 1:
            tags[key] = str(values[0])
    params = {"experiment": experiment, "n_input_runs": len(runs), **settings}
    with tracked_run(experiment, unique_run_name(f"comparison-{metric}"), tags, tracking_uri, params) as run:
        for path in files:
            run.client.log_artifact(run.run_id, str(path))
    return run.run_id


def _settings(**flags: object) -> ComparisonSettings:
    """The flags as settings; a bad value is one line naming its flag."""
    try:
        return ComparisonSettings(**flags)
    except ValueError as e:
        raise ConfigError(f"--{e}") from e


def compare(
    experiment: str,
    metric: str = "test_bacc",
    out: str = "comparison",
    tracking_uri: str | None = None,
    alternative: str = DEFAULT_SETTINGS.alternative,
    alpha: float = DEFAULT_SETTINGS.alpha,
    power: float = DEFAULT_SETTINGS.power,
    ci_method: str = DEFAULT_SETTINGS.ci_method,
    n_boot: int = DEFAULT_SETTINGS.n_boot,
    seed: int = DEFAULT_SETTINGS.seed,
    higher_is_better: bool = DEFAULT_SETTINGS.higher_is_better,
    split_cells: bool = DEFAULT_SETTINGS.split_cells,
    log: bool = True,
) -> None:
    """Compare the FINISHED ``run_type=train`` runs of ``experiment`` on ``metric``; write and log the results.

    Args:
        experiment: the MLflow experiment, e.g. ``isic``.
        metric: the metric compared (its last logged value per run), e.g. ``test_bacc``.
        out: the folder for the tables and figures.
        tracking_uri: the MLflow store (else ``MLFLOW_TRACKING_URI``, else ``./mlruns/mlflow.db``).
        alternative: ``two-sided`` or ``greater`` ("the attention variant scores higher"), or ``less``.
        alpha: significance level of the warnings, the power analysis and the Nemenyi critical difference.
        power: the power of the detectable difference.
        ci_method: the 95 % interval of the mean difference: ``welch`` (Welch's t interval) or ``bootstrap``
            (percentile bootstrap, too narrow with few seeds).
        n_boot: bootstrap resamples of the confidence interval (``--ci_method bootstrap``).
        seed: bootstrap seed (and the jitter of the figure's points).
        higher_is_better: False for a metric where lower is better (a loss): it sets the Friedman ranking.
        split_cells: report a variant whose runs span several configurations (``cell`` tags), and a family trained
            with several settings, as separate labelled groups instead of refusing them.
        log: also record the outputs as a ``run_type=comparison`` run in ``experiment``.
    """
    settings = _settings(alternative=alternative, alpha=alpha, power=power, ci_method=ci_method, n_boot=n_boot,
                         seed=seed, higher_is_better=higher_is_better, split_cells=split_cells)
    runs, skipped = load_runs(experiment, metric, tracking_uri)
    shown = {"metric": metric, **settings.as_dict()}
    result = compare_runs(runs, settings)
    title = f"Comparison of {metric} in experiment {experiment}"
    files = write_outputs(result, runs, skipped, out, metric, title, shown)
    print(terminal_report(result, title, shown))
    if len(skipped):
        print(f"\n{len(skipped)} run(s) skipped:")
        for row in skipped.itertuples(index=False):
            print(f"- {row.run_id} {row.run_name}: {row.reason}")
    print(f"\nWrote {len(files)} files to {out}")
    if log:
        run_id = _log_comparison(experiment, metric, tracking_uri, runs, shown, files)
        print(f"Logged them as comparison run {run_id} in experiment {experiment}")
