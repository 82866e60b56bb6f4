"""``medattn compare`` end to end: runs with known metric values in a temporary sqlite MLflow store, the command,
its tables, figures and the ``run_type=comparison`` run.

Expected numbers (sources as in test_stats.py):
- plain = 0.70 + 0.002 i, ga = 0.74 + 0.003 i, matched-ga = 0.71 + 0.002 i, vit = 0.60 + 0.001 i, seeds i = 0..9.
- Welch ga vs plain: t = 12.8909, df = 15.6804, p = 9.32746634635e-10 (mpmath betainc); it is the second smallest of
  the three ga comparisons, so Holm doubles it.
- Mann–Whitney: every ga comparison separates completely: 2 / C(20, 10) = 1.0825088e-05 each (by hand), Holm over
  3 equal p-values: 3 times that.
- Paired (seed i with seed i): differences all positive, Wilcoxon 2 / 2^10 (by hand); paired t = 46.4787, df 9,
  p = 4.94533318761e-12 (mpmath).
- Hedges' g = 5.52138685651, pooled sd = 0.00771902411794 (mpmath); detectable difference = 1.32494739258 * sd.
- Welch's 95 % interval of ga - plain: standard error sqrt(s1²/10 + s2²/10) = 0.00345205252953, t_0.975 at
  df 15.6804 = 2.12342223409 (mpmath: findroot on betainc), so 0.0445 ∓ 0.00733016509446.
- Friedman over ga, matched-ga, plain, vit: every seed ranks them 1, 2, 3, 4: chi2 = 0.06 * 3000 - 150 = 30, df 3,
  p = erfc(sqrt(15)) + sqrt(60/pi) e^-15 = 1.38005703129e-06 (mpmath); Nemenyi CD = 2.569 * sqrt(20/60) (Demšar).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from medattn_monai.cli import main

EXPERIMENT = "isic-demo"
REPO = Path(__file__).resolve().parents[1]

VALUES = {
    ("resnet18", "plain"): [0.70 + 0.002 * i for i in range(10)],
    ("resnet18", "ga"): [0.74 + 0.003 * i for i in range(10)],
    ("resnet18", "matched-ga"): [0.71 + 0.002 * i for i in range(10)],
    ("resnet18", "vit"): [0.60 + 0.001 * i for i in range(10)],
    ("resnet18", "se"): [0.75],
    ("densenet121", "plain"): [0.65, 0.66, 0.67],
    ("densenet121", "ga"): [0.68, 0.69, 0.70],
}


def _tags(family: str, variant: str, seed: int, run_type: str = "train") -> dict[str, str]:
    tags = {"dataset": EXPERIMENT, "family": family, "seed": str(seed), "run_type": run_type,
            "backbone": family, "attention": "none"}
    if variant == "plain":
        tags["baseline"] = "plain"
    elif variant == "vit":
        tags.update(baseline="vit", backbone="vit")
    elif variant.startswith("matched-"):
        tags.update(baseline="size_matched", matched_to=variant[len("matched-"):])
    else:
        tags["attention"] = variant
    return tags


def _new_store(tmp_path_factory, *experiments: str):
    """A sqlite store in a fresh folder: its URI, a client and the ids of ``experiments``."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    ids = [client.create_experiment(name, (root / f"artifacts-{name}").as_uri()) for name in experiments]
    return uri, client, ids


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store with the runs of VALUES plus runs that must be skipped or ignored."""
    from mlflow.entities import Metric

    uri, client, (exp, _) = _new_store(tmp_path_factory, EXPERIMENT, "empty")

    def log(family, variant, seed, value, status="FINISHED", run_type="train"):
        run = client.create_run(exp, run_name=f"{family}-{variant}-s{seed}",
                                tags=_tags(family, variant, seed, run_type))
        if value is not None:
            client.log_batch(run.info.run_id, metrics=[Metric("test_bacc", value, 0, 0)])
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    inputs = [log(f, v, seed, value) for (f, v), values in VALUES.items() for seed, value in enumerate(values)]
    skipped = {
        log("resnet18", "ga", 10, None): "no metric test_bacc",
        log("resnet18", "plain", 11, 0.99, status="FAILED"): "status FAILED",
        log("resnet18", "plain", 12, 0.99, status="RUNNING"): "status RUNNING",
    }
    log("resnet18", "ga", 13, 0.99, run_type="trial")  # not a training run: neither input nor skipped
    return {"uri": uri, "client": client, "experiment_id": exp, "inputs": inputs, "skipped": skipped}


def _compare(store, out, *extra):
    return main(["compare", "--experiment", EXPERIMENT, "--metric", "test_bacc", "--out", str(out),
                 "--tracking-uri", store["uri"], "--n_boot", "2000", *extra])


def _comparison_runs(store):
    return store["client"].search_runs([store["experiment_id"]], "tags.run_type = 'comparison'")


def test_compare_end_to_end(store, tmp_path, capsys):
    out = tmp_path / "out"
    assert _compare(store, out) == 0
    printed = capsys.readouterr().out

    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns) == [
        "dataset", "family", "variant", "reference", "n", "n_reference", "mean", "mean_reference", "mean_diff",
        "welch_p", "mwu_p", "holm_welch_p", "holm_mwu_p", "hedges_g", "ci_low", "ci_high", "ci_method",
        "detectable_diff", "n_pairs", "paired_t_p", "wilcoxon_p", "holm_paired_t_p", "holm_wilcoxon_p",
    ]
    pairs = list(zip(table["family"], table["variant"], table["reference"], strict=True))
    assert pairs == [("densenet121", "ga", "plain"), ("resnet18", "ga", "plain"), ("resnet18", "ga", "matched-ga"),
                     ("resnet18", "ga", "vit"), ("resnet18", "se", "plain"), ("resnet18", "se", "vit")]
    ga = table.iloc[1]
    assert (ga["n"], ga["n_reference"], ga["n_pairs"]) == (10, 10, 10)
    assert ga["mean"] == pytest.approx(0.7535) and ga["mean_reference"] == pytest.approx(0.709)
    assert ga["mean_diff"] == pytest.approx(0.0445)
    assert ga["welch_p"] == pytest.approx(9.32746634635216e-10, rel=1e-6)
    assert ga["holm_welch_p"] == pytest.approx(1.86549326927043e-09, rel=1e-6)
    assert ga["mwu_p"] == pytest.approx(1.08250882244690e-05, rel=1e-9)
    assert ga["holm_mwu_p"] == pytest.approx(3.24752646734071e-05, rel=1e-9)
    assert ga["hedges_g"] == pytest.approx(5.52138685650789, rel=1e-6)
    assert ga["detectable_diff"] == pytest.approx(0.0102273008783203, rel=1e-5)
    assert ga["paired_t_p"] == pytest.approx(4.94533318760512e-12, rel=1e-5)
    assert ga["wilcoxon_p"] == pytest.approx(2 / 1024) and ga["holm_wilcoxon_p"] == pytest.approx(3 * 2 / 1024)
    # Welch's t interval by default, named in the table
    assert ga["ci_method"] == "welch"
    assert (ga["ci_low"], ga["ci_high"]) == pytest.approx((0.0371698349055415, 0.0518301650944585), rel=1e-9)
    se = table.iloc[4]
    assert se["n"] == 1 and math.isnan(se["welch_p"]) and math.isnan(se["mwu_p"]) and math.isnan(se["ci_low"])

    groups = pd.read_csv(out / "groups.csv").set_index(["family", "variant"])
    assert groups.loc[("resnet18", "plain"), "n"] == 10
    assert groups.loc[("resnet18", "plain"), "median"] == pytest.approx(0.709)
    assert groups.loc[("resnet18", "plain"), "std"] == pytest.approx(0.002 * math.sqrt(82.5 / 9))

    friedman = pd.read_csv(out / "friedman.csv").set_index("family")
    assert friedman.loc["resnet18", "friedman_p"] == pytest.approx(1.38005703129325e-06, rel=1e-9)
    assert friedman.loc["resnet18", "critical_difference"] == pytest.approx(1.48321, abs=1e-3)
    assert friedman.loc["resnet18", "mean_ranks"] == "ga 1.00, matched-ga 2.00, plain 3.00, vit 4.00"
    assert friedman.loc["resnet18", "nemenyi_different"] == "ga > plain; ga > vit; matched-ga > vit"
    assert "se" in friedman.loc["resnet18", "note"]
    assert friedman.loc["densenet121", "note"].startswith("skipped: 2 variant(s)")

    inputs = pd.read_csv(out / "input_runs.csv")
    assert sorted(inputs["run_id"]) == sorted(store["inputs"])
    skipped = pd.read_csv(out / "skipped_runs.csv")
    assert dict(zip(skipped["run_id"], skipped["reason"], strict=True)) == store["skipped"]

    markdown = (out / "comparison.md").read_text()
    assert "| resnet18 | ga | plain | 10 | 10 |" in markdown and "9.33e-10" in markdown
    assert "se has only 1 run" in markdown and "no metric test_bacc" in markdown
    latex = (out / "comparison.tex").read_text()
    assert r"\toprule" in latex and r"holm\_welch\_p" in latex and "9.33e-10" in latex

    for png in ("runs_isic-demo.png", "cd_isic-demo_resnet18.png"):
        image = imread(out / png)  # the figures are saved with Agg: no display backend is involved
        assert image.shape[0] > 100 and image.shape[1] > 300
    assert not list(out.glob("cd_*densenet121*"))

    assert "== isic-demo / resnet18 ==" in printed and "9.33e-10" in printed
    assert "3 run(s) skipped" in printed

    (run,) = _comparison_runs(store)
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == EXPERIMENT
    assert run.data.params["metric"] == "test_bacc" and run.data.params["n_input_runs"] == str(len(store["inputs"]))
    logged = {a.path for a in store["client"].list_artifacts(run.info.run_id)}
    assert {p.name for p in out.iterdir()} == logged
    local = Path(store["client"].download_artifacts(run.info.run_id, "input_runs.csv", str(tmp_path)))
    assert sorted(pd.read_csv(local)["run_id"]) == sorted(store["inputs"])


def test_compare_alternative_greater_and_bootstrap_without_logging(store, tmp_path, capsys):
    before = len(_comparison_runs(store))
    assert _compare(store, tmp_path, "--alternative", "greater", "--ci-method", "bootstrap", "--log=False") == 0
    assert "ci_method = bootstrap" in capsys.readouterr().out
    ga = pd.read_csv(tmp_path / "comparison.csv").iloc[1]
    assert ga["mwu_p"] == pytest.approx(5.41254411223451e-06, rel=1e-9)  # 1 / C(20, 10)
    assert ga["welch_p"] == pytest.approx(4.66373317317608e-10, rel=1e-6)  # half the two-sided p (t > 0)
    # the percentile bootstrap's spread is close to the plug-in standard error sqrt(0.9) * sqrt(s1²/10 + s2²/10)
    # = 0.003275 (s1 = 0.003 * 3.0277, s2 = 0.002 * 3.0277, by hand): width about 2 * 1.96 * 0.003275 = 0.01284,
    # narrower than Welch's 0.01466: the interval stays two-sided whatever the alternative
    assert ga["ci_method"] == "bootstrap" and ga["ci_low"] < 0.0445 < ga["ci_high"]
    assert ga["ci_high"] - ga["ci_low"] == pytest.approx(0.01284, abs=0.001)
    assert len(_comparison_runs(store)) == before


@pytest.mark.parametrize("args, message", [
    (["--experiment", "nope"], "no experiment 'nope'"),
    (["--experiment", "empty"], "has no FINISHED run_type=train run"),
    (["--experiment", EXPERIMENT, "--metric", "val_auc"], "48 × no metric val_auc; 1 × status RUNNING"),
    (["--experiment", EXPERIMENT, "--alternative", "bigger"], "--alternative must be one of"),
    (["--experiment", EXPERIMENT, "--ci_method", "bca"], "--ci_method must be one of welch, bootstrap, got 'bca'"),
    (["--experiment", EXPERIMENT, "--split_cells", "yes"], "--split_cells must be True or False, got 'yes'"),
])
def test_compare_user_errors_exit_2(store, tmp_path, capsys, args, message):
    code = main(["compare", *args, "--tracking-uri", store["uri"], "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("medattn: error:") and message in err[-1]
    assert sum("medattn: error" in line for line in err) == 1


@pytest.mark.parametrize("uri, message", [
    ("file:///tmp/mlruns", "file store"),
    ("sqlite:///{tmp}/missing/mlflow.db", "no MLflow database at"),
    ("nosuchscheme://host/db", "cannot read MLflow store"),
])
def test_compare_bad_store_exits_2(tmp_path, capsys, uri, message):
    code = main(["compare", "--experiment", EXPERIMENT, "--tracking-uri", uri.format(tmp=tmp_path),
                 "--out", str(tmp_path)])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "missing" / "mlflow.db").exists()  # reading never creates an empty store


def test_compare_as_a_real_process(store, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "medattn_monai.cli", "compare", "--experiment", "nope", "--tracking-uri", store["uri"]],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("medattn: error: no experiment 'nope'")


# --- runs of several configurations ---------------------------------------------------------------------------------

CELLS = "cells"
CELL_RUNS = {  # variant, epochs, cell tag -> values by seed
    ("ga", "3", "cell-ga3"): [0.75, 0.76, 0.77, 0.78, 0.79],
    ("plain", "3", "cell-plain3"): [0.70, 0.71, 0.72, 0.73, 0.74],
    ("plain", "2", "cell-plain2"): [0.60, 0.61, 0.62, 0.63, 0.64],
}


@pytest.fixture(scope="module")
def cell_store(tmp_path_factory):
    """ga trained 3 epochs; plain trained 3 epochs and, in another cell, 2 epochs: the issue's pooled "plain"."""
    from mlflow.entities import Metric, Param

    uri, client, (exp,) = _new_store(tmp_path_factory, CELLS)
    for (variant, epochs, cell), values in CELL_RUNS.items():
        for seed, value in enumerate(values):
            tags = {**_tags("resnet18", variant, seed), "dataset": CELLS, "cell": cell, "split_hash": "s1"}
            run = client.create_run(exp, run_name=f"{variant}-e{epochs}-s{seed}", tags=tags)
            params = {"epochs": epochs, "seed": str(seed), "learning_rate": "0.001", "num_workers": str(seed % 3)}
            client.log_batch(run.info.run_id, metrics=[Metric("test_bacc", value, 0, 0)],
                             params=[Param(k, v) for k, v in params.items()])
            client.set_terminated(run.info.run_id, "FINISHED")
    return uri


def test_compare_refuses_a_variant_pooled_from_two_cells(cell_store, tmp_path, capsys):
    code = main(["compare", "--experiment", CELLS, "--tracking-uri", cell_store, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("medattn: error: cells/resnet18: the runs of plain come from 2 configurations")
    assert "they differ in epochs (2 / 3)" in err[0] and "--split_cells" in err[0]
    assert not (tmp_path / "out").exists()  # a refusal writes nothing


@pytest.mark.parametrize("flag", ["--split_cells", "--split-cells"])
def test_compare_split_cells_reports_each_setting_apart(cell_store, tmp_path, capsys, flag):
    out = tmp_path / "out"
    code = main(["compare", "--experiment", CELLS, "--tracking-uri", cell_store, "--out", str(out), flag,
                 "--log=False"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "== cells / resnet18 [epochs=2] ==" in printed and "split_cells = True" in printed
    groups = pd.read_csv(out / "groups.csv")
    assert list(zip(groups["family"], groups["variant"], groups["n"], strict=True)) == [
        ("resnet18 [epochs=2]", "plain", 5), ("resnet18 [epochs=3]", "plain", 5), ("resnet18 [epochs=3]", "ga", 5)]
    table = pd.read_csv(out / "comparison.csv")
    assert table[["family", "variant", "reference", "n_reference"]].values.tolist() == [
        ["resnet18 [epochs=3]", "ga", "plain", 5]]
    assert table["mean_reference"].iloc[0] == pytest.approx(0.72)
    inputs = pd.read_csv(out / "input_runs.csv")
    assert sorted(set(inputs["params.epochs"])) == [2, 3] and set(inputs["cell"]) == {c for _, _, c in CELL_RUNS}
