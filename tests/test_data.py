"""Demo generator, ISIC 2019 converter, dataset caching and batched augmentation."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medattn_monai.data import (
    BatchAugment,
    ImageClassificationDataset,
    ImageLoader,
    LoadResizeImaged,
    load_datalist,
    make_dataloader,
    release_workers,
    split_items,
)
from medattn_monai.data.demo import write_isic2019_demo
from medattn_monai.data.isic2019 import GROUND_TRUTH_CSV, ISIC_CLASSES, METADATA_CSV, prepare_isic2019
from medattn_monai.errors import DataError


def _digest(folder: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_demo_is_deterministic_and_in_isic_format(tmp_path):
    a = write_isic2019_demo(tmp_path / "a", n_lesions=40, seed=3)
    b = write_isic2019_demo(tmp_path / "b", n_lesions=40, seed=3)
    assert _digest(a) == _digest(b)
    gt = pd.read_csv(a / GROUND_TRUTH_CSV)
    assert list(gt.columns) == ["image", *ISIC_CLASSES, "UNK"]
    assert (gt[list(ISIC_CLASSES)].sum(axis=1) == 1).all()
    meta = pd.read_csv(a / METADATA_CSV)
    assert list(meta.columns) == ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    assert meta["lesion_id"].duplicated().any(), "some lesions must be imaged twice"
    assert all((a / "ISIC_2019_Training_Input" / f"{n}.jpg").is_file() for n in gt["image"])


def test_shuffled_labels_keep_images_and_permute_labels(tmp_path):
    a = write_isic2019_demo(tmp_path / "a", n_lesions=60, seed=1)
    b = write_isic2019_demo(tmp_path / "b", n_lesions=60, seed=1, shuffle_labels=True)
    ga, gb = pd.read_csv(a / GROUND_TRUTH_CSV), pd.read_csv(b / GROUND_TRUTH_CSV)
    assert (ga[list(ISIC_CLASSES)].sum() == gb[list(ISIC_CLASSES)].sum()).all()  # same class counts
    assert (ga[list(ISIC_CLASSES)].to_numpy() != gb[list(ISIC_CLASSES)].to_numpy()).any()


def test_split_is_stratified_and_grouped_by_lesion(demo_data):
    d = load_datalist(demo_data.datalist)
    assert d["demo"] is True and len(d["classes"]) == 8
    lesions = {s: {i["lesion_id"] for i in d[s] if i["lesion_id"]} for s in ("training", "validation", "test")}
    assert not lesions["training"] & lesions["validation"]
    assert not lesions["training"] & lesions["test"]
    assert not lesions["validation"] & lesions["test"]
    n = {s: np.bincount([i["label"] for i in d[s]], minlength=8) for s in ("training", "validation", "test")}
    total = sum(n.values())
    # every class is split roughly 70/15/15 (whole lesions move, so allow slack)
    assert np.all(np.abs(n["training"] / total - 0.7) < 0.12)
    assert "artefact" in d["training"][0] and "lesion_mask" in d["training"][0]


def test_same_seed_same_split_other_seed_other_split(demo_data, tmp_path):
    a = prepare_isic2019(str(demo_data.dataset_dir), str(tmp_path / "a.json"), seed=0)
    b = prepare_isic2019(str(demo_data.dataset_dir), str(tmp_path / "b.json"), seed=0)
    c = prepare_isic2019(str(demo_data.dataset_dir), str(tmp_path / "c.json"), seed=1)
    ha, hb, hc = (json.loads(Path(p).read_text())["split_hash"] for p in (a, b, c))
    assert ha == hb != hc


def _copy_isic(demo_data, tmp_path) -> Path:
    dst = tmp_path / "isic"
    shutil.copytree(demo_data.dataset_dir, dst)
    return dst


def test_converter_errors_name_the_file_and_field(demo_data, tmp_path):
    root = _copy_isic(demo_data, tmp_path)
    gt = pd.read_csv(root / GROUND_TRUTH_CSV)
    gt.drop(columns=["BKL"]).to_csv(root / GROUND_TRUTH_CSV, index=False)
    with pytest.raises(DataError, match=r"GroundTruth\.csv.*lacks column\(s\) \['BKL'\]"):
        prepare_isic2019(str(root), str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists(), "no partial output"
    bad = gt.copy()
    bad.loc[3, "MEL"] = 1.0
    bad.loc[3, "NV"] = 1.0
    bad.to_csv(root / GROUND_TRUTH_CSV, index=False)
    with pytest.raises(DataError, match="line 5 .* not one-hot"):
        prepare_isic2019(str(root), str(tmp_path / "out.json"))
    for value in ("x", "0.5", "2.0"):  # 'x' was a traceback (a float conversion error)
        bad = gt.copy().astype({"SCC": object})
        bad.loc[6, "SCC"] = value
        bad.to_csv(root / GROUND_TRUTH_CSV, index=False)
        with pytest.raises(DataError, match=rf"GroundTruth\.csv: line 8 \(image ISIC_\d+\) has '?{value}'? in "
                                            r"column 'SCC', not 0 or 1"):
            prepare_isic2019(str(root), str(tmp_path / "out.json"))
    with pytest.raises(DataError, match="dataset_dir not found"):
        prepare_isic2019(str(tmp_path / "nowhere"), str(tmp_path / "out.json"))


def test_datalist_errors(tmp_path, demo_data):
    d = json.loads(demo_data.datalist.read_text())
    d["training"][2]["label"] = 11
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"training\[2\].*label 11"):
        load_datalist(bad)
    d = json.loads(demo_data.datalist.read_text())
    d["validation"] = []
    bad.write_text(json.dumps(d))
    with pytest.raises(DataError, match="split 'validation' .* is empty"):
        split_items(load_datalist(bad), "validation", demo_data.dataset_dir)


def _dataset(items, cache="ram", size=32):
    return ImageClassificationDataset(items, LoadResizeImaged("image", size), (3, size, size), cache=cache,
                                      progress=False, name="t")


def test_ram_and_stream_give_the_same_batches(demo_data):
    items = split_items(load_datalist(demo_data.datalist), "validation", demo_data.dataset_dir)[:40]
    ram, stream = _dataset(items, "ram"), _dataset(items, "stream")
    idx = [5, 0, 39, 7]
    a, b = ram.__getitems__(idx), stream.__getitems__(idx)
    assert a["image"].dtype == torch.uint8 and a["image"].shape == (4, 3, 32, 32)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert a["index"].tolist() == idx


def test_missing_and_corrupt_images_are_named(demo_data, tmp_path):
    items = split_items(load_datalist(demo_data.datalist), "validation", demo_data.dataset_dir)[:5]
    missing = [dict(items[0], image=str(tmp_path / "gone.jpg")), *items[1:]]
    with pytest.raises(DataError, match="image not found: .*gone.jpg"):
        _dataset(missing)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(Path(items[0]["image"]).read_bytes()[:300])  # a truncated JPEG
    ds = _dataset([dict(items[0], image=str(corrupt)), *items[1:]], cache="stream")
    with pytest.raises(DataError, match="cannot decode image .*corrupt.jpg"):
        ds.__getitems__([0])


def test_loader_order_depends_only_on_seed_and_epoch(demo_data):
    items = split_items(load_datalist(demo_data.datalist), "validation", demo_data.dataset_dir)[:64]
    ds = _dataset(items)

    def order(seed, epoch):
        loader = make_dataloader(ds, 16, shuffle=True, seed=seed)
        loader.sampler.set_epoch(epoch)
        return torch.cat([b["index"] for b in loader]).tolist()

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)
    assert sorted(order(0, 3)) == list(range(64))


def test_batch_augment_is_a_reseeded_symmetry_of_the_square():
    x = torch.rand(64, 3, 8, 8)
    aug = BatchAugment(seed=5)
    aug.set_epoch(2)
    a = aug(x)
    aug.set_epoch(2)
    assert torch.equal(a, aug(x)), "same (seed, epoch) must give the same augmentation"
    aug.set_epoch(3)
    assert not torch.equal(a, aug(x))
    # every output image is one of the 8 rotations/flips of its input (no colour jitter here)
    for i in range(len(x)):
        images = [torch.rot90(x[i], k, (1, 2)) for k in range(4)]
        images += [im.flip(-1) for im in images]
        assert any(torch.equal(a[i], im) for im in images)
    used = {min(k for k in range(8) if torch.equal(a[i], ([torch.rot90(x[i], r, (1, 2)) for r in range(4)]
            + [torch.rot90(x[i], r, (1, 2)).flip(-1) for r in range(4)])[k])) for i in range(len(x))}
    assert len(used) == 8


def test_colour_jitter_stays_in_range_and_varies_per_sample():
    x = torch.full((16, 3, 4, 4), 0.5)
    out = BatchAugment(flips=False, rot90=False, brightness=0.2, contrast=0.2, saturation=0.2, seed=0)(x)
    assert out.min() >= 0 and out.max() <= 1
    assert out.view(16, -1).mean(1).unique().numel() > 1


def test_release_workers_stops_persistent_workers_and_a_later_epoch_starts_new_ones():
    before = set(multiprocessing.active_children())
    loader = ImageLoader(list(range(8)), batch_size=4, num_workers=1, persistent_workers=True)
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert set(multiprocessing.active_children()) - before  # the worker outlives the epoch (persistent)
    assert release_workers() >= 1  # this loader, and any that another test left running
    assert set(multiprocessing.active_children()) <= before
    assert release_workers() == 0  # nothing left to stop
    assert sum(len(b) for b in loader) == 8  # the next epoch starts a new worker
    loader.release_workers()
    assert set(multiprocessing.active_children()) <= before
