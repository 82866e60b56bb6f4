"""``medattn export-bundle``: a trained run as a Model Zoo bundle, run where ``medattn_monai`` cannot be imported.

The standalone check runs in a separate Python process in which ``sys.modules["medattn_monai"] = None`` is set
before anything else and no ``sys.path`` entry holds the package; it runs ``python -m monai.bundle run`` (through
``runpy``, the same entry point) on demo images and the Model Zoo's checks, and the probabilities must equal the
original model's within 1e-5.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO
from medattn_monai.errors import ConfigError
from medattn_monai.export import export_bundle, load_run, select_run, vendor_modules, write_bundle

SCHEMA = REPO / "medattn_monai" / "schemas" / "meta_schema_20240725.json"

DRIVER = r'''
import os, sys
sys.modules["medattn_monai"] = None  # any import of the package fails from here on, whatever is installed
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.curdir, "medattn_monai"))]
sys.path.insert(0, os.getcwd())  # the bundle folder, as the Model Zoo's CI puts it
import json, runpy
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

images, dataset_dir, datalist, schema, out = sys.argv[1:6]


def bundle_run(*args):  # exactly `python -m monai.bundle run ...`
    sys.argv = ["monai.bundle", "run", *args]
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


bundle_run("--config_file", "configs/inference.json", "--dataset_dir", images, "--num_workers", "0",
           "--output_dir", os.path.join(out, "inference"))
bundle_run("--config_file", "['configs/inference.json','configs/evaluate.json']", "--dataset_dir", dataset_dir,
           "--datalist", datalist, "--num_workers", "0", "--output_dir", os.path.join(out, "evaluate"))
verify_metadata(meta_file="configs/metadata.json", filepath=schema)
verify_net_in_out(net_id="network_def", meta_file="configs/metadata.json", config_file="configs/inference.json",
                  bundle_root=".")
ckpt_export(net_id="network_def", filepath=os.path.join(out, "verify_model.ts"), ckpt_file="models/model.pt",
            meta_file="configs/metadata.json", config_file="configs/inference.json", bundle_root=".")
size = json.load(open("configs/metadata.json"))["network_data_format"]["inputs"]["image"]["spatial_shape"]
x = torch.randn(2, 3, *size)
with torch.no_grad():
    diff = (torch.jit.load(os.path.join(out, "verify_model.ts"))(x) - torch.jit.load("models/model.ts")(x)).abs().max()
json.dump({"ts_diff": float(diff), "blocked": sys.modules["medattn_monai"] is None,
           "scripts": sorted(m for m in sys.modules if m == "scripts" or m.startswith("scripts."))},
          open(os.path.join(out, "result.json"), "w"))
'''


def _export(run: SimpleNamespace, folder: Path) -> Path:
    return Path(export_bundle(run.info["run_id"], str(folder), tracking_uri=run.tracking_uri,
                              output_root=run.overrides["output_root"]))


@pytest.fixture(scope="module")
def plain_bundle(trained_run, tmp_path_factory) -> SimpleNamespace:
    folder = _export(trained_run, tmp_path_factory.mktemp("dist_plain") / "demo_resnet18_plain")
    return SimpleNamespace(folder=folder, run=trained_run)


@pytest.fixture(scope="module")
def attention_bundle(attention_run, tmp_path_factory) -> SimpleNamespace:
    folder = _export(attention_run, tmp_path_factory.mktemp("dist_la") / "demo_resnet18_la")
    return SimpleNamespace(folder=folder, run=attention_run)


@pytest.fixture(params=["plain", "attention"])
def bundle(request) -> SimpleNamespace:
    return request.getfixturevalue(f"{request.param}_bundle")


def _logged_metrics(run: SimpleNamespace) -> dict[str, float]:
    import mlflow

    return mlflow.MlflowClient(run.tracking_uri).get_run(run.info["run_id"]).data.metrics


def _original_probabilities(run: SimpleNamespace, files: list[Path]) -> torch.Tensor:
    from medattn_monai.data import LoadResizeImaged, PrepareBatch
    from medattn_monai.networks import build_network

    net = build_network(**run.info["network_args"]).eval()
    net.load_state_dict(torch.load(run.run_dir / "model.pt", weights_only=True))
    load = LoadResizeImaged("image", run.info["params"]["image_size"])
    x = torch.stack([load({"image": str(f)})["image"] for f in files])
    with torch.no_grad():
        return torch.softmax(net(PrepareBatch().images(x)), dim=1)


@pytest.mark.slow  # trained runs, through the bundle fixture's request.getfixturevalue
def test_bundle_runs_with_monai_alone(bundle, demo_data, tmp_path):
    datalist = json.loads(demo_data.datalist.read_text())
    images = tmp_path / "images"
    for item in datalist["test"]:
        target = images / item["image"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_data.dataset_dir / item["image"], target)
    out = tmp_path / "out"
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(images), str(demo_data.dataset_dir), str(demo_data.datalist),
         str(SCHEMA), str(out)],
        cwd=bundle.folder, env=dict(env, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads((out / "result.json").read_text())
    assert result["blocked"] and "scripts.resnet" in result["scripts"]

    rows = list(csv.reader((out / "inference" / "predictions.csv").open()))
    assert sorted(r[0] for r in rows) == sorted(item["image"] for item in datalist["test"])
    exported = torch.tensor([[float(v) for v in r[1:]] for r in rows], dtype=torch.float64)
    original = _original_probabilities(bundle.run, [images / r[0] for r in rows]).double()
    torch.testing.assert_close(exported, original, atol=1e-5, rtol=0)

    saved = dict(line.split(",") for line in (out / "evaluate" / "metrics.csv").read_text().split())
    logged = _logged_metrics(bundle.run)
    assert float(saved["test_bacc"]) == pytest.approx(logged["test_bacc"], abs=1e-9)
    assert float(saved["test_auc"]) == pytest.approx(logged["test_auc"], abs=1e-9)
    assert result["ts_diff"] < 1e-5


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # trained runs, through the bundle fixture's request.getfixturevalue
def test_bundle_layout_metadata_and_imports(bundle):
    folder = bundle.folder
    files = _files(folder)
    assert {"LICENSE", "configs/inference.json", "configs/evaluate.json", "configs/metadata.json",
            "configs/logging.conf", "docs/README.md", "docs/data_license.txt", "models/model.pt", "models/model.ts",
            "scripts/__init__.py", "scripts/resnet.py", "scripts/transforms.py",
            "scripts/balanced_accuracy.py"} <= set(files)
    with zipfile.ZipFile(folder.parent / f"{folder.name}.zip") as archive:
        zipped = {name: archive.read(name) for name in archive.namelist()}
    assert zipped == {f"{folder.name}/{name}": data for name, data in files.items()}
    assert [name for name, data in files.items() if b"medattn_monai" in data] == []

    meta = json.loads(files["configs/metadata.json"])
    assert set(meta["required_packages_version"]) == {"pillow", "pytorch-ignite"}
    owners = importlib.metadata.packages_distributions()
    allowed = set(sys.stdlib_module_names) | {"torch", "monai", "numpy"} | {
        module for module, dists in owners.items()
        if any(d.lower() in meta["required_packages_version"] for d in dists)}
    for name, data in files.items():
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(data)):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                           [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                assert {m.partition(".")[0] for m in modules} <= allowed, (name, modules)

    logged = _logged_metrics(bundle.run)
    assert meta["eval_metrics"] == {k: v for k, v in logged.items() if k.startswith("test_")}
    assert any("2404.12295" in r for r in meta["references"]) and meta["version"] in meta["changelog"]
    inputs = meta["network_data_format"]["inputs"]["image"]
    assert inputs["spatial_shape"] == [32, 32]
    assert list(meta["network_data_format"]["outputs"]["pred"]["channel_def"].values()) == bundle.run.info["classes"]

    net = json.loads(files["configs/inference.json"])["network_def"]
    assert net["_target_"] == "scripts.resnet.AttentionResNet18"
    assert net["attention"] == bundle.run.info["network_args"]["attention"]
    large = files["large_files.yml"].decode()  # a ResNet18 is 45 MB, over the zoo's 25 MB
    assert f'hash_val: "{hashlib.md5(files["models/model.pt"]).hexdigest()}"' in large
    readme = files["docs/README.md"].decode()
    assert "Research only" in readme and bundle.run.info["run_id"] in readme
    assert f"{logged['test_bacc']:.4f}" in readme


def test_card_of_a_demo_run_says_synthetic_demo_data(plain_bundle):
    """The fixture's run was trained on ``medattn demo-data`` (datalist ``"demo": true``, experiment ``isic-demo``)."""
    files = {name: " ".join(data.decode().split()) for name, data in _files(plain_bundle.folder).items()
             if name.endswith((".json", ".md", ".txt"))}  # whitespace normalised: texts are wrapped
    meta = json.loads(files["configs/metadata.json"])
    assert "synthetic demo data" in meta["name"] and "synthetic demo data" in meta["description"]
    assert meta["data_source"].startswith("Synthetic demo data written from seed 0 by `medattn demo-data`")
    assert meta["intended_use"].startswith("Demonstration only") and meta["generated_by"] == "medattn export-bundle"
    assert not any("HAM10000" in r or "ISIC" in r for r in meta["references"])
    for name in ("configs/metadata.json", "docs/README.md", "docs/data_license.txt"):
        assert "ISIC 2019" not in files[name] and "CC BY-NC" not in files[name], name
        assert "non-commercial" not in files[name].lower(), name
    readme = files["docs/README.md"]
    assert meta["data_source"] in readme and "test split of the synthetic demo data" in readme
    assert "no third-party data licence binds them" in readme
    assert "no third-party data licence applies" in files["docs/data_license.txt"]


def test_same_run_gives_identical_files_and_tags_pick_the_best_run(plain_bundle, trained_run, tmp_path):
    run_id = select_run(dataset="isic", backbone="resnet18", attention="none", tracking_uri=trained_run.tracking_uri)
    assert run_id == trained_run.info["run_id"]
    again = Path(export_bundle(out=str(tmp_path / plain_bundle.folder.name), dataset="isic", backbone="resnet18",
                               attention="none", tracking_uri=trained_run.tracking_uri,
                               output_root=trained_run.overrides["output_root"]))
    first, second = _files(plain_bundle.folder), _files(again)
    assert first.keys() == second.keys()
    # TorchScript orders constants by Python's randomised string hashing: model.ts (and its hash) may differ
    varying = {"models/model.ts", "large_files.yml"}
    assert [name for name in first if name not in varying and first[name] != second[name]] == []


def _store_copy(run: SimpleNamespace, folder: Path) -> str:
    db = folder / "mlflow.db"
    shutil.copy(run.tracking_uri[len("sqlite:///"):], db)
    return f"sqlite:///{db}"


def test_refuses_failed_runs_missing_checkpoints_unbuildable_networks_and_unevaluated_runs(trained_run, tmp_path):
    import mlflow

    info, run_id = trained_run.info, trained_run.info["run_id"]
    uri = _store_copy(trained_run, tmp_path)
    client = mlflow.MlflowClient(uri)
    folder = tmp_path / "runs" / info["experiment_name"] / info["run_name"]
    folder.mkdir(parents=True)
    run_json = dict(info, tracking_uri=uri)
    (folder / "run.json").write_text(json.dumps(run_json))
    with pytest.raises(ConfigError, match="has no checkpoint"):
        load_run(run_id, str(tmp_path / "runs"), uri)
    os.symlink(trained_run.run_dir / "model.pt", folder / "model.pt")
    changed = dict(run_json, network_args=dict(info["network_args"], attention="ga"))
    (folder / "run.json").write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match="cannot be rebuilt"):
        load_run(str(folder), tracking_uri=uri)
    unevaluated = client.create_run(client.get_run(run_id).info.experiment_id, run_name="unevaluated").info.run_id
    client.set_terminated(unevaluated, "FINISHED")
    (folder / "run.json").write_text(json.dumps(dict(run_json, run_id=unevaluated)))
    with pytest.raises(ConfigError, match="no test metrics.*medattn evaluate"):
        load_run(str(folder))
    client.set_terminated(run_id, "FAILED")
    with pytest.raises(ConfigError, match="FAILED, not FINISHED"):
        load_run(run_id, str(tmp_path / "runs"), uri)
    with pytest.raises(ConfigError, match="no FINISHED train run"):
        select_run(backbone="resnet18", attention="none", tracking_uri=uri)
    with pytest.raises(ConfigError, match="give --run_id"):
        export_bundle()


def test_cli_refusal_is_one_line_with_exit_status_2(trained_run, tmp_path, capsys):
    from medattn_monai.cli import main

    out = tmp_path / "exists"
    out.mkdir()
    code = main(["export-bundle", "--run-id", trained_run.info["run_id"], "--out", str(out),
                 "--tracking_uri", trained_run.tracking_uri, "--output_root", trained_run.overrides["output_root"]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("medattn: error:") and "did not make" in err and len(err.splitlines()) == 1


def test_missing_run_folder_is_read_from_mlflow_artifacts(trained_run, tmp_path):
    source = load_run(trained_run.info["run_id"], str(tmp_path / "elsewhere"), trained_run.tracking_uri,
                      download_dir=tmp_path / "download")
    assert source.run_dir == tmp_path / "download" and source.info["network_args"] == trained_run.info["network_args"]
    expected = torch.load(trained_run.run_dir / "model.pt", weights_only=True)
    assert all(torch.equal(source.state_dict[k], v) for k, v in expected.items())


def test_torch_export_where_torchscript_fails(trained_run, tmp_path, monkeypatch):
    import monai.bundle

    def no_torchscript(**kwargs):
        raise RuntimeError("cannot script")

    monkeypatch.setattr(monai.bundle, "ckpt_export", no_torchscript)
    source = load_run(trained_run.info["run_id"], trained_run.overrides["output_root"], trained_run.tracking_uri)
    folder = write_bundle(source, tmp_path / "bundle")
    assert not (folder / "models" / "model.ts").exists()
    program = torch.export.load(str(folder / "models" / "model.pt2")).module()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program(x), source.network(x), atol=1e-5, rtol=0)
    assert "torch.export" in (folder / "docs" / "README.md").read_text()


def test_copies_only_the_defining_modules_with_relative_imports():
    vit = vendor_modules(["medattn_monai.networks.nets.vit"])
    assert set(vit.files) == {"__init__.py", "vit.py", "errors.py"}
    assert "from .errors import ConfigError" in vit.files["vit.py"]
    resnet = vendor_modules(["medattn_monai.networks.nets.resnet"])
    # `from ..blocks import LocalAttentionConv2d` goes to the module that defines it, not the blocks package
    assert "from .attention_conv import LocalAttentionConv2d" in resnet.files["resnet.py"]
    assert "depthwise_attention.py" not in resnet.files
    assert "~scripts.attention_conv.LocalAttentionConv2d" in resnet.files["resnet.py"]
    assert resnet == vendor_modules(["medattn_monai.networks.nets.resnet"])
    assert resnet.target(__import__("medattn_monai.networks.nets.resnet", fromlist=["x"]).AttentionResNet18) == \
        "scripts.resnet.AttentionResNet18"
    with pytest.raises(ValueError, match="is a package"):
        vendor_modules(["medattn_monai.networks"])
