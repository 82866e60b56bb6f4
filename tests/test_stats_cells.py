"""Runs of different configurations are never pooled or compared silently (issue: a 3-epoch and a 2-epoch plain
run reported as "plain, n = 2" and tested against ga).

Frames as ``runs_frame`` makes them from MLflow: a ``cell`` tag, ``params.<key>`` columns and ``tags.split_hash``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from medattn_monai.errors import ConfigError
from medattn_monai.stats import compare_runs, group_runs, runs_frame

BASE = {"epochs": "3", "image_size": "64", "learning_rate": "0.001", "batch_size": "32"}


def _frame(groups: list[tuple[str, str, list[float], dict]], family: str = "resnet18") -> pd.DataFrame:
    """One block of runs per ``(variant, cell, values, params changed from BASE)``; seeds 0, 1, …"""
    rows = []
    for variant, cell, values, params in groups:
        for seed, value in enumerate(values):
            # num_workers is a run setting outside the cell: it varies between runs of one cell
            config = {**BASE, **params, "seed": str(seed), "num_workers": str(2 + 2 * (seed % 2))}
            rows.append({"run_id": f"{variant}-{cell}-{seed}", "dataset": "isic", "family": family,
                         "variant": variant, "cell": cell, "seed": seed, "value": value, "tags.split_hash": "s1",
                         **{f"params.{k}": v for k, v in config.items()}})
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


PLAIN3 = [0.70, 0.71, 0.72, 0.73, 0.74]
PLAIN2 = [0.60, 0.61, 0.62, 0.63, 0.64]
GA3 = [0.75, 0.76, 0.77, 0.78, 0.79]


def test_a_variant_spanning_two_cells_is_refused_naming_the_keys():
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-p3", PLAIN3[:1], {}),
                   ("plain", "c-p2", PLAIN2[:1], {"epochs": "2"})])
    with pytest.raises(ConfigError) as caught:
        compare_runs(runs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("isic/resnet18: the runs of plain come from 2 configurations")
    assert "cell c-p2: 1 run, cell c-p3: 1 run" in message
    assert "they differ in epochs (2 / 3)" in message and "--split_cells" in message
    # seed and a run setting that varies inside a cell are not what tells the cells apart
    assert "seed" not in message.split(";")[1] and "num_workers" not in message


def test_split_cells_compares_each_training_setting_on_its_own():
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-p3", PLAIN3, {}), ("plain", "c-p2", PLAIN2, {"epochs": "2"})])
    result = compare_runs(runs, split_cells=True)
    assert list(zip(result.groups["family"], result.groups["variant"], result.groups["n"], strict=True)) == [
        ("resnet18 [epochs=2]", "plain", 5), ("resnet18 [epochs=3]", "plain", 5), ("resnet18 [epochs=3]", "ga", 5)]
    # ga (3 epochs) is compared with the 3-epoch plain CNN only
    (row,) = result.comparisons.itertuples(index=False)
    assert (row.family, row.variant, row.reference, row.n_reference) == ("resnet18 [epochs=3]", "ga", "plain", 5)
    assert row.mean_reference == pytest.approx(0.72)
    assert "isic/resnet18 [epochs=2]: no attention variant, nothing to compare pairwise" in result.notes
    assert set(result.runs["family"]) == {"resnet18 [epochs=2]", "resnet18 [epochs=3]"}


def test_split_cells_labels_configurations_of_one_setting_and_compares_each():
    # two plain CNNs tuned differently (a search picks hyper-parameters per cell): same setting, both references
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-a", PLAIN3, {}),
                   ("plain", "c-b", PLAIN2, {"learning_rate": "0.01"})])
    with pytest.raises(ConfigError, match=r"differ in learning_rate \(0.001 / 0.01\)"):
        compare_runs(runs)
    result = compare_runs(runs, split_cells=True)
    assert result.comparisons["reference"].tolist() == ["plain [learning_rate=0.001]", "plain [learning_rate=0.01]"]
    assert set(result.comparisons["family"]) == {"resnet18"}
    # Holm counts both comparisons of the family; the Friedman test ranks the three groups
    assert result.friedman.iloc[0]["variants"] == 3
    assert result.friedman.iloc[0]["mean_ranks"].startswith("ga 1.00")


def test_references_trained_with_other_settings_are_refused_or_kept_apart():
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-p2", PLAIN2, {"epochs": "2"}),
                   ("matched-ga", "c-m", PLAIN3, {})])
    with pytest.raises(ConfigError) as caught:
        compare_runs(runs)
    message = str(caught.value)
    assert message.startswith("isic/resnet18: its variants were trained with different settings")
    assert "epochs=2: plain; epochs=3: ga, matched-ga" in message and "--split_cells" in message
    result = compare_runs(runs, split_cells=True)
    assert result.comparisons[["family", "variant", "reference"]].values.tolist() == [
        ["resnet18 [epochs=3]", "ga", "matched-ga"]]


def test_a_different_split_is_a_different_setting():
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-p", PLAIN3, {})])
    runs.loc[runs["variant"] == "plain", "tags.split_hash"] = "s2"
    with pytest.raises(ConfigError, match="split_hash=s1: ga"):
        compare_runs(runs)


def test_runs_without_cell_tags_are_told_apart_by_their_settings():
    runs = _frame([("ga", "", GA3, {}), ("plain", "", PLAIN3[:2], {}), ("plain", "", PLAIN2[:2], {"epochs": "2"})])
    with pytest.raises(ConfigError, match=r"plain come from 2 configurations \(no cell tag: 4 runs\); they differ "
                                          r"in epochs \(2 / 3\)"):
        compare_runs(runs)
    fine = _frame([("ga", "", GA3, {}), ("plain", "", PLAIN3, {})])
    _, notes = group_runs(fine)
    assert notes == ["10 of 10 runs have no cell tag: whether each variant's runs share one configuration was told "
                     "apart only by the logged settings (split_hash, epochs, image_size)"]


def test_a_frame_glued_from_two_keeps_its_runs_apart():
    first, second = _frame([("ga", "c-ga", GA3, {})]), _frame([("plain", "c-p", PLAIN3, {})])
    grouped, _ = group_runs(pd.concat([first, second]))  # index labels 0..4 twice
    assert grouped["variant"].tolist() == ["ga"] * 5 + ["plain"] * 5


def test_cells_that_no_param_tells_apart_are_labelled_by_cell():
    runs = _frame([("ga", "c-ga", GA3, {}), ("plain", "c-1", PLAIN3, {}), ("plain", "c-2", PLAIN2, {})])
    with pytest.raises(ConfigError, match="no logged param tells them apart"):
        compare_runs(runs)
    grouped, _ = group_runs(runs, split_cells=True)
    assert set(grouped["variant"]) == {"ga", "plain [cell c-1]", "plain [cell c-2]"}


def test_frames_without_cells_or_params_are_taken_as_they_are():
    runs = _frame([("ga", "c", GA3, {}), ("plain", "d", PLAIN3, {})])[["dataset", "family", "variant", "seed", "value"]]
    grouped, notes = group_runs(runs)
    assert grouped.equals(runs) and notes == []


def test_runs_frame_carries_cell_and_params():
    record = {"run_id": "a", "run_name": "n", "status": "FINISHED", "metrics": {"test_bacc": 0.8},
              "tags": {"dataset": "isic", "family": "resnet18", "run_type": "train", "seed": "0", "attention": "ga",
                       "cell": "abc123", "split_hash": "s1"},
              "params": {"epochs": "3", "seed": "0"}}
    runs, _ = runs_frame([record, {**record, "run_id": "b", "tags": {**record["tags"], "cell": ""}, "params": {}}],
                         "test_bacc")
    assert list(runs.columns[-3:]) == ["params.epochs", "params.seed", "tags.split_hash"]
    assert runs["cell"].tolist() == ["abc123", ""]
    assert runs["params.epochs"].iloc[0] == "3" and pd.isna(runs["params.epochs"].iloc[1])
