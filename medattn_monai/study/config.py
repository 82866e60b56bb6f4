"""The study configuration (``study.yaml``): its keys, their defaults, and the checks that name a bad value.

See ``docs/study.md`` for a commented example. Every key is optional except ``datasets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..search.liveness import GRACE_S, HEARTBEAT_S, check_liveness_settings
from ..search.storage import STORAGE_TIMEOUT_S

__all__ = ["DEFAULT_SEEDS", "StudyConfig", "load_study_config", "read_study_file"]

# 10 seeds: with 5 per group, a two-sided Mann–Whitney test's smallest p (0.0079) cannot survive Holm over 7 or more
# comparisons; with 10 it is 1.1e-5 (docs/study.md)
DEFAULT_SEEDS = 10

_SEARCH_DEFAULTS = {
    "enabled": True, "n_trials": 20, "space": None, "seed": 1000, "sampler_seed": None, "n_startup_trials": 5,
    "n_warmup_steps": 1, "enqueue_defaults": True, "overrides": {},
}
_COMPARE_DEFAULTS = {"enabled": True, "metric": "test_bacc", "alternative": "two-sided", "alpha": 0.05,
                     "ci_method": "welch", "n_boot": 10_000, "split_cells": False}
_EXPLAIN_DEFAULTS = {"enabled": True, "split": "test", "n_images": None, "n_figures": 16, "mask_field": None,
                     "gradcam_layer": "auto", "attention_layer": "auto"}


def _merge(name: str, given: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    if given is None or given is True:
        return dict(defaults)
    if given is False:
        return {**defaults, "enabled": False}
    if not isinstance(given, Mapping):
        raise ConfigError(f"study config: {name} must be a mapping, true or false, got {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"study config: unknown key(s) {unknown} in {name}; allowed: {sorted(defaults)}")
    return {**defaults, **given}


@dataclass
class StudyConfig:
    """A study: the matrix (datasets × backbones × variants and baselines × seeds) and how to run it.

    Args:
        name: names the study's summary runs and tags every run it trains (``study=<name>``).
        datasets: one mapping per dataset: ``bundle`` (default the ISIC bundle) and any bundle keys
            (``dataset_dir``, ``datalist``, ``experiment_name``, ``image_size``, ``epochs``, …).
        backbones: CNN backbones.
        variants: attention variants (``none`` is the plain CNN).
        baselines: ``plain``, ``size_matched`` (one per variant), ``vit`` (sized to each backbone).
        seeds: the seeds of every cell: a count ``n`` (seeds 0 … n-1) or a list.
        overrides: bundle keys for every run (trials and seed runs).
        params: given hyper-parameters per cell label (``resnet18-ga``, ``resnet18-plain``, ``vit-resnet18``, or
            ``"*"`` for every cell): a cell with given parameters is not searched.
        search: ``enabled``, ``n_trials`` (per cell), ``space`` (file), ``seed`` (the trials' training seed, kept
            apart from the study's seeds), ``sampler_seed``, ``n_startup_trials``, ``n_warmup_steps``,
            ``enqueue_defaults`` (try the bundle's defaults first), ``overrides`` (bundle keys for trials only).
        storage: Optuna storage shared by the workers (default ``<output_root>/optuna.journal``).
        heartbeat_interval: seconds between the heartbeats of a worker's running trial or claimed run.
        grace_period: seconds without heartbeat after which another host takes a worker for dead (its trial is
            failed and its run taken over); on the worker's own host a dead process is recognised at once.
        storage_timeout: seconds to keep trying to reach a database storage at start before stopping.
        tracking_uri: MLflow store (default ``MLFLOW_TRACKING_URI``, else ``./mlruns/mlflow.db``).
        output_root: run folders.
        out: folder of the summary and comparison tables.
        gpus_per_run: devices per run; above 1, runs go through ``torchrun``.
        retries: a failed run is retried this many times (then reported).
        eval_splits: splits every run is evaluated on (default: the bundle's ``eval_splits``).
        compare: ``enabled``, ``metric``, ``alternative``, ``alpha``, ``n_boot`` of the final ``medattn compare``.
        explain: ``enabled``, ``split``, ``n_images``, ``n_figures``, ``mask_field``, ``gradcam_layer``,
            ``attention_layer`` of ``medattn explain``, run at the end on the first seed's run of every cell (once
            per run: a rerun does not explain it again).
    """

    datasets: list[dict[str, Any]]
    name: str = "study"
    backbones: list[str] = field(default_factory=lambda: ["resnet18"])
    variants: list[str] = field(default_factory=lambda: ["ga", "la", "ela", "se"])
    baselines: list[str] = field(default_factory=lambda: ["plain", "size_matched", "vit"])
    seeds: list[int] = field(default_factory=lambda: list(range(DEFAULT_SEEDS)))
    overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=lambda: dict(_SEARCH_DEFAULTS))
    storage: str | None = None
    heartbeat_interval: int = HEARTBEAT_S
    grace_period: int = GRACE_S
    storage_timeout: float = STORAGE_TIMEOUT_S
    tracking_uri: str | None = None
    output_root: str = "runs"
    out: str = "study_results"
    gpus_per_run: int = 1
    retries: int = 1
    eval_splits: list[str] | None = None
    compare: dict[str, Any] = field(default_factory=lambda: dict(_COMPARE_DEFAULTS))
    explain: dict[str, Any] = field(default_factory=lambda: dict(_EXPLAIN_DEFAULTS))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "study config") -> StudyConfig:
        """Validate a mapping (e.g. the parsed YAML) into a config; errors name the key."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        values = dict(raw)
        datasets = values.get("datasets")
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, Mapping) for d in datasets):
            raise ConfigError(f"{source}: datasets must be a non-empty list of mappings (bundle keys)")
        values["datasets"] = [dict(d) for d in datasets]
        for key in ("backbones", "variants", "baselines"):
            if key in values and not (isinstance(values[key], list) and all(isinstance(v, str) for v in values[key])):
                raise ConfigError(f"{source}: {key} must be a list of names, got {values[key]!r}")
        seeds = values.get("seeds", DEFAULT_SEEDS)
        if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
            seeds = list(range(seeds))
        if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)
                and len(set(seeds)) == len(seeds)):
            raise ConfigError(f"{source}: seeds must be a count or a list of distinct integers, got {seeds!r}")
        values["seeds"] = seeds
        values["search"] = _merge("search", values.get("search"), _SEARCH_DEFAULTS)
        values["compare"] = _merge("compare", values.get("compare"), _COMPARE_DEFAULTS)
        values["explain"] = _merge("explain", values.get("explain"), _EXPLAIN_DEFAULTS)
        if values["search"]["seed"] in seeds:
            raise ConfigError(f"{source}: search.seed {values['search']['seed']} is one of the study's seeds: "
                              "a seed run would repeat the selected trial and bias the cell upward")
        for key in ("overrides", "params"):
            if not isinstance(values.get(key, {}), Mapping):
                raise ConfigError(f"{source}: {key} must be a mapping")
        if not all(isinstance(p, Mapping) for p in values.get("params", {}).values()):
            raise ConfigError(f"{source}: params maps a cell label to a mapping of bundle keys")
        gpus, retries = values.get("gpus_per_run", 1), values.get("retries", 1)
        if not (isinstance(gpus, int) and gpus >= 1):
            raise ConfigError(f"{source}: gpus_per_run must be a positive integer, got {gpus!r}")
        if not (isinstance(retries, int) and retries >= 0):
            raise ConfigError(f"{source}: retries must be a non-negative integer, got {retries!r}")
        check_liveness_settings(values.get("heartbeat_interval", HEARTBEAT_S), values.get("grace_period", GRACE_S),
                                source)
        timeout = values.get("storage_timeout", STORAGE_TIMEOUT_S)
        if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
            raise ConfigError(f"{source}: storage_timeout must be a positive number of seconds, got {timeout!r}")
        return cls(**values)


def read_study_file(path: str | Path) -> dict[str, Any]:
    """The mapping a ``study.yaml`` (or JSON) holds; a missing file, a syntax error (with its line) or a file that
    is not a mapping is refused naming the file."""
    import json

    import yaml

    from ..search.space import parse_error_text

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study config not found: {path}")
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = path.read_text()
        raw = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid {kind}: {parse_error_text(e)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study config is a mapping of keys (name:, seeds:, …), not a "
                          f"{type(raw).__name__}")
    return raw


def load_study_config(path: str | Path) -> StudyConfig:
    """Read ``study.yaml`` (or JSON)."""
    return StudyConfig.from_dict(read_study_file(path), source=str(path))
