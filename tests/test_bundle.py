"""The ISIC bundle as the Model Zoo checks it: metadata schema, network in/out, workflow properties, export."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

from conftest import ISIC_CONFIGS, REPO, workflow_property_problems

SCHEMA = REPO / "medattn_monai" / "schemas" / "meta_schema_20240725.json"
META = ISIC_CONFIGS / "metadata.json"


def test_metadata_matches_the_schema_offline():
    verify_metadata(meta_file=str(META), filepath=str(SCHEMA))  # the repo's copy: no download


def test_network_in_and_out_match_the_metadata(demo_data):
    verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(ISIC_CONFIGS / "train.json"),
                      datalist=str(demo_data.datalist), n=1)


@pytest.mark.parametrize(
    "workflow_type, configs",
    [("train", ["train.json"]), ("train", ["train.json", "multi_gpu_train.json"]),
     ("infer", ["train.json", "evaluate.json"]), ("infer", ["inference.json"])],
)
def test_workflow_properties(workflow_type, configs, trained_run, demo_data, tmp_path):
    overrides = dict(trained_run.overrides, output_root=str(tmp_path / "runs"))
    if workflow_type == "infer":
        overrides["run_dir"] = str(trained_run.run_dir)
    assert workflow_property_problems(ISIC_CONFIGS, workflow_type, configs, overrides) == []


def test_exported_network_reproduces_eager_logits(trained_run, tmp_path):
    path = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(path), ckpt_file=str(trained_run.run_dir / "model.pt"),
                meta_file=str(META), config_file=str(ISIC_CONFIGS / "train.json"),
                datalist=trained_run.overrides["datalist"], image_size=32)
    exported = torch.jit.load(str(path)).eval()
    from medattn_monai.networks import build_network

    net = build_network(**trained_run.info["network_args"]).eval()
    net.load_state_dict(torch.load(trained_run.run_dir / "model.pt", weights_only=True))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), rtol=1e-5, atol=1e-5)
