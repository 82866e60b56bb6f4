"""The repository bundles' config files, generated from one source: ``bundles/_source/``.

Both bundles run the same training, evaluation and inference; only their data and a few defaults differ. So every
config file a bundle ships (``train.json``, ``evaluate.json``, ``inference.json``, ``multi_gpu_train.json``,
``logging.conf``) is written from one shared file in ``bundles/_source/`` in which the values that differ between
datasets are the marker ``"<dataset>"``, filled from the bundle's own ``bundles/_source/<bundle>.json``:
``{"set": {file: {id: value}}, "omit": {file: [id, …]}}`` (ids as MONAI writes them, ``train#dataset#data``;
an omitted id drops that key, e.g. the ISIC-only ``color_jitter``). Every marker must be set or omitted, and
nothing else may be. ``"<train.json>"`` (or ``"<train.json#id>"``) copies an item of the bundle's generated
``train.json``, so the standalone ``inference.json`` shares its settings and helpers with the training without a
second copy.

The generated files are complete and self-contained, as a Model Zoo user reads them; ``tests/test_bundle_source.py``
fails when one is stale. After editing the source::

    python -m medattn_monai.engine.bundle_source          # rewrite the bundles' files
    python -m medattn_monai.engine.bundle_source --check  # list stale files, exit 1 if any
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["BUNDLES", "GENERATED", "SOURCE", "render", "stale_files", "write"]

SOURCE = Path(__file__).resolve().parents[2] / "bundles" / "_source"
BUNDLES = ("isic_attention_classification", "camelyon17_attention_classification")
GENERATED = ("train.json", "evaluate.json", "inference.json", "multi_gpu_train.json", "logging.conf")
DATASET_MARKER = "<dataset>"
_OMIT = object()


def _markers(node: Any, prefix: str = "") -> dict[str, str]:
    """``id -> marker`` for every ``<…>`` marker string in ``node``."""
    found: dict[str, str] = {}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        sub = f"{prefix}#{key}" if prefix else str(key)
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            found[sub] = value
        else:
            found.update(_markers(value, sub))
    return found


def _get(node: Any, item_id: str) -> Any:
    for part in item_id.split("#"):
        node = node[int(part) if isinstance(node, list) else part]
    return node


def _put(node: Any, item_id: str, value: Any) -> None:
    *parents, last = item_id.split("#")
    for part in parents:
        node = node[int(part) if isinstance(node, list) else part]
    if value is _OMIT:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value


def _fill(name: str, config: Any, dataset: dict, bundle: str, train: Any = None) -> Any:
    """``config`` (a source file's content) with its markers replaced for ``bundle``."""
    config = copy.deepcopy(config)
    values = dict(dataset.get("set", {}).get(name, {}))
    omitted = set(dataset.get("omit", {}).get(name, []))
    markers = _markers(config)
    wanted = {i for i, m in markers.items() if m == DATASET_MARKER}
    where = f"bundles/_source/{bundle}.json ({name})"
    if set(values) & omitted:
        raise ConfigError(f"{where}: {sorted(set(values) & omitted)} both set and omitted")
    if wanted - set(values) - omitted:
        raise ConfigError(f"{where}: dataset values missing for {sorted(wanted - set(values) - omitted)}")
    if (set(values) | omitted) - wanted:
        raise ConfigError(f"{where}: {sorted((set(values) | omitted) - wanted)} are not {DATASET_MARKER} markers "
                          f"of bundles/_source/{name}: only marked values may differ between the bundles")
    for item_id, marker in markers.items():
        if marker == DATASET_MARKER:
            _put(config, item_id, values.get(item_id, _OMIT))
        elif marker.startswith("<train.json") and train is not None:
            source_id = marker[1:-1].partition("#")[2] or item_id
            _put(config, item_id, copy.deepcopy(_get(train, source_id)))
        else:
            raise ConfigError(f"bundles/_source/{name}: unknown marker {marker!r} at {item_id}")
    return config


def render(bundle: str) -> dict[str, str]:
    """The text of every generated config file of ``bundle``."""
    dataset = json.loads((SOURCE / f"{bundle}.json").read_text())
    train = _fill("train.json", json.loads((SOURCE / "train.json").read_text()), dataset, bundle)
    texts = {}
    for name in GENERATED:
        if name.endswith(".json"):
            content = train if name == "train.json" else _fill(
                name, json.loads((SOURCE / name).read_text()), dataset, bundle, train)
            texts[name] = json.dumps(content, indent=4) + "\n"
        else:
            texts[name] = (SOURCE / name).read_text()
    return texts


def _target(bundle: str, name: str) -> Path:
    return SOURCE.parent / bundle / "configs" / name


def stale_files() -> list[str]:
    """Generated files whose content differs from what the source gives (repository-relative paths)."""
    return [str(_target(b, n).relative_to(SOURCE.parents[1])) for b in BUNDLES for n, text in render(b).items()
            if not _target(b, n).is_file() or _target(b, n).read_text() != text]


def write() -> list[str]:
    """Rewrite the stale generated files; returns them."""
    stale = stale_files()
    for bundle in BUNDLES:
        for name, text in render(bundle).items():
            _target(bundle, name).write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    """``--check``: list stale files and exit 1 if any; else rewrite them."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        stale = stale_files() if "--check" in argv else write()
    except ConfigError as e:
        print(f"bundle_source: error: {e}", file=sys.stderr)
        return 2
    for path in stale:
        print(("stale: " if "--check" in argv else "written: ") + path)
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main())
