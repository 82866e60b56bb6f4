"""``medattn feature-usage``: which annotated features does a trained run's model use, given the true label?

The model's class probabilities on a split, then :func:`~medattn_monai.explain.feature_usage_table` (the
label-stratified permutation test per feature, Holm across features, optional KCI); a table, a bar plot and the
outputs go to an output folder and into a ``run_type=explain`` MLflow run (``analysis=feature_usage``) with the
metrics ``fu_p_<feature>`` (why not into the training run: :mod:`.analysis_run`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .analysis_run import explain_run, explain_run_name, log_folder, log_metrics, metric_key
from .feature_usage_table import feature_frame, feature_usage_table
from .rendering import render_feature_usage
from .trained_run import TrainedRun, load_trained_run, predict_split, split_data

__all__ = ["feature_usage", "feature_usage_metrics", "parse_features"]


def parse_features(features: str | Sequence[str]) -> list[str]:
    """Feature names from a list or a comma-separated string (``"artefact,age_approx"``)."""
    names = features.split(",") if isinstance(features, str) else list(features)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise DataError("no features to test: pass --features name1,name2,…")
    if len(set(names)) != len(names):
        raise DataError(f"features repeat a name: {names}")
    return names


def feature_usage_metrics(table: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics of a :func:`feature_usage_table`: ``fu_p_<feature>`` (the permutation p-value),
    ``fu_p_holm_<feature>``, ``fu_stat_<feature>`` (share of within-label output variance the feature explains),
    and with KCI ``fu_p_kci_<feature>``, ``fu_p_kci_holm_<feature>``."""
    columns = {"p": "fu_p", "p_holm": "fu_p_holm", "statistic": "fu_stat", "p_kci": "fu_p_kci",
               "p_kci_holm": "fu_p_kci_holm"}
    metrics = {}
    for _, row in table.iterrows():
        for column, prefix in columns.items():
            if column in row and row[column] is not None and math.isfinite(float(row[column])):
                metrics[metric_key(prefix, str(row["feature"]))] = float(row[column])
    return metrics


def _write_outputs(trained: TrainedRun, items: list[dict], frame: pd.DataFrame, probs: np.ndarray, out: Path,
                   split: str, alpha: float, settings: Mapping[str, Any]) -> pd.DataFrame:
    """Test the features on the model's outputs and write the table, the plot, the outputs and the summary."""
    labels = np.array([int(item["label"]) for item in items])
    table = feature_usage_table(probs, frame, labels, **settings)
    table.to_csv(out / "feature_usage.csv", index=False)
    render_feature_usage(out / "feature_usage.png", table, alpha=alpha)
    outputs = pd.DataFrame({"image": [item["image_id"] for item in items], "label": labels})
    for k, name in enumerate(trained.classes):
        outputs[f"prob_{name}"] = probs[:, k]
    pd.concat([outputs, frame], axis=1).to_csv(out / "outputs.csv", index=False)
    (out / "summary.json").write_text(json.dumps(feature_usage_metrics(table), indent=1) + "\n")
    print(f"feature usage given the label, {split!r} split ({len(items)} images):\n{table.to_string(index=False)}")
    return table


def feature_usage(run_id: str, features: str | Sequence[str], datalist: str | None = None, split: str = "test",
                  n_permutations: int = 10000, seed: int = 0, kinds: Mapping[str, str] | None = None,
                  kci: bool = False, kci_max_n: int = 1000, alpha: float = 0.05, dataset_dir: str | None = None,
                  output_root: str = "runs", tracking_uri: str | None = None, output_dir: str | None = None,
                  log_mlflow: bool = True, batch_size: int = 64, num_workers: int | str = "auto",
                  device: str = "auto") -> str:
    """Test whether a trained run's outputs depend on annotated features given the true label.

    Writes ``feature_usage.csv`` (``feature, kind, statistic, p, p_holm, n_used`` and with KCI ``p_kci,
    p_kci_holm``), ``feature_usage.png`` (−log10 p per feature, raw and Holm, against ``alpha``) and
    ``outputs.csv`` (per image: ``image, label, prob_<class>…`` and the features, so the test can be rerun
    without the model), logged as artifacts of a ``run_type=explain`` MLflow run with the metrics of
    :func:`feature_usage_metrics` and the settings as params. Longer than 60 lines because this docstring is
    ``medattn feature-usage --help``: it describes every flag.

    Args:
        run_id: the run: its MLflow run id or its run folder.
        features: item fields to test (a list, or comma-separated): derm7pt structures, ISIC ``age_approx``,
            ``sex``, ``anatom_site_general``, artefact flags, …
        datalist: datalist JSON whose items carry the features (default: the run's own).
        split: the split whose images are tested (not one the model was trained on).
        n_permutations: permutations per feature.
        seed: permutation seed (every feature uses it; and KCI's subsample).
        kinds: encoding per feature (``binary``, ``categorical``, ``continuous``; default: guessed, see
            ``feature_kind``), e.g. ``{"site_code": "categorical"}``.
        kci: also run the kernel conditional independence test (causal-learn) as a second opinion.
        kci_max_n: rows given to KCI (a seeded subsample above that).
        alpha: significance level drawn on the plot.
        dataset_dir: folder the datalist's paths are relative to (default: the run's).
        output_root: where run folders live (to find the run by id, and for the default output folder).
        tracking_uri: MLflow store (default: the explained run's).
        output_dir: output folder (default: ``<output_root>/<experiment>/<explain run name>``).
        log_mlflow: record the analysis in MLflow.
        batch_size: images per forward pass.
        num_workers: image loader processes (``auto``: none when the split fits in RAM).
        device: ``auto`` (a GPU if there is one), ``cpu``, ``cuda:0``, …

    Returns:
        The output folder.
    """
    names = parse_features(features)
    trained = load_trained_run(run_id, output_root, tracking_uri, device)
    datalist_content, items = split_data(trained, datalist, split, dataset_dir)
    frame = feature_frame(items, names)
    run_name = explain_run_name(trained, "feature_usage")
    experiment = trained.info.get("experiment_name") or "explain"
    out = Path(output_dir) if output_dir else Path(output_root) / experiment / run_name
    kinds = dict(kinds or {})
    settings = {"n_permutations": n_permutations, "seed": seed, "kinds": kinds, "kci": kci, "kci_max_n": kci_max_n}

    def compute() -> pd.DataFrame:
        out.mkdir(parents=True, exist_ok=True)
        probs = predict_split(trained, items, batch_size, num_workers).numpy()
        return _write_outputs(trained, items, frame, probs, out, split, alpha, settings)

    if not log_mlflow:
        compute()
        return str(out)
    params = {"split": split, "datalist": datalist_content["_path"], "features": ",".join(names),
              **settings, "kinds": json.dumps(kinds, sort_keys=True)}
    with explain_run(trained, "feature_usage", run_name, split, datalist_content["split_hash"], tracking_uri,
                     params) as run:
        table = compute()
        log_metrics(run, feature_usage_metrics(table))
        log_folder(run, out)
        print(f"logged as explain run {run_name} ({run.run_id}) in experiment {experiment!r}")
    return str(out)
