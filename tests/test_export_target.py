"""``medattn export-bundle`` writes only into a new folder or an earlier export of its own, and says what the run
was trained on.

Refusals are checked through the command line (one ``medattn: error:`` line, exit 2) and must leave every file as it
was; they happen before the run is loaded, so they cost nothing. One test exports for real: a first export, a
replacement with ``--overwrite``, and a replacement that fails half-way and must leave the previous export intact.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from medattn_monai.errors import ConfigError
from medattn_monai.export import EXPORT_STAMP, check_targets, export_bundle, is_export, training_data


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _cli(run: SimpleNamespace, capsys, *args: str) -> tuple[int, str]:
    from medattn_monai.cli import main

    code = main(["export-bundle", "--run-id", run.info["run_id"], "--tracking_uri", run.tracking_uri,
                 "--output_root", run.overrides["output_root"], *args])
    return code, capsys.readouterr().err.strip()


def _fake_export(folder: Path, stamp: str = EXPORT_STAMP) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "metadata.json").write_text(json.dumps({"generated_by": stamp}))
    (folder / "LICENSE").write_text("licence")
    return folder


def test_overwrite_refuses_every_folder_and_zip_it_did_not_make(trained_run, tmp_path, capsys, monkeypatch):
    work = tmp_path / "project"
    (work / "runs").mkdir(parents=True)
    (work / "runs" / "precious.txt").write_text("a user's file")
    (work / "notes.md").write_text("mine")
    forged = _fake_export(work / "forged", stamp=EXPORT_STAMP + " ")
    mixed = _fake_export(work / "mixed")
    (mixed / "eval").mkdir()
    (mixed / "eval" / "predictions.csv").write_text("a.png,0.5,0.5\n")
    (work / "fresh.zip").write_bytes(b"someone's zip")
    monkeypatch.chdir(work)
    before = _snapshot(work)

    refusals = {
        ".": "is the current folder",
        "runs": "is a folder that medattn export-bundle did not make",
        "notes.md": "is a file that medattn export-bundle did not make",
        str(forged): "did not make",
        str(mixed): "files export-bundle did not write (eval/predictions.csv)",
        str(work.parent): "is the current folder or contains it",
        "notes.md/bundle": "notes.md is a file, not a folder",
    }
    for out, reason in refusals.items():
        code, err = _cli(trained_run, capsys, "--out", out, "--overwrite")
        assert code == 2 and len(err.splitlines()) == 1, (out, err)
        assert err.startswith(f"medattn: error: --out {out} ") and reason in err, (out, err)

    code, err = _cli(trained_run, capsys, "--out", "fresh")  # the folder is new, its zip is not
    assert code == 2 and err == (f"medattn: error: {Path('fresh.zip')} exists: pass --overwrite to replace it (if "
                                 "export-bundle wrote it), choose another --out, or pass --nozip")
    code, err = _cli(trained_run, capsys, "--out", "fresh", "--overwrite")
    assert code == 2 and "fresh.zip exists and was not written by medattn export-bundle" in err
    assert _snapshot(work) == before


def test_overwrite_replaces_only_its_own_export_and_a_failure_keeps_the_previous(trained_run, tmp_path, monkeypatch):
    import medattn_monai.export.target as target

    out = tmp_path / "dist" / "isic_demo_resnet18_plain_classification"
    kwargs = dict(tracking_uri=trained_run.tracking_uri, output_root=trained_run.overrides["output_root"])
    export_bundle(trained_run.info["run_id"], str(out), **kwargs)
    assert is_export(out) and zipfile.is_zipfile(f"{out}.zip")
    with pytest.raises(ConfigError, match="holds an earlier export: pass --overwrite"):
        check_targets(out, overwrite=False, with_zip=True)
    (out / "scripts" / "__pycache__").mkdir()  # running the bundle leaves bytecode: not a user's file
    (out / "scripts" / "__pycache__" / "resnet.cpython-311.pyc").write_bytes(b"\0")
    (out / "LICENSE").write_text("edited by the user")  # --overwrite is the user's word for the export's own files

    export_bundle(trained_run.info["run_id"], str(out), overwrite=True, **kwargs)
    assert (out / "LICENSE").read_text() != "edited by the user" and not (out / "scripts" / "__pycache__").exists()
    with zipfile.ZipFile(f"{out}.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{out.name}/{name}" for name, data in _snapshot(out).items()
                                                    if data != b"<dir>")
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, f"{out.name}.zip"]  # no temporary left

    previous, previous_zip = _snapshot(out), Path(f"{out}.zip").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(target, "write_zip", disk_full)
    with pytest.raises(ConfigError, match=f"writing the bundle to {out} failed .No space left on device.: the "
                                          "previous export is unchanged"):
        export_bundle(trained_run.info["run_id"], str(out), overwrite=True, **kwargs)
    assert _snapshot(out) == previous and Path(f"{out}.zip").read_bytes() == previous_zip
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, f"{out.name}.zip"]


def _datalist(folder: Path, demo: bool, images: tuple[str, ...] = ("a.png",)) -> str:
    path = folder / f"datalist_{demo}_{len(images)}.json"
    content = {"classes": ["a", "b"], "training": [{"image": i, "label": 0} for i in images], "meta": {"demo_seed": 3}}
    path.write_text(json.dumps(dict(content, demo=True) if demo else content))
    return str(path)


def test_training_data_comes_from_the_datalist_else_the_experiment_else_the_user(tmp_path):
    from medattn_monai.data import split_hash

    info = {"dataset_name": "isic", "split_hash": split_hash({"classes": ["a", "b"],
                                                              "training": [{"image": "a.png", "label": 0}]})}
    demo = training_data(dict(info, datalist=_datalist(tmp_path, True)), {}, "my-experiment")
    assert demo.demo and demo.seed == 3 and "datalist" in demo.evidence
    assert not training_data(dict(info, datalist=_datalist(tmp_path, False)), {}, "isic-demo").demo
    # a datalist that is not the run's (other splits) does not count: the experiment decides
    assert training_data(dict(info, datalist=_datalist(tmp_path, False, ("a.png", "b.png"))), {}, "isic-demo").demo
    elsewhere = dict(info, datalist=str(tmp_path / "not-here.json"))
    assert training_data(elsewhere, {}, "isic-demo").demo
    assert training_data(elsewhere, {}, "isic-demo-study").demo
    assert not training_data(elsewhere, {}, "isic").demo
    with pytest.raises(ConfigError, match="cannot tell whether the run was trained on demo data.*--data demo"):
        training_data(elsewhere, {}, "team-runs")
    assert training_data(elsewhere, {}, "team-runs", stated="real").demo is False
    with pytest.raises(ConfigError, match="--data real: the run was trained on demo data by its experiment"):
        training_data(elsewhere, {}, "isic-demo", stated="real")
    with pytest.raises(ConfigError, match="expected one of demo, real"):
        training_data(elsewhere, {}, "isic", stated="synthetic")


def test_a_run_trained_on_real_data_keeps_the_datasets_texts(trained_run, tmp_path):
    from medattn_monai.export import load_run, write_bundle

    source = load_run(trained_run.info["run_id"], trained_run.overrides["output_root"], trained_run.tracking_uri)
    real = json.loads(Path(trained_run.info["datalist"]).read_text())
    real.pop("demo")
    (tmp_path / "real.json").write_text(json.dumps(real))
    source.info["datalist"] = str(tmp_path / "real.json")
    source.info.pop("demo")  # a run trained before run.json recorded the flag: its datalist decides
    folder = write_bundle(source, tmp_path / "bundle")
    meta = json.loads((folder / "configs" / "metadata.json").read_text())
    readme = (folder / "docs" / "README.md").read_text()
    assert meta["data_source"].startswith("ISIC 2019 Challenge training data") and "demo" not in meta["data_source"]
    assert "demo" not in meta["name"] and any("HAM10000" in r for r in meta["references"])
    assert "ISIC 2019 Challenge training data" in readme and "non-commercial" in readme
    assert "CC BY-NC 4.0" in (folder / "docs" / "data_license.txt").read_text()
