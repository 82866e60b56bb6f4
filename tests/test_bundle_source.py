"""The two repository bundles cannot drift: their configs are generated from one source (bundles/_source), no file
is stale, and a key both bundles define has one value in both, except the dataset keys listed here."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from conftest import REPO
from medattn_monai.engine.bundle_source import BUNDLES, GENERATED, SOURCE, _markers, stale_files
from medattn_monai.engine.config_keys import KEY_TYPES

# the keys whose value may differ between the bundles, per file (MONAI ids); adding one is a decision made here
DATASET_KEYS = {
    "train.json": {
        "image_size", "epochs", "learning_rate", "color_jitter", "val_batch_size", "max_samples_per_split",
        "dataset_name", "dataset_dir", "datalist", "bundle_root", "training_parameters#color_jitter",
        "training_parameters#max_samples_per_split", "train#dataset#data", "validate#dataset#data",
        "train#augment#brightness", "train#augment#contrast", "train#augment#saturation",
    },
    "evaluate.json": {"eval_splits", "max_samples_per_split", "eval_loaders"},
    "inference.json": {"dataset_name", "val_batch_size", "bundle_root"},
    "multi_gpu_train.json": set(),
    "metadata.json": {
        "changelog", "name", "task", "description", "data_source", "data_type", "image_classes", "label_classes",
        "pred_classes", "references", "network_data_format#inputs#image#modality",
        "network_data_format#inputs#image#spatial_shape", "network_data_format#inputs#image#is_patch_data",
        "network_data_format#outputs#pred#num_channels", "network_data_format#outputs#pred#channel_def",
    },
}


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """``id -> value`` of every leaf; a key listed in ``DATASET_KEYS`` stops the descent (it differs as a whole)."""
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}#{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _drift(name: str, first: dict, second: dict) -> list[str]:
    """The ids both configs define whose values differ, and that are not (under) a listed dataset key."""
    allowed = DATASET_KEYS[name]
    a, b = _leaves(first), _leaves(second)
    return sorted(i for i in set(a) & set(b) if a[i] != b[i]
                  and not any(i == k or i.startswith(k + "#") for k in allowed))


def _config(bundle: str, name: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / name).read_text())


def test_generated_configs_are_up_to_date():
    stale = stale_files()
    assert not stale, f"{stale} differ from bundles/_source: run `python -m medattn_monai.engine.bundle_source`"


@pytest.mark.parametrize("name", [n for n in GENERATED if n.endswith(".json")] + ["metadata.json"])
def test_keys_both_bundles_define_agree_except_dataset_keys(name):
    first, second = (_config(b, name) for b in BUNDLES)
    drift = _drift(name, first, second)
    assert not drift, f"{name}: {drift} differ between the bundles but are not listed dataset keys"


def test_drift_is_caught_when_one_bundle_changes_a_shared_key():
    first, second = (_config(b, "train.json") for b in BUNDLES)
    second["weight_decay"] = 0.01
    second["train"]["trainer"]["decollate"] = True
    assert _drift("train.json", first, second) == ["train#trainer#decollate", "weight_decay"]


def test_only_listed_dataset_keys_are_marked_in_the_source():
    for name in GENERATED:
        if name.endswith(".json"):
            marked = {i for i, m in _markers(json.loads((SOURCE / name).read_text())).items() if m == "<dataset>"}
            assert marked <= DATASET_KEYS[name], f"bundles/_source/{name}: {marked - DATASET_KEYS[name]} unlisted"
    assert (REPO / "bundles" / BUNDLES[0] / "configs" / "logging.conf").read_text() == \
        (REPO / "bundles" / BUNDLES[1] / "configs" / "logging.conf").read_text()


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_user_key_is_typed_and_explained(bundle):
    keys = set()
    for name in ("train.json", "evaluate.json", "inference.json"):
        config = _config(bundle, name)
        literal = {k for k, v in config.items() if v is None or isinstance(v, (bool, int, float))
                   or (isinstance(v, str) and not v.startswith(("$", "@", "%")))}
        assert literal <= set(KEY_TYPES), f"{bundle}/{name}: keys {literal - set(KEY_TYPES)} have no declared type"
        keys |= set(config) & set(KEY_TYPES)
    readme = (REPO / "bundles" / bundle / "docs" / "README.md").read_text()
    explained = set(re.findall(r"`([a-z_]+)`", readme))
    assert keys <= explained, f"{bundle}/docs/README.md does not explain {sorted(keys - explained)}"
