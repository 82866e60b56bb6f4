"""Camelyon17-WILDS converter: the WILDS split rules on a hand-written table, patient-grouped ID test, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medattn_monai.cli import main as cli_main
from medattn_monai.data import load_datalist, split_items
from medattn_monai.data.camelyon17 import METADATA_COLUMNS, camelyon17_splits, patch_paths, prepare_camelyon17
from medattn_monai.errors import DataError

# (patient, centre, split) blocks of a hand-written table: 2 patients in each training hospital, with split-1 rows
# (WILDS id_val); hospital 1 also has a split-1 row, which WILDS still assigns to the OOD validation hospital
_BLOCKS = [
    (0, 0, [0, 0, 0, 1]), (1, 0, [0, 0, 0, 0, 1]),
    (60, 3, [0, 0, 0, 1]), (61, 3, [0, 0, 0]),
    (80, 4, [0, 0, 1, 1]), (81, 4, [0, 0, 0, 0]),
    (20, 1, [0, 0, 1]), (21, 1, [0]),
    (40, 2, [0, 0, 0]),
]


def _table() -> pd.DataFrame:
    rows = []
    for patient, centre, splits in _BLOCKS:
        node = patient % 5
        for k, split in enumerate(splits):
            rows.append({"patient": patient, "node": node, "x_coord": 96 * k, "y_coord": 960 + 96 * k,
                         "tumor": k % 2, "slide": patient, "center": centre, "split": split})
    return pd.DataFrame(rows, columns=list(METADATA_COLUMNS))


def _write(folder: Path, table: pd.DataFrame, images: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "metadata.csv")  # with the leading unnamed index column, as WILDS ships it
    if images:
        for rel in patch_paths(table):
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return folder


def _convert(tmp_path: Path, table: pd.DataFrame, **kwargs) -> dict:
    folder = _write(tmp_path / "wilds", table, images=kwargs.pop("images", False))
    out = tmp_path / "datalist.json"
    prepare_camelyon17(str(folder), str(out), progress=False, **kwargs)
    return load_datalist(out)


def test_wilds_split_rules_on_a_hand_written_table(tmp_path):
    table = _table()
    datalist = _convert(tmp_path, table)
    paths = patch_paths(table)

    def rows_of(split: str) -> set[str]:
        return {item["image"] for item in datalist[split]}

    train_centres = table["center"].isin([0, 3, 4])
    test_patients = {item["patient"] for item in datalist["test"]}
    # WILDS id_val less the held-out test patients' patches: model selection never sees a test patient
    assert rows_of("validation") == set(paths[train_centres & (table["split"] == 1)
                                              & ~table["patient"].isin(test_patients)])
    assert not {item["patient"] for item in datalist["validation"]} & test_patients
    assert rows_of("val_ood") == set(paths[table["center"] == 1])  # the split-1 row of hospital 1 included
    assert rows_of("test_ood") == set(paths[table["center"] == 2])
    pool = set(paths[train_centres & (table["split"] == 0)])
    assert rows_of("training") | rows_of("test") == pool
    assert not rows_of("training") & rows_of("test")

    patients = {s: {item["patient"] for item in datalist[s]} for s in ("training", "test")}
    assert patients["training"] and patients["test"]
    assert not patients["training"] & patients["test"], "a patient is in both training and test"
    # stratified by hospital: every training hospital keeps training patients and gives test patients
    for centre in (0, 3, 4):
        assert any(i["center"] == centre for i in datalist["training"])
        assert any(i["center"] == centre for i in datalist["test"])

    assert datalist["classes"] == ["normal", "tumor"]
    assert {item["label"] for s in ("training", "val_ood") for item in datalist[s]} == {0, 1}
    assert datalist["split_hash"] and datalist["meta"]["test_patients"] == sorted(patients["test"])


def test_patch_path_format():
    table = pd.DataFrame([{"patient": 4, "node": 2, "x_coord": 3328, "y_coord": 21792, "tumor": 1, "slide": 7,
                           "center": 0, "split": 0}])
    assert patch_paths(table).iloc[0] == "patches/patient_004_node_2/patch_patient_004_node_2_x_3328_y_21792.png"


def test_split_is_seeded_and_grouped_by_patient():
    rng = np.random.default_rng(0)
    n = 4000
    patient = rng.integers(0, 100, n)
    table = pd.DataFrame({"patient": patient, "center": patient // 20, "split": (rng.random(n) < 0.1).astype(int)})
    a, b = camelyon17_splits(table, 0.15, seed=1), camelyon17_splits(table, 0.15, seed=1)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert set(patient[a["training"]]).isdisjoint(patient[a["test"]])
    held_out = len(a["test"]) / (len(a["test"]) + len(a["training"]))
    assert 0.08 < held_out < 0.3
    other = camelyon17_splits(table, 0.15, seed=2)
    assert not np.array_equal(a["test"], other["test"]) or not np.array_equal(a["training"], other["training"])


def test_max_samples_per_split_subsamples_each_split(tmp_path):
    full = _convert(tmp_path, _table())
    capped = _convert(tmp_path, _table(), max_samples_per_split=2)
    for split in ("training", "validation", "test", "val_ood", "test_ood"):
        assert len(capped[split]) == min(2, len(full[split]))
        assert {i["image"] for i in capped[split]} <= {i["image"] for i in full[split]}
    again = _convert(tmp_path, _table(), max_samples_per_split=2)
    assert again["split_hash"] == capped["split_hash"]
    # the same cap at load time (the bundle's max_samples_per_split key)
    items = split_items(full, "training", max_samples=3)
    assert len(items) == 3 and [i["index"] for i in items] == sorted(i["index"] for i in items)


def test_check_files(tmp_path):
    table = _table()
    datalist = _convert(tmp_path, table, images=True, check_files=True)
    assert len(datalist["training"]) > 0
    missing = tmp_path / "wilds" / patch_paths(table).iloc[5]
    missing.unlink()
    with pytest.raises(DataError, match="patch file missing.*" + missing.name):
        _convert(tmp_path, table, check_files=True)


def _set(row: int, column: str, value):
    """An edit of the table: one cell changed (row is 0-based; the CSV line is row + 2)."""

    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table = table.astype({column: object})
        table.loc[row, column] = value
        return table

    return edit


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda t: t.drop(columns=["center"]), r"lacks column\(s\) \['center'\]"),
        (_set(3, "tumor", np.nan), r"line 5 has no value in column 'tumor'"),
        (_set(6, "center", 7), r"line 8 has unknown centre 7 in column 'center'"),
        (_set(2, "split", 2), r"line 4 has unknown split 2 in column 'split'"),
        (_set(0, "tumor", 3), r"line 2 has unknown tumour label 3"),
        (_set(4, "x_coord", "abc"), r"line 6 has 'abc' in column 'x_coord', not an integer"),
        (_set(4, "y_coord", 1.5), r"line 6 has .*1.5.* in column 'y_coord', not an integer"),
        (lambda t: pd.concat([t, t.iloc[[1]]], ignore_index=True),
         r"patch .* appears more than once \(lines 3 and \d+"),
        (_set(1, "center", 3), r"patient 0 appears under centres \[0, 3\]"),
        (lambda t: t.iloc[0:0], r"has no rows"),
    ],
    ids=["missing-column", "nan", "unknown-centre", "unknown-split", "bad-label", "not-integer", "fraction",
         "duplicate", "patient-two-centres", "empty"],
)
def test_bad_metadata_is_a_clear_error_and_writes_nothing(tmp_path, edit, pattern):
    out = tmp_path / "datalist.json"
    out.write_text('{"old": true}')
    folder = _write(tmp_path / "wilds", edit(_table()))
    with pytest.raises(DataError, match=pattern) as err:
        prepare_camelyon17(str(folder), str(out), progress=False)
    assert "metadata.csv" in str(err.value)
    assert json.loads(out.read_text()) == {"old": True}, "a failed conversion must leave the old output alone"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temporary file left behind"


def test_too_few_patients_for_a_test_split(tmp_path):
    table = _table()
    table = table[table["patient"].isin([0, 20, 40])]
    with pytest.raises(DataError, match="too few"):
        _convert(tmp_path, table)


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    folder = _write(tmp_path / "wilds", _table().drop(columns=["split"]))
    code = cli_main(["prepare", "camelyon17", str(folder), str(tmp_path / "out.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "lacks column(s) ['split']" in err
    assert not (tmp_path / "out.json").exists()
