"""derm7pt converter: seven-point annotations as item fields, diagnoses mapped to ISIC classes, unmapped ones listed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medattn_monai.cli import main as cli_main
from medattn_monai.data import load_datalist
from medattn_monai.data.demo import write_derm7pt_demo
from medattn_monai.data.derm7pt import DIAGNOSIS_TO_ISIC, SEVEN_POINT_CRITERIA, prepare_derm7pt
from medattn_monai.data.isic2019 import ISIC_CLASSES
from medattn_monai.errors import DataError

SPLITS = ("training", "validation", "test")


@pytest.fixture(scope="module")
def derm7pt_dir(tmp_path_factory):
    return write_derm7pt_demo(tmp_path_factory.mktemp("derm7pt") / "release_v0", n_cases=40, image_size=32, seed=0)


@pytest.fixture
def fresh_dir(tmp_path, derm7pt_dir):
    """A private copy of the CSVs (images are shared) that a test may corrupt."""
    import shutil

    folder = tmp_path / "release_v0"
    shutil.copytree(derm7pt_dir / "meta", folder / "meta")
    (folder / "images").symlink_to(derm7pt_dir / "images")
    return folder


def test_items_carry_the_annotations_and_isic_labels(derm7pt_dir, tmp_path, capsys):
    out = tmp_path / "derm7pt.json"
    prepare_derm7pt(str(derm7pt_dir), str(out), check_files=True, progress=False)
    message = capsys.readouterr().out
    datalist = load_datalist(out)
    meta = pd.read_csv(derm7pt_dir / "meta" / "meta.csv")

    assert datalist["classes"] == list(ISIC_CLASSES)
    by_case = {item["case_num"]: (split, item) for split in SPLITS for item in datalist[split]}
    for _, row in meta.iterrows():
        isic = DIAGNOSIS_TO_ISIC[row["diagnosis"]]
        if isic is None:
            assert row["case_num"] not in by_case
            continue
        split, item = by_case[row["case_num"]]
        assert item["label"] == ISIC_CLASSES.index(isic)
        assert item["diagnosis"] == row["diagnosis"]
        assert item["image"] == f"images/{row['derm']}" and item["clinic_image"] == f"images/{row['clinic']}"
        for criterion in SEVEN_POINT_CRITERIA:
            assert item[criterion] == row[criterion]
        assert item["seven_point_score"] == row["seven_point_score"]
        assert item["sex"] == row["sex"] and item["location"] == row["location"]
    # the split follows the index files
    for split, name in zip(SPLITS, ("train", "valid", "test"), strict=True):
        idx = pd.read_csv(derm7pt_dir / "meta" / f"{name}_indexes.csv")["indexes"]
        expected = {int(meta["case_num"][i]) for i in idx if DIAGNOSIS_TO_ISIC[meta["diagnosis"][i]] is not None}
        assert {item["case_num"] for item in datalist[split]} == expected

    # unmapped diagnoses are listed in the datalist and in the message, never dropped silently
    unmapped = datalist["unmapped"]
    expected_unmapped = meta[meta["diagnosis"].isin(["melanosis", "miscellaneous"])]
    assert sorted(u["case_num"] for u in unmapped) == sorted(expected_unmapped["case_num"])
    assert {u["diagnosis"] for u in unmapped} == {"melanosis", "miscellaneous"}
    assert len(by_case) + len(unmapped) == len(meta)
    assert "melanosis" in message and "miscellaneous" in message and "unmapped" in message


def test_mapping_of_every_derm7pt_diagnosis():
    assert DIAGNOSIS_TO_ISIC["clark nevus"] == "NV" and DIAGNOSIS_TO_ISIC["reed or spitz nevus"] == "NV"
    assert DIAGNOSIS_TO_ISIC["melanoma (in situ)"] == "MEL" and DIAGNOSIS_TO_ISIC["melanoma metastasis"] == "MEL"
    assert DIAGNOSIS_TO_ISIC["basal cell carcinoma"] == "BCC" and DIAGNOSIS_TO_ISIC["dermatofibroma"] == "DF"
    assert DIAGNOSIS_TO_ISIC["seborrheic keratosis"] == "BKL" and DIAGNOSIS_TO_ISIC["vascular lesion"] == "VASC"
    assert {d for d, c in DIAGNOSIS_TO_ISIC.items() if c is None} == {"melanosis", "miscellaneous"}
    assert set(c for c in DIAGNOSIS_TO_ISIC.values() if c) <= set(ISIC_CLASSES)


def test_diagnosis_map_override_and_clinical_images(derm7pt_dir, tmp_path):
    out = tmp_path / "derm7pt.json"
    prepare_derm7pt(str(derm7pt_dir), str(out), image="clinic", diagnosis_map={"lentigo": None, "melanosis": "BKL"})
    datalist = load_datalist(out)
    items = [i for s in SPLITS for i in datalist[s]]
    assert all(i["image"].startswith("images/") and i["derm_image"] != i["image"] for i in items)
    assert "lentigo" in {u["diagnosis"] for u in datalist["unmapped"]}
    assert {i["label"] for i in items if i["diagnosis"] == "melanosis"} == {ISIC_CLASSES.index("BKL")}
    with pytest.raises(DataError, match="not one of"):
        prepare_derm7pt(str(derm7pt_dir), str(out), diagnosis_map={"lentigo": "FOO"})


def _edit_meta(folder, row, column, value):
    path = folder / "meta" / "meta.csv"
    meta = pd.read_csv(path, keep_default_na=False).astype({column: object})
    meta.loc[row, column] = value
    meta.to_csv(path, index=False)


def _edit_index(folder, name, values):
    pd.DataFrame({"indexes": values}).to_csv(folder / "meta" / f"{name}_indexes.csv", index=False)


@pytest.mark.parametrize(
    "corrupt, pattern",
    [
        (lambda f: _edit_meta(f, 4, "diagnosis", ""), r"meta.csv: line 6 has no value in column 'diagnosis'"),
        (lambda f: _edit_meta(f, 2, "streaks", "wavy"), r"line 4 has unknown value 'wavy' in column 'streaks'"),
        (lambda f: _edit_meta(f, 3, "derm", pd.read_csv(f / "meta" / "meta.csv")["derm"][1]),
         r"dermoscopic image .* appears more than once \(lines 3 and 5"),
        (lambda f: _edit_meta(f, 7, "case_num", 1), r"case_num 1 appears more than once"),
        (lambda f: _edit_index(f, "valid", [0, 1000]), r"valid_indexes.csv: line 3 has index 1000, not a row"),
        (lambda f: _edit_index(f, "test", [int(pd.read_csv(f / "meta" / "train_indexes.csv")["indexes"][0])]),
         r"test_indexes.csv: line 2: case at index \d+ is also in the training split"),
        (lambda f: (f / "meta" / "valid_indexes.csv").unlink(), r"index file not found"),
        (lambda f: pd.read_csv(f / "meta" / "meta.csv").drop(columns=["pigment_network"]).to_csv(
            f / "meta" / "meta.csv", index=False), r"lacks column\(s\) \['pigment_network'\]"),
    ],
    ids=["nan", "unknown-value", "duplicate-image", "duplicate-case", "index-range", "index-overlap",
         "missing-index-file", "missing-column"],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(fresh_dir, tmp_path, corrupt, pattern):
    corrupt(fresh_dir)
    out = tmp_path / "out.json"
    with pytest.raises(DataError, match=pattern):
        prepare_derm7pt(str(fresh_dir), str(out))
    assert not out.exists()


def test_missing_image_with_check_files(tmp_path):
    folder = write_derm7pt_demo(tmp_path / "d", n_cases=22, image_size=16, seed=1)
    derm = pd.read_csv(folder / "meta" / "meta.csv")["derm"][5]
    (folder / "images" / derm).unlink()
    with pytest.raises(DataError, match="derm image file missing.*" + derm.split("/")[-1]):
        prepare_derm7pt(str(folder), str(tmp_path / "out.json"), check_files=True, progress=False)


def test_cli(derm7pt_dir, tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert cli_main(["prepare", "derm7pt", str(derm7pt_dir), str(out)]) == 0
    assert json.loads(out.read_text())["name"] == "derm7pt"
    assert cli_main(["prepare", "derm7pt", str(tmp_path / "nowhere"), str(out)]) == 2
    assert "dataset_dir not found" in capsys.readouterr().err
