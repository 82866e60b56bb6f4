"""Explanations and feature usage of trained runs, end to end (issue 7's Done-when).

Two small ResNet18 trainings on demo data that differ only in their training split: in one, every NV training image
carries a green sticker and no other training image does (a perfect shortcut); in the control, a sticker is on 30 %
of every class's images. Validation and test images are the same in both (same seed): 30 % carry a sticker whatever
their class, so there the sticker says nothing about the label and a model whose output moves with it, among
images of one class, has learned the shortcut. At 96 pixels Grad-CAM's default layer is layer2 (12 x 12: the
deepest stage with at least 7 x 7 positions); the last stage, layer4, is a 3 x 3 grid there, coarse but still
enough to single out a corner sticker (at 64 pixels its 2 x 2 grid blurs it over a quarter of the image). The
numbers these tests print are the ones docs/explanations.md reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import train_overrides
from medattn_monai.cli import main
from medattn_monai.data import load_datalist, split_items
from medattn_monai.data.demo import make_demo_data
from medattn_monai.engine import train
from medattn_monai.explain import TrainedRun, explain, explain_maps, feature_usage
from medattn_monai.networks import build_network
from medattn_monai.tracking import read_run_info

SHORTCUT = {"artefact_class": "NV", "artefact_rate": 1.0, "artefact_noise_rate": 0.0, "artefact_eval_rate": 0.3}
CONTROL = {"artefact_class": "NV", "artefact_rate": 0.3, "artefact_noise_rate": 0.3}  # evaluation rate: 0.3 too
TRAINING = {"image_size": 96, "epochs": 3}
HANDLER = {"features": ["artefact", "dots"], "every": 1, "n_permutations": 2000}


def _trained(tmp_path_factory, demo_data, name: str, artefact: dict, **extra) -> SimpleNamespace:
    root = tmp_path_factory.mktemp(name)
    make_demo_data(str(root / "data"), seed=0, n_lesions=400, datasets="isic2019", **artefact)
    data = SimpleNamespace(dataset_dir=root / "data" / "isic2019", datalist=root / "data" / "isic2019_datalist.json",
                           empty_store=demo_data.empty_store)
    overrides = train_overrides(data, root, **TRAINING, **extra)
    run_dir = Path(train(**overrides))
    info = read_run_info(run_dir)
    return SimpleNamespace(run_dir=run_dir, info=info, run_id=info["run_id"], tracking_uri=overrides["tracking_uri"],
                           output_root=Path(overrides["output_root"]), data=data)


@pytest.fixture(scope="module")
def shortcut_run(tmp_path_factory, demo_data) -> SimpleNamespace:
    """Trained with the sticker on every NV training image, and the feature-usage handler on."""
    return _trained(tmp_path_factory, demo_data, "shortcut", SHORTCUT, feature_usage=HANDLER)


@pytest.fixture(scope="module")
def control_run(tmp_path_factory, demo_data) -> SimpleNamespace:
    """Trained with stickers independent of the class (the handler off, as by default)."""
    return _trained(tmp_path_factory, demo_data, "control", CONTROL)


def _usage_and_share(run: SimpleNamespace, out: Path) -> tuple[pd.DataFrame, dict, dict]:
    """The feature-usage table (10,000 permutations) and the Grad-CAM summaries on the artefact mask, test split:
    at the default layer (layer2, 12 x 12) and at the last stage (layer4, 3 x 3)."""
    fu = feature_usage(str(run.run_dir), ["artefact", "dots", "age_approx"], split="test", log_mlflow=False,
                       output_dir=str(out / "fu"), num_workers=0)
    table = pd.read_csv(Path(fu) / "feature_usage.csv").set_index("feature")
    summaries = []
    for layer in ("auto", "last"):
        maps = explain(str(run.run_dir), split="test", mask_field="artefact_mask", n_figures=2, log_mlflow=False,
                       output_dir=str(out / f"maps_{layer}"), num_workers=0, gradcam_layer=layer)
        summary = json.loads((Path(maps) / "summary.json").read_text())
        print(f"p(artefact) {table.loc['artefact', 'p']:.2g}, Grad-CAM ({layer}) share "
              f"{summary['gradcam_share_artefact_mask']:.3f} / area share {summary['area_share_artefact_mask']:.3f}"
              f" = {summary['gradcam_ratio_artefact_mask']:.2f}")
        summaries.append(summary)
    return table, *summaries


def test_a_cnn_trained_on_a_planted_shortcut_is_flagged_and_looks_at_it(shortcut_run, tmp_path):
    table, summary, last_stage = _usage_and_share(shortcut_run, tmp_path)
    assert table.loc["artefact", "p"] < 0.01
    assert table.loc["artefact", "p_holm"] < 0.01
    assert summary["n_masked_artefact_mask"] >= 15  # the test split's stickered images
    # its Grad-CAM puts at least twice the sticker's area share of its mass on the sticker, at both layers
    for layer in (summary, last_stage):
        assert layer["gradcam_share_artefact_mask"] >= 2 * layer["area_share_artefact_mask"]


def test_a_cnn_trained_without_the_correlation_is_not_flagged(control_run, tmp_path):
    table, summary, last_stage = _usage_and_share(control_run, tmp_path)
    assert table.loc["artefact", "p"] >= 0.01
    assert summary["gradcam_ratio_artefact_mask"] < 2 and last_stage["gradcam_ratio_artefact_mask"] < 2


def _client(run: SimpleNamespace) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(run.tracking_uri)


def test_training_time_handler_logs_feature_usage_per_epoch(shortcut_run, control_run):
    client = _client(shortcut_run)
    for feature in HANDLER["features"]:
        history = client.get_metric_history(shortcut_run.run_id, f"fu_p_{feature}")
        assert [m.step for m in history] == [1, 2, 3]  # one value per epoch, step = epoch
        assert all(1 / 2001 <= m.value <= 1 for m in history)  # permutation p-values, +1 corrected
    curve = [m.value for m in client.get_metric_history(shortcut_run.run_id, "fu_p_artefact")]
    print("fu_p_artefact per epoch:", ", ".join(f"{p:.2g}" for p in curve))
    assert curve[-1] < 0.01
    # a run setting: logged as a param, kept in run.json so `medattn resume` keeps the handler on
    assert "artefact" in client.get_run(shortcut_run.run_id).data.params["feature_usage"]
    assert shortcut_run.info["settings"]["feature_usage"]["features"] == HANDLER["features"]
    # off by default
    assert not [k for k in _client(control_run).get_run(control_run.run_id).data.metrics if k.startswith("fu_")]


def _explain_runs(run: SimpleNamespace, analysis: str) -> list:
    client = _client(run)
    experiment = client.get_experiment_by_name(run.info["experiment_name"])
    return client.search_runs([experiment.experiment_id],
                              f"tags.run_type = 'explain' and tags.analysis = '{analysis}'")


def test_explain_command_end_to_end(shortcut_run, capsys):
    code = main(["explain", "--run-id", shortcut_run.run_id, "--mask-field", "artefact_mask", "--n-figures", "3",
                 "--output-root", str(shortcut_run.output_root), "--tracking-uri", shortcut_run.tracking_uri,
                 "--num-workers", "0"])
    assert code == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.parent == shortcut_run.output_root / shortcut_run.info["experiment_name"]
    assert len(list((out / "images").glob("*.png"))) == 3
    for name in ("contact_sheet.png", "images.csv", "mask_share.csv", "mask_share_by_class.csv", "summary.json"):
        assert (out / name).is_file(), name
    by_class = pd.read_csv(out / "mask_share_by_class.csv")
    assert set(by_class["map"]) == {"gradcam"} and by_class["class"].iloc[-1] == "all"  # a plain CNN: no attention

    (run,) = _explain_runs(shortcut_run, "maps")
    training = _client(shortcut_run).get_run(shortcut_run.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == out.name
    tags = run.data.tags
    assert tags["explained_run_id"] == shortcut_run.run_id == tags["mlflow.parentRunId"]
    assert tags["explained_run_name"] == training.info.run_name
    for key in ("dataset", "backbone", "attention", "baseline", "seed", "cell", "params_count"):
        assert tags[key] == training.data.tags[key], key
    assert tags["split"] == "test" and tags["git_commit"]
    assert run.data.params["mask_field"] == "artefact_mask"
    params = run.data.params  # the deepest stage with at least 7 x 7 positions at 96 px; a plain CNN: no attention
    assert (params["gradcam_layer"], params["gradcam_grid"], params["gradcam_layer_requested"]) == ("layer2", "12x12",
                                                                                                     "auto")
    assert params["attention_layer"] == "None"
    summary = json.loads((out / "summary.json").read_text())
    assert run.data.metrics["gradcam_ratio_artefact_mask"] == pytest.approx(summary["gradcam_ratio_artefact_mask"])
    artifacts = {a.path for a in _client(shortcut_run).list_artifacts(run.info.run_id)}
    assert {"contact_sheet.png", "images", "mask_share_by_class.csv"} <= artifacts
    # the training run got nothing from it: a model's record stays as training and evaluation left it
    assert not [k for k in training.data.metrics if k.startswith("gradcam")]


def test_feature_usage_command_end_to_end(shortcut_run, tmp_path, capsys):
    # an output_root without the run's folder: model.pt and run.json come from the run's MLflow artifacts
    code = main(["feature-usage", "--run-id", shortcut_run.run_id, "--features", "artefact,dots,sex",
                 "--n-permutations", "2000", "--output-root", str(tmp_path), "--tracking-uri",
                 shortcut_run.tracking_uri, "--num-workers", "0"])
    assert code == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.parent == tmp_path / shortcut_run.info["experiment_name"]
    for name in ("feature_usage.csv", "feature_usage.png", "outputs.csv", "summary.json"):
        assert (out / name).is_file(), name
    outputs = pd.read_csv(out / "outputs.csv")
    assert len(outputs) == len(load_datalist(shortcut_run.data.datalist)["test"])
    np.testing.assert_allclose(outputs.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)

    (run,) = _explain_runs(shortcut_run, "feature_usage")
    assert run.info.status == "FINISHED"
    assert run.data.tags["explained_run_id"] == shortcut_run.run_id
    assert run.data.params["features"] == "artefact,dots,sex" and run.data.params["n_permutations"] == "2000"
    metrics = run.data.metrics
    assert metrics["fu_p_artefact"] < 0.01 and metrics["fu_p_holm_artefact"] < 0.01
    assert {"fu_p_dots", "fu_p_sex", "fu_stat_artefact", "fu_p_holm_sex"} <= set(metrics)
    table = pd.read_csv(out / "feature_usage.csv").set_index("feature")
    assert metrics["fu_p_sex"] == pytest.approx(table.loc["sex", "p"]) and table.loc["sex", "kind"] == "categorical"

    # errors: one line, exit status 2, and no MLflow run for a command that could not start
    code = main(["feature-usage", "--run-id", shortcut_run.run_id, "--features", "ruler", "--output-root",
                 str(shortcut_run.output_root), "--tracking-uri", shortcut_run.tracking_uri])
    err = capsys.readouterr().err
    assert code == 2 and "ruler" in err and "artefact" in err  # names the fields there are
    code = main(["explain", "--run-id", "0123456789abcdef", "--output-root", str(tmp_path), "--tracking-uri",
                 shortcut_run.tracking_uri])
    assert code == 2 and "0123456789abcdef" in capsys.readouterr().err
    assert len(_explain_runs(shortcut_run, "feature_usage")) == 1 and len(_explain_runs(shortcut_run, "maps")) <= 1


@pytest.mark.parametrize("backbone, attention", [("resnet18", "la"), ("vit", "none")])
def test_explain_maps_of_attention_networks(demo_data, backbone, attention):
    """Grad-CAM and attention for an attention variant (their agreement too); rollout alone for the ViT."""
    torch.manual_seed(0)
    datalist = load_datalist(demo_data.datalist)
    net = build_network(backbone, attention, num_classes=len(datalist["classes"]), image_size=64).eval()
    info = {"params": {"image_size": 64}, "classes": datalist["classes"], "dataset_dir": str(demo_data.dataset_dir)}
    trained = TrainedRun(Path("."), info, net, torch.device("cpu"))
    items = split_items(datalist, "test", demo_data.dataset_dir)[:6]
    result = explain_maps(trained, items, mask_field="lesion_mask", n_figures=4, num_workers=0)
    shares = result["mask_share"]
    images = result["images"]
    assert len(images) == 6 and images["prob"].between(0, 1).all()
    assert len(result["figures"]) == 4
    if backbone == "vit":
        assert result["gradcam_layer"] is None and set(shares["map"]) == {"attention"}
        assert images["spearman"].isna().all() and all(f[2] is None for f in result["figures"])
    else:
        # at 64 px: Grad-CAM on layer2 (8 x 8), attention on layer3's 4 x 4 grid (layer4's 2 x 2 would only blur it)
        assert result["gradcam_layer"] == "layer2" and set(shares["map"]) == {"gradcam", "attention"}
        assert result["layers"].attention == ("layer3.attn",) and result["layers"].attention_grid == (4, 4)
        assert images["spearman"].between(-1, 1).all()
    assert shares["area_share"].between(0.05, 0.6).all()  # every demo image has its lesion mask
    assert shares.dropna()["share"].between(0, 1).all()


@pytest.mark.parametrize("bundle, dataset, feature", [("isic_attention_classification", "isic2019", "artefact"),
                                                      ("camelyon17_attention_classification", "camelyon17", "center")])
def test_the_bundles_switch_the_handler_on_by_their_feature_usage_key(demo_data, bundle, dataset, feature):
    from monai.bundle import ConfigParser

    from medattn_monai.engine import bundle_configs
    from medattn_monai.explain import FeatureUsageHandler

    parser = ConfigParser()
    parser.read_config(bundle_configs(bundle, "train.json"))
    parser["dataset_dir"] = str(demo_data.root / dataset)
    parser["datalist"] = str(demo_data.root / f"{dataset}_datalist.json")
    parser["progress"] = False
    assert parser.get_parsed_content("validate#handlers") == []  # off by default
    parser["feature_usage"] = {"features": [feature], "every": 2, "kinds": {feature: "categorical"}}
    (handler,) = parser.get_parsed_content("validate#handlers")
    assert isinstance(handler, FeatureUsageHandler) and handler.every == 2 and handler.n_permutations == 1000
    assert handler.kinds == {feature: "categorical"} and len(handler.labels) == len(parser.get_parsed_content(
        "validate#dataset"))
    assert parser.get_parsed_content("run_settings")["feature_usage"]["features"] == [feature]  # kept on resume
