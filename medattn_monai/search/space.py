"""The hyper-parameter search space: which bundle keys a search varies, over which ranges, for which networks.

A space is a mapping ``bundle key -> distribution`` read from YAML or JSON (``default_space.yaml`` is the default):

.. code-block:: yaml

    learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}   # float range (log: log-uniform)
    batch_size: {choices: [16, 32, 64]}                     # a choice
    epochs: {low: 5, high: 20, step: 5, type: int}          # integer range
    heads: {choices: [1, 2, 4], variants: [ga, la]}         # only for networks of these variants
    window: {choices: [5, 7], variants: [la, ela], backbones: [resnet18]}

``variants`` and ``backbones`` restrict a parameter to the networks that have it (``heads`` means nothing to a plain
CNN); a size-matched CNN counts as variant ``none``. Every key must be a key of the bundle's ``train.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engine.bundles import refuse_code
from ..errors import ConfigError

__all__ = ["DEFAULT_SPACE_FILE", "SearchSpace", "load_space", "parse_enqueue", "parse_error_text"]

DEFAULT_SPACE_FILE = Path(__file__).with_name("default_space.yaml")
_FIELDS = {"low", "high", "log", "step", "type", "choices", "variants", "backbones"}


def parse_error_text(error: Exception) -> str:
    """A YAML or JSON syntax error in one line: where (line, column) and what, without the parser's excerpt."""
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(error, 'problem', None) or error}"
    return " ".join(str(error).split())


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    import yaml

    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = path.read_text()
        return json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid {kind}: {parse_error_text(e)}") from None


def load_space(space: str | Path | Mapping[str, Any] | None = None) -> SearchSpace:
    """A :class:`SearchSpace` from a YAML/JSON file, a mapping, or None (the default space)."""
    if space is None:
        space = DEFAULT_SPACE_FILE
    if isinstance(space, (str, Path)):
        path = Path(space)
        return SearchSpace(_read(path) or {}, source=str(path))
    return SearchSpace(space)


class SearchSpace:
    """Validated distributions over bundle keys.

    Args:
        params: ``key -> {low, high[, log, step, type]}`` or ``key -> {choices: [...]}``, each optionally with
            ``variants`` / ``backbones`` lists restricting it.
        source: where it was read from (for messages).
    """

    def __init__(self, params: Mapping[str, Any], source: str = "the search space") -> None:
        if not isinstance(params, Mapping) or not params:
            raise ConfigError(f"{source}: expected a non-empty mapping of bundle keys to distributions")
        self.source = source
        self.params = {str(k): self._check(str(k), v) for k, v in params.items()}

    def _check(self, key: str, spec: Any) -> dict[str, Any]:
        where = f"{self.source}: {key}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping such as {{low: 0.0001, high: 0.01, log: true}}")
        unknown = set(spec) - _FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
        spec = dict(spec)
        for field in ("variants", "backbones"):
            if field in spec and not (isinstance(spec[field], list) and spec[field]):
                raise ConfigError(f"{where}: {field} must be a non-empty list")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            refuse_code(spec["choices"], f"{key}.choices", self.source)  # each choice becomes a bundle override
            if {"low", "high", "log", "step"} & set(spec):
                raise ConfigError(f"{where}: give either choices or low/high, not both")
            return spec
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{where}: needs choices, or low and high")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
            raise ConfigError(f"{where}: low={low!r} and high={high!r} must be numbers with low < high")
        kind = spec.setdefault("type", "int" if isinstance(low, int) and isinstance(high, int) and "step" in spec
                               else "float")
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}: type must be int or float, got {kind!r}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{where}: a log-uniform range needs low > 0, got {low!r}")
        if spec.get("log") and spec.get("step") is not None and kind == "float":
            raise ConfigError(f"{where}: log and step cannot be combined for floats")
        return spec

    def applicable(self, variant: str, backbone: str) -> dict[str, dict[str, Any]]:
        """The parameters that apply to a network of ``variant`` (``none`` for plain and size-matched CNNs)."""
        return {
            key: spec for key, spec in self.params.items()
            if variant in spec.get("variants", [variant]) and backbone in spec.get("backbones", [backbone])
        }

    def suggest(self, trial: Any, variant: str, backbone: str) -> dict[str, Any]:
        """Draw the applicable parameters from an Optuna ``trial``; returns ``key -> value`` (bundle overrides)."""
        values = {}
        for key, spec in self.applicable(variant, backbone).items():
            if "choices" in spec:
                values[key] = trial.suggest_categorical(key, spec["choices"])
            elif spec["type"] == "int":
                values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                                                log=bool(spec.get("log", False)))
            else:
                values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), step=spec.get("step"),
                                                  log=bool(spec.get("log", False)))
        return values

    def contains(self, key: str, value: Any) -> bool:
        """Whether ``value`` is a possible draw of ``key`` (e.g. to try the bundle's default first)."""
        spec = self.params[key]
        if "choices" in spec:
            return value in spec["choices"]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if spec["type"] == "int" and (not float(value).is_integer() or (value - spec["low"]) % spec.get("step", 1)):
            return False
        return spec["low"] <= value <= spec["high"]

    def check_keys(self, known: set[str]) -> None:
        """Refuse keys that the bundle does not have (a typo would silently search nothing)."""
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ConfigError(f"{self.source}: {unknown} are not keys of the bundle's train.json")

    def to_dict(self) -> dict[str, Any]:
        """The space as plain data (logged with the search, part of the search's identity)."""
        return json.loads(json.dumps(self.params, sort_keys=True, default=_finite))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {value!r}")


def parse_enqueue(enqueue: Any) -> list[dict[str, Any]]:
    """The parameter sets of ``medattn search --enqueue`` (JSON text, a JSON file, a mapping or a list of them),
    each checked to hold data only: they become bundle overrides, which MONAI's parser would evaluate."""
    if enqueue is None:
        return []
    source = "--enqueue"
    if isinstance(enqueue, str):
        is_file = Path(enqueue).is_file()
        source = enqueue if is_file else source
        try:
            enqueue = json.loads(Path(enqueue).read_text(encoding="utf-8") if is_file else enqueue)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{source} is not JSON text or a readable JSON file: {e}") from None
    if isinstance(enqueue, Mapping):
        enqueue = [enqueue]
    if not isinstance(enqueue, list) or not all(isinstance(p, Mapping) for p in enqueue):
        raise ConfigError(f"{source}: enqueue must be a list of {{key: value}} mappings (JSON text or a file)")
    for i, params in enumerate(enqueue):
        refuse_code(dict(params), f"[{i}]", source)
    return [dict(p) for p in enqueue]
