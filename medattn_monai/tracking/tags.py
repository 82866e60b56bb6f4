"""The tags of a training run and the identity of its cell (the configuration without the seed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .naming import cell_hash, git_commit

__all__ = ["NETWORK_KEYS", "cell_of", "experiment_for", "logged_params", "training_tags"]

# the config keys that describe the network; its tags carry their normalised values (``describe_network``)
NETWORK_KEYS = ("backbone", "attention", "baseline", "matched_to", "family", "stages")


def experiment_for(dataset: str, datalist: Mapping[str, Any], experiment_name: str | None = None) -> str:
    """The experiment: given, else the dataset name, suffixed ``-demo`` for demo data."""
    if experiment_name:
        return experiment_name
    return f"{dataset}-demo" if datalist.get("demo") else dataset


def cell_of(dataset: str, split_hash: str, hyper_parameters: Mapping[str, Any]) -> str:
    """The ``cell`` tag: a hash of the dataset, its split and every hyper-parameter except the seed.

    A study computes it before training (from the parsed config) to find the runs a cell already has.
    """
    return cell_hash({"dataset": dataset, "split_hash": split_hash, **dict(hyper_parameters)})


def training_tags(dataset: str, network_facts: Mapping[str, Any], seed: int, split_hash: str,
                  hyper_parameters: Mapping[str, Any], run_type: str = "train") -> dict[str, Any]:
    """The tags of a training run (:data:`~medattn_monai.tracking.naming.TAG_KEYS`); ``cell`` hashes everything but
    the seed."""
    facts = dict(network_facts)
    tags = {
        "dataset": dataset,
        "backbone": facts.get("backbone"),
        "attention": facts.get("attention"),
        "baseline": facts.get("baseline"),
        "family": facts.get("family"),
        "matched_to": facts.get("matched_to"),
        "stages": facts.get("stages"),
        "seed": int(seed),
        "params_count": int(facts["params_count"]),
        "split_hash": split_hash,
        "run_type": run_type,
        "cell": cell_of(dataset, split_hash, hyper_parameters),
        "git_commit": git_commit(),
    }
    return {k: v for k, v in tags.items() if v is not None}


def logged_params(params: Mapping[str, Any], tags: Mapping[str, Any]) -> dict[str, Any]:
    """The params MLflow records for a training: the config's values, except that the network's keys
    (:data:`NETWORK_KEYS`) take the normalised values its tags carry, so params and tags agree.

    The config says ``baseline: null`` for the plain CNN, ``family: null`` for a ViT sized to ResNet18 and
    ``stages: [3, 4]`` for a network without attention; its tags say ``baseline=plain``, ``family=resnet18`` and
    no stages. A key the tags leave out is None (it does not apply). Tags that do not describe a network (no
    ``backbone``) change nothing. Only the record in MLflow changes: ``run.json`` and the ``cell`` hash keep the
    config's own values.
    """
    logged = dict(params)
    if "backbone" not in tags:
        return logged
    for key in NETWORK_KEYS:
        if key in logged:
            logged[key] = tags.get(key)
    return logged
