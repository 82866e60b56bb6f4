"""The datalist checks: structure, paths inside dataset_dir, and train/test leakage (images and lesions/patients)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medattn_monai.data import load_datalist, save_datalist, split_hash, split_items
from medattn_monai.data.isic2019 import GROUND_TRUTH_CSV, METADATA_CSV, prepare_isic2019
from medattn_monai.engine.evaluation import inference_items
from medattn_monai.errors import DataError


def _item(image: str, label: int = 0, **fields) -> dict:
    return {"image": image, "label": label, **fields}


def _write(tmp_path: Path, datalist, name: str = "datalist.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(datalist))
    return path


def _isic(training, validation=(), test=()) -> dict:
    return {"name": "isic2019", "classes": ["a", "b"], "training": list(training), "validation": list(validation),
            "test": list(test)}


def test_a_list_or_a_split_that_is_not_a_list_is_one_line(tmp_path):
    path = _write(tmp_path, [_item("a.jpg")])
    with pytest.raises(DataError, match=rf"^datalist {path} is a JSON list, not an object"):
        load_datalist(path)
    path = _write(tmp_path, {"classes": ["a"], "training": {"image": "a.jpg", "label": 0}})
    with pytest.raises(DataError, match=rf"^datalist {path}: split 'training' is a dict, not a list of items$"):
        load_datalist(path)


@pytest.mark.parametrize("training, test, pattern", [
    ([_item("x/a.jpg"), _item("x/b.jpg"), _item("x/a.jpg")], [],
     r"image 'x/a\.jpg' in training\[0\], training\[2\]: an image belongs to one split, once"),
    ([_item("x/a.jpg")], [_item("x/./a.jpg")], r"image 'x/a\.jpg' in training\[0\], test\[0\]:"),
    ([_item("x/a.jpg", 0)], [_item("x/a.jpg", 1)],
     r"image 'x/a\.jpg' in training\[0\], test\[0\] with labels \[0, 1\]"),
], ids=["twice-in-one-split", "in-two-splits", "two-labels"])
def test_an_image_listed_twice_is_refused_naming_both_places(tmp_path, training, test, pattern):
    path = _write(tmp_path, {"classes": ["a", "b"], "training": training, "test": test})
    with pytest.raises(DataError, match=rf"^datalist {path}: {pattern}"):
        load_datalist(path)


def test_many_repeated_images_give_a_count_and_the_first_few(tmp_path):
    items = [_item(f"i{k}.jpg") for k in range(40)]
    path = _write(tmp_path, {"classes": ["a"], "training": items[:30], "test": items[6:]})
    with pytest.raises(DataError) as info:
        load_datalist(path)
    message = str(info.value)
    assert "\n" not in message and "24 images are listed more than once, e.g. 'i6.jpg' in training[6], test[0];" \
        in message and message.count(" in training[") == 3


def test_a_lesion_in_training_and_test_is_refused_several_images_in_one_split_are_not(tmp_path):
    ok = _isic([_item("a.jpg", lesion_id="L1"), _item("b.jpg", lesion_id="L1"), _item("c.jpg", lesion_id=None)],
               [_item("d.jpg", lesion_id="L2")], [_item("e.jpg", lesion_id="L3"), _item("f.jpg", lesion_id=None)])
    load_datalist(_write(tmp_path, ok))
    leaky = _isic(ok["training"], ok["validation"], [*ok["test"], _item("g.jpg", lesion_id="L1")])
    path = _write(tmp_path, leaky)
    with pytest.raises(DataError, match=rf"^datalist {path}: lesion_id 'L1' is in training\[0\] and test\[2\]: the "
                                        r"images of one lesion_id belong to one split \(train/test leakage\)$"):
        load_datalist(path)
    # validation too: only a split the datalist declares may share groups with training, and never a test split
    leaky = _isic(ok["training"], [_item("d.jpg", lesion_id="L1")], ok["test"])
    with pytest.raises(DataError, match=r"lesion_id 'L1' is in training\[0\] and validation\[0\]"):
        load_datalist(_write(tmp_path, leaky))
    load_datalist(_write(tmp_path, {**leaky, "groups_shared_with_training": ["validation"]}))
    with pytest.raises(DataError, match=r"'groups_shared_with_training' lists \['test'\]; .*\(a test split never"):
        load_datalist(_write(tmp_path, {**ok, "groups_shared_with_training": ["test"]}))


def test_camelyon17_validation_shares_patients_by_design_test_ood_may_not(tmp_path):
    def patches(patient, n, first=0):
        return [_item(f"p{patient}_{k}.png", k % 2, patient=patient) for k in range(first, first + n)]

    datalist = {"name": "camelyon17", "classes": ["normal", "tumor"], "training": patches(1, 3),
                "validation": patches(1, 2, first=3), "test": patches(2, 2), "test_ood": patches(3, 6)}
    load_datalist(_write(tmp_path, datalist))  # WILDS id_val: other patches of the training slides
    datalist["test_ood"][4:] = patches(1, 2, first=10)
    with pytest.raises(DataError, match=r"patient 1 is in training\[0\] and test_ood\[4\]"):
        load_datalist(_write(tmp_path, datalist))
    # validation selects the model: it may share training's patients, never a test split's
    datalist["test_ood"][4:] = patches(3, 2, first=4)
    datalist["validation"].append(_item("p2_9.png", 0, patient=2))
    with pytest.raises(DataError, match=r"patient 2 is in validation\[2\] and test\[0\]"):
        load_datalist(_write(tmp_path, datalist))


def test_the_group_field_must_be_on_every_item_unless_declared_absent(tmp_path):
    datalist = _isic([_item("a.jpg", lesion_id="L1"), _item("b.jpg")], test=[_item("c.jpg", lesion_id="L2")])
    path = _write(tmp_path, datalist)
    with pytest.raises(DataError, match=rf"^datalist {path}: training\[1\] \(b\.jpg\) lacks the group field "
                                        r"'lesion_id'"):
        load_datalist(path)
    load_datalist(_write(tmp_path, {**datalist, "group_field": None}))
    with pytest.raises(DataError, match=r"lacks the group field 'case'"):
        load_datalist(_write(tmp_path, {**datalist, "name": "mine", "group_field": "case"}))


@pytest.mark.parametrize("image, pattern", [
    ("/etc/passwd", r"image '/etc/passwd' is an absolute path"),
    ("../secret.jpg", r"image '\.\./secret\.jpg' climbs out of dataset_dir with '\.\.'"),
    ("x/../../secret.jpg", r"image 'x/\.\./\.\./secret\.jpg' climbs out of dataset_dir"),
    ("C:\\data\\a.jpg", r"image '.*a\.jpg' is an absolute path"),
    (7, r"field 'image' is 7, not a path relative to dataset_dir"),
])
def test_paths_outside_dataset_dir_are_refused_naming_the_item(tmp_path, image, pattern):
    path = _write(tmp_path, {"classes": ["a"], "training": [_item("ok.jpg"), _item(image)]})
    with pytest.raises(DataError, match=rf"^datalist {path}: training\[1\]: {pattern}"):
        load_datalist(path)


def test_mask_paths_follow_the_same_rule_and_inner_dots_are_fine(tmp_path):
    path = _write(tmp_path, {"classes": ["a"], "training": [_item("x/../ok.jpg", lesion_mask="masks/ok.png"),
                                                            _item("b.jpg", lesion_mask="../../m.png")]})
    with pytest.raises(DataError, match=r"training\[1\]: lesion_mask '\.\./\.\./m\.png' climbs out"):
        load_datalist(path)
    path = _write(tmp_path, {"classes": ["a"], "training": [_item("x/../ok.jpg", lesion_mask=None)]})
    (tmp_path / "ok.jpg").write_bytes(b"")
    assert split_items(load_datalist(path), "training", tmp_path)[0]["image"] == str(tmp_path / "ok.jpg")


def test_split_items_refuses_an_absolute_path_of_a_datalist_built_in_memory(tmp_path):
    datalist = {"classes": ["a"], "training": [_item(str(tmp_path / "a.jpg"))]}
    with pytest.raises(DataError, match=r"datalist: training\[0\]: image '.*a\.jpg' is an absolute path"):
        split_items(datalist, "training", tmp_path)


def test_inference_on_a_folder_still_takes_absolute_paths(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.png").write_bytes(b"")
    items = inference_items(input_dir=str(tmp_path / "in"))
    assert items == [{"image": str(tmp_path / "in" / "sub" / "a.png"), "image_id": "sub/a.png", "index": 0}]


def test_split_hash_follows_the_splits_not_the_stated_hash(tmp_path, caplog):
    datalist = _isic([_item("a.jpg", lesion_id="L1"), _item("b.jpg", lesion_id="L2")],
                     test=[_item("c.jpg", lesion_id="L3")])
    saved = save_datalist(datalist, tmp_path / "d.json")
    moved = json.loads((tmp_path / "d.json").read_text())
    moved["test"].append(moved["training"].pop(1))  # edited by hand, the stated hash left as it was
    path = _write(tmp_path, moved, "edited.json")
    with caplog.at_level(logging.WARNING, logger="medattn"):
        loaded = load_datalist(path)
    assert loaded["split_hash"] == split_hash(moved) != saved["split_hash"]
    assert f"states split_hash {saved['split_hash']}" in caplog.text


def test_save_refuses_a_leaky_datalist_and_writes_nothing(tmp_path):
    leaky = _isic([_item("a.jpg", lesion_id="L1")], test=[_item("b.jpg", lesion_id="L1")])
    with pytest.raises(DataError, match=r"lesion_id 'L1' is in training\[0\] and test\[0\]"):
        save_datalist(leaky, tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def isic_tables(demo_data, tmp_path) -> Path:
    """The demo's two ISIC CSVs without the images (the converter does not open them)."""
    root = tmp_path / "isic"
    root.mkdir()
    for name in (GROUND_TRUTH_CSV, METADATA_CSV):
        shutil.copy(demo_data.dataset_dir / name, root / name)
    return root


def test_isic_duplicate_metadata_ids_are_refused(isic_tables, tmp_path):
    meta = pd.read_csv(isic_tables / METADATA_CSV)
    # 40 rows repeated under other lesion ids: the merge used to list their images twice, 23 of them in two splits
    again = meta.iloc[:40].assign(lesion_id=[f"IL_other_{k}" for k in range(40)])
    pd.concat([meta, again]).to_csv(isic_tables / METADATA_CSV, index=False)
    with pytest.raises(DataError, match=rf"{METADATA_CSV}: image '{meta['image'][0]}' appears more than once "
                                        rf"\(lines 2 and {len(meta) + 2}, 40 duplicate row\(s\) in all\); 40 values "
                                        rf"repeated in all, also '{meta['image'][1]}',"):
        prepare_isic2019(str(isic_tables), str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()


def test_isic_missing_metadata_rows_are_refused_or_recorded_on_request(isic_tables, tmp_path):
    meta = pd.read_csv(isic_tables / METADATA_CSV)
    gone = meta["image"].iloc[[3, 10]].tolist()
    meta.drop(index=[3, 10]).to_csv(isic_tables / METADATA_CSV, index=False)
    with pytest.raises(DataError, match=rf"{METADATA_CSV} has no row for 2 image\(s\) of {GROUND_TRUTH_CSV}: "
                                        rf"{gone[0]}, {gone[1]} .*--allow_missing_metadata"):
        prepare_isic2019(str(isic_tables), str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()
    prepare_isic2019(str(isic_tables), str(tmp_path / "out.json"), allow_missing_metadata=True)
    datalist = load_datalist(tmp_path / "out.json")
    assert datalist["meta"]["images_without_metadata"] == sorted(gone)
    items = [item for s in ("training", "validation", "test") for item in datalist[s]]
    flagged = sorted(Path(i["image"]).stem for i in items if i["metadata_missing"])
    assert flagged == sorted(gone)
    assert all(i["lesion_id"] is None for i in items if i["metadata_missing"])
    assert datalist["group_field"] == "lesion_id"
