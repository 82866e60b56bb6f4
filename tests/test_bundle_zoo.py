"""MONAI's and the Model Zoo's checks, run inside each repository bundle folder as the zoo's CI runs them:
``verify_metadata``, ``verify_net_in_out`` and ``ckpt_export`` on the standalone ``inference.json``, and the
workflow properties of every config combination (in-process: each MONAI subprocess costs seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

from conftest import REPO, camelyon_paths, train_overrides, workflow_property_problems
from medattn_monai.engine.bundle_source import BUNDLES

pytestmark = pytest.mark.slow  # the bundle fixture takes a trained run through request.getfixturevalue

SCHEMA = REPO / "medattn_monai" / "schemas" / "meta_schema_20240725.json"
META = "configs/metadata.json"


@pytest.fixture(params=BUNDLES)
def bundle(request, monkeypatch):
    """A repository bundle, its trained demo run, and its training overrides; the working directory is the bundle
    folder."""
    name = request.param
    isic = name.startswith("isic")
    run = request.getfixturevalue("trained_run" if isic else "camelyon_run")
    demo_data, tmp_path = request.getfixturevalue("demo_data"), request.getfixturevalue("tmp_path")
    overrides = train_overrides(demo_data, tmp_path) if isic else camelyon_paths(demo_data, tmp_path)
    monkeypatch.chdir(REPO / "bundles" / name)
    return name, run, overrides, tmp_path


def test_metadata_net_in_out_and_export_inside_the_bundle_folder(bundle):
    _, run, _, tmp_path = bundle
    verify_metadata(meta_file=META, filepath=str(SCHEMA))  # the repository's copy of the schema: no download
    verify_net_in_out(net_id="network_def", meta_file=META, config_file="configs/inference.json",
                      run_dir=str(run.run_dir), n=1)
    path = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(path), ckpt_file=str(run.run_dir / "model.pt"), meta_file=META,
                config_file="configs/inference.json", run_dir=str(run.run_dir))
    exported = torch.jit.load(str(path)).eval()
    size = run.info["params"]["image_size"]
    assert exported(torch.zeros(1, 3, size, size)).shape == (1, len(run.info["classes"]))


@pytest.mark.parametrize("workflow_type, configs", [
    ("train", ["train.json"]), ("train", ["train.json", "multi_gpu_train.json"]),
    ("infer", ["train.json", "evaluate.json"]), ("infer", ["inference.json"]),
])
def test_workflow_properties_inside_the_bundle_folder(workflow_type, configs, bundle):
    _, run, overrides, _ = bundle
    if workflow_type == "infer":
        overrides = {"run_dir": str(run.run_dir)} if configs == ["inference.json"] else {
            **overrides, "run_dir": str(run.run_dir)}
    assert workflow_property_problems(Path("configs"), workflow_type, configs, overrides) == []
