"""The bundles: where a bundle's folder is, its config files, and its configuration with checked overrides.

Every way a value enters a bundle is checked here:

- overrides a user types (``medattn train --key value``, a study's keys): :func:`apply_overrides` refuses a key the
  bundle does not define, naming the closest one, and converts typed values (:mod:`.config_keys`);
- ``python -m monai.bundle run …``, which has no hook of its own: the bundles' first ``initialize`` step,
  :func:`check_config`, does the same on the running workflow's configuration before anything is built;
- values read from files (``run.json``, study configs, datalists, MLflow params): :func:`data_overrides` also
  refuses strings MONAI's parser would evaluate or resolve (``$``, ``@``, ``%``), since a file is data, never code.
  Only the command line may hold ``$`` expressions, as in MONAI.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config_keys import coerce

__all__ = [
    "DEFAULT_BUNDLE", "apply_overrides", "bundle_configs", "check_config", "data_overrides", "hyper_parameters",
    "load_config", "locate_bundle", "refuse_code", "unknown_keys_message",
]

DEFAULT_BUNDLE = "isic_attention_classification"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# MONAI's parser evaluates "$…", resolves "@…" and copies "%…"; "+key" merges config files
_PARSED_PREFIXES = ("$", "@", "%")
# network arguments that follow from the data, not from a choice: not hyper-parameters
_DATA_NETWORK_ARGS = ("num_classes", "in_channels")


def locate_bundle(name: str) -> str:
    """Folder of bundle ``name``: ``bundles/<name>`` under the current directory or beside this package's source."""
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base / "bundles" / name
        if (candidate / "configs").is_dir():
            return str(candidate)
    raise ConfigError(f"bundle {name!r} not found under ./bundles or {_REPO_ROOT / 'bundles'}: pass --bundle_root")


def bundle_configs(bundle: str, *names: str) -> list[str]:
    """Paths of config files ``names`` of a bundle given by name (under ``bundles/``) or by folder."""
    root = Path(bundle) if Path(bundle, "configs").is_dir() else Path(locate_bundle(bundle))
    paths = [root / "configs" / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"bundle {bundle!r} lacks config file(s) {missing}")
    return [str(p) for p in paths]


def hyper_parameters(network_args: Mapping[str, Any], training: Mapping[str, Any]) -> dict[str, Any]:
    """A run's hyper-parameters (its MLflow params, ``run.json``'s ``params``, its ``cell``): the network's
    arguments but those the data fixes (``num_classes``, ``in_channels``), and the training's parameters."""
    return {**{k: v for k, v in network_args.items() if k not in _DATA_NETWORK_ARGS}, **training}


def _top_key(key: str) -> str:
    return key.replace("::", "#").split("#")[0]


def unknown_keys_message(unknown: Iterable[str], known: Iterable[str], where: str) -> str:
    """One line naming each unknown key and the closest known one."""
    known = sorted(k for k in known if not k.startswith("_"))
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else f"{key!r} (no similar key)")
    noun = "key" if len(parts) == 1 else "keys"
    return f"unknown config {noun} {', '.join(parts)} for {where}: a misspelt key would silently do nothing"


def _is_parsed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_PARSED_PREFIXES)


def _coerce_into(parser: Any, keys: Iterable[str], source: str) -> None:
    """Convert the typed top-level ``keys`` of ``parser`` in place; MONAI expressions are left to MONAI."""
    for key in keys:
        raw = parser[key]
        if _is_parsed(raw):
            continue
        value = coerce(key, raw, source)
        if value is not raw and (value != raw or type(value) is not type(raw)):
            parser[key] = value


def apply_overrides(parser: Any, config_files: Sequence[str], overrides: Mapping[str, Any]) -> None:
    """Set ``overrides`` in a MONAI ``ConfigParser``: unknown keys are refused, typed values converted."""
    config = parser.get()
    unknown = [k for k in overrides if _top_key(k) not in config]
    if unknown:
        raise ConfigError(unknown_keys_message(unknown, config, ", ".join(map(str, config_files))))
    for key, value in overrides.items():
        parser[key] = value if "#" in key or "::" in key or _is_parsed(value) else coerce(key, value, "the overrides")


def data_overrides(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Bundle keys read from a file, as overrides that are data, never code.

    Every string anywhere in a value that MONAI's parser would evaluate (``$``), resolve (``@``) or copy (``%``) is
    refused, naming ``source`` and the key; declared keys are converted to their type.

    Raises:
        ConfigError: such a string, or a value of the wrong type.
    """
    checked = {}
    for key, value in values.items():
        if not isinstance(key, str) or key.startswith(("+", *_PARSED_PREFIXES)) or "#" in key or "::" in key:
            raise ConfigError(f"{source}: {key!r} is not a bundle key")
        refuse_code(value, key, source)
        checked[key] = coerce(key, value, source)
    return checked


def refuse_code(value: Any, path: str, source: str) -> None:
    """Refuse a value read from ``source`` holding a string MONAI's parser would evaluate, resolve or copy."""
    for where, text in _strings(value, path):
        if _is_parsed(text):
            raise ConfigError(f"{source}: {where} = {text!r} would be evaluated as code by MONAI's config parser; "
                              "values read from files are data (only the command line may hold expressions)")


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(str(k), f"{path}.{k}")
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _running_workflow() -> Any:
    """The MONAI ``ConfigWorkflow`` whose ``initialize`` step is calling (None outside one).

    MONAI hands a config expression no handle on its workflow or parser; the workflow evaluating the step is on
    the call stack (``ConfigWorkflow.initialize`` -> ``_run_expr`` -> the parser -> this expression).
    """
    from monai.bundle import ConfigWorkflow

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, ConfigWorkflow):
            return candidate
        frame = frame.f_back
    return None


def _bundle_keys(configs_dir: Path) -> set[str]:
    """Top-level keys of every config file of a bundle's ``configs`` folder (``+key`` merges count as ``key``)."""
    keys = {"_meta_"}
    for path in configs_dir.glob("*.json"):
        if path.name != "metadata.json":
            keys |= {k.lstrip("+") for k in json.loads(path.read_text())}
    return keys


def check_config() -> None:
    """The bundles' first ``initialize`` step: refuse keys no config file of the bundle defines, and convert typed
    values (``--log_mlflow false`` becomes ``False``), before anything is built, trained or logged.

    ``python -m monai.bundle run`` puts every ``--key value`` into the configuration, known or not; this is the
    check it lacks (``medattn train`` also refuses unknown keys before creating the workflow). Known keys are those
    of the running config folder's files (``train.json``, ``evaluate.json``, …), so every combination of them runs.
    """
    workflow = _running_workflow()
    if workflow is None:  # evaluated by hand from a bare ConfigParser: there is no command line to check
        return
    config_dir = Path(workflow.config_root_path)
    parser = workflow.parser
    present, known = list(parser.get()), _bundle_keys(config_dir)
    unknown = [k for k in present if k not in known]
    if unknown:
        raise ConfigError(unknown_keys_message(unknown, known, f"the bundle in {config_dir}"))
    _coerce_into(parser, present, "the bundle's configuration")


def load_config(config_files: Sequence[str], **overrides: Any) -> Any:
    """The bundle configuration with ``overrides`` applied, as a MONAI ``ConfigParser``, without running anything.

    Parse only what is needed (``parser.get_parsed_content("hyper_parameters")``): e.g. a study reads a cell's
    hyper-parameters and experiment before deciding whether to train it.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser(ConfigParser.load_config_files(list(config_files)))
    apply_overrides(parser, config_files, overrides)
    return parser
