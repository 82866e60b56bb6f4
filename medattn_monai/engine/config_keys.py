"""The bundles' user-facing config keys and their types: one declaration, read wherever a value enters a bundle.

A value typed on the command line arrives as whatever ``fire`` made of it (``--log_mlflow false`` is the string
``"false"``); a value read from a file (``run.json``, a study config, MLflow params) may be a string for any type.
:func:`coerce` turns both into the declared type or refuses them with one line naming the key, so a misspelt
boolean can never reach the config as a truthy string. Booleans are parsed strictly: ``true/false``, ``1/0``,
``yes/no`` in any case. The bundles' docs (``bundles/*/docs/README.md``) explain every key declared here.

Types: ``bool``, ``int``, ``float``, ``str``, ``dict``, ``list`` and unions of them with ``auto`` (the string) or
``null``, written ``"auto|bool"``, ``"int|null"``. ``names`` is a list of strings or one comma-separated string
(``eval_splits``). ``stages`` also takes a string such as ``"3,4"``, as the network factory does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["BOOLEAN_WORDS", "KEY_TYPES", "coerce"]

# every key a user may set on a bundle (train.json, evaluate.json, inference.json), with its type
KEY_TYPES: dict[str, str] = {
    # network
    "seed": "int", "backbone": "str", "attention": "str", "baseline": "str|null", "matched_to": "str|null",
    "family": "str|null", "stages": "list|int|str", "heads": "int|null", "attn_ratio": "int", "window": "int",
    "pretrained_path": "str|null", "image_size": "int",
    # optimisation
    "epochs": "int", "batch_size": "int", "learning_rate": "float", "weight_decay": "float", "warmup_epochs": "int",
    "label_smoothing": "float", "class_weights": "list|str|null", "color_jitter": "float", "val_batch_size": "int",
    "val_interval": "int", "key_metric": "str", "feature_usage": "dict", "max_samples_per_split": "int|null",
    # how it runs (results do not depend on these)
    "cache": "str", "cache_budget": "float", "cache_dir": "str|null", "num_workers": "auto|int", "amp": "auto|bool",
    "channels_last": "auto|bool", "compile": "bool", "retain_host_memory": "auto|bool", "progress": "bool",
    # data, outputs, tracking
    "dataset_name": "str", "dataset_dir": "str", "datalist": "str", "output_root": "str", "log_mlflow": "bool",
    "tracking_uri": "str|null", "experiment_name": "str", "run_name": "str|null", "run_type": "str",
    "extra_tags": "dict", "resume_from": "str|null", "save_execute_config": "bool|str|null", "bundle_root": "str",
    # evaluation and inference
    "run_dir": "str|null", "eval_splits": "names", "input_dir": "str|null", "input_datalist": "str|null",
    "input_split": "str", "inference_output_dir": "str",
}

BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_NULL_WORDS = ("null", "none")


def _as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.strip().lower()]
    raise ValueError


def _as_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError


def _as_float(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return float(value)  # ValueError for text that is no number
    raise ValueError


def _as_str(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # fire reads --run_name 2024 as a number
    raise ValueError


def _as_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError


def _as_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError


def _as_names(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError


def _as_auto(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    raise ValueError


_CONVERTERS = {"bool": _as_bool, "int": _as_int, "float": _as_float, "str": _as_str, "list": _as_list,
               "dict": _as_dict, "auto": _as_auto, "names": _as_names}
_DESCRIBED = {"bool": "a boolean (true/false, 1/0, yes/no)", "int": "an integer", "float": "a number",
              "str": "a string", "list": "a list", "dict": "a mapping", "auto": "auto", "null": "null",
              "names": "a list of names (or one comma-separated string)"}


def coerce(key: str, value: Any, source: str = "") -> Any:
    """``value`` as the type declared for ``key`` (unchanged for an undeclared key).

    Raises:
        ConfigError: the value is not of the key's type, naming the key, the value and ``source``.
    """
    kind = KEY_TYPES.get(key)
    if kind is None:
        return value
    options = kind.split("|")
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULL_WORDS and "null" in options):
        if "null" in options:
            return None
    else:
        # "auto" first, so that "auto|bool" keeps "auto"; "str" last, so that "list|int|str" keeps 3 an integer
        for option in sorted((o for o in options if o != "null"), key=lambda o: (o != "auto", o == "str")):
            try:
                return _CONVERTERS[option](value)
            except ValueError:
                continue
    wanted = " or ".join(_DESCRIBED[o] for o in options)
    where = f" in {source}" if source else ""
    raise ConfigError(f"{key} must be {wanted}, got {value!r}{where}")
