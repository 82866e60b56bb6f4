"""What a run was trained on, for its model card: the real dataset of its training bundle, or synthetic demo data.

``medattn demo-data`` marks its datalists ``"demo": true``, and a training on such a datalist goes to the
``<dataset>-demo`` experiment (unless an experiment is named). The export decides, in this order:

1. ``run.json``'s ``demo``, the datalist's flag recorded by the training itself;
2. otherwise (a run trained before that was recorded) the run's datalist (``run.json``'s ``datalist`` path), when
   it is on this machine and is the one the run was trained on (its ``split_hash`` equals the run's);
3. otherwise the run's experiment: ``<dataset>-demo`` (or ``<dataset>-demo-…``, as the demo study's) means demo
   data, ``<dataset>`` alone means the dataset itself;
4. otherwise the user says it (``--data demo`` or ``--data real``); without that the export is refused.

``--data`` never overrides evidence: a datalist or experiment that says otherwise is an error. The card of a demo
run calls its data synthetic and carries no third-party data licence or dataset citation.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DATA_CHOICES", "TrainingData", "data_references", "demo_licence", "real_data_source", "training_data"]

logger = logging.getLogger("medattn")

DATA_CHOICES = ("demo", "real")


@dataclass(frozen=True)
class TrainingData:
    """Whether a run was trained on demo data, how that was decided (for the log), and the demo generator's seed."""

    demo: bool
    evidence: str
    seed: int | None = None


def _computed_hash(datalist: Mapping[str, Any]) -> str | None:
    from ..data import split_hash

    try:
        return split_hash(datalist)
    except (KeyError, TypeError, ValueError):  # not a datalist: it cannot be the run's
        return None


def _from_run_info(info: Mapping[str, Any]) -> TrainingData | None:
    # run.json records the datalist's demo flag from the training itself (runs trained since it does)
    if not isinstance(info.get("demo"), bool):
        return None
    return TrainingData(info["demo"], f"its run.json (demo: {str(info['demo']).lower()})")


def _from_datalist(info: Mapping[str, Any], recorded_hash: str) -> TrainingData | None:
    path = Path(str(info.get("datalist") or ""))
    if not info.get("datalist") or not path.is_file():
        return None
    try:
        datalist = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("the run's datalist %s is not readable JSON: judging its data by the experiment", path)
        return None
    if not isinstance(datalist, dict):
        return None
    # the run recorded the hash computed from the splits when it loaded them (a stated one may be stale)
    found_hash = _computed_hash(datalist) or datalist.get("split_hash")
    if recorded_hash and found_hash != recorded_hash:
        logger.warning("the datalist %s has split hash %s, the run was trained on %s: judging its data by the "
                       "experiment", path, found_hash, recorded_hash)
        return None
    demo = bool(datalist.get("demo"))
    seed = (datalist.get("meta") or {}).get("demo_seed") if isinstance(datalist.get("meta"), dict) else None
    return TrainingData(demo, f"its datalist {path} ({'demo: true' if demo else 'no demo flag'})",
                        seed if isinstance(seed, int) else None)


def _from_experiment(experiment: str, dataset: str) -> TrainingData | None:
    if dataset and (experiment == f"{dataset}-demo" or experiment.startswith(f"{dataset}-demo-")):
        return TrainingData(True, f"its experiment {experiment!r} (runs on demo data go to {dataset}-demo)")
    if dataset and experiment == dataset:
        return TrainingData(False, f"its experiment {experiment!r} (runs on demo data go to {dataset}-demo)")
    return None


def training_data(info: Mapping[str, Any], tags: Mapping[str, str], experiment: str,
                  stated: str | None = None) -> TrainingData:
    """Decide what the run was trained on (see the module docstring).

    Args:
        info: the run's ``run.json``.
        tags: the run's MLflow tags (``dataset``, ``split_hash``).
        experiment: the run's MLflow experiment.
        stated: the user's ``--data`` (``demo`` or ``real``), or None.

    Raises:
        ConfigError: ``stated`` is not one of :data:`DATA_CHOICES`, contradicts the evidence, or is missing where
            there is none.
    """
    if stated is not None and stated not in DATA_CHOICES:
        raise ConfigError(f"--data {stated!r}: expected one of {', '.join(DATA_CHOICES)}")
    recorded_hash = str(info.get("split_hash") or tags.get("split_hash") or "")
    dataset = str(info.get("dataset_name") or tags.get("dataset") or "")
    listed, recorded = _from_datalist(info, recorded_hash), _from_run_info(info)
    if recorded is not None:  # the datalist, when here and the same, still gives the demo generator's seed
        seed = listed.seed if listed is not None and listed.demo == recorded.demo else None
        found: TrainingData | None = TrainingData(recorded.demo, recorded.evidence, seed)
    else:
        found = listed or _from_experiment(experiment, dataset)
    if found is not None:
        if stated is not None and (stated == "demo") != found.demo:
            raise ConfigError(f"--data {stated}: the run was trained on {'demo' if found.demo else 'real'} data "
                              f"by {found.evidence}")
        logger.info("the run was trained on %s data, by %s", "demo" if found.demo else "real", found.evidence)
        return found
    if stated is None:
        raise ConfigError(f"cannot tell whether the run was trained on demo data: its datalist "
                          f"{info.get('datalist') or '(none recorded)'} is not on this machine and its experiment "
                          f"{experiment!r} is neither {dataset}-demo nor {dataset}; pass --data demo or --data real")
    return TrainingData(stated == "demo", f"--data {stated}")


def real_data_source(source_meta: Mapping[str, Any]) -> str:
    """The training bundle's ``data_source`` without its note on demo data (which concerns the bundle, not a run)."""
    text = str(source_meta.get("data_source", ""))
    return re.split(r";\s*synthetic demo data", text, maxsplit=1, flags=re.IGNORECASE)[0].strip()


def data_references(references: Sequence[str], data_licence: str) -> list[str]:
    """The references that cite the dataset: those whose first author's name appears in the training bundle's
    ``docs/data_license.txt`` (which names the papers to cite for the data)."""
    cited = []
    for reference in references:
        author = re.match(r"\s*([A-Z][\w'-]+)", reference)
        if author and re.search(rf"\b{re.escape(author.group(1))}\b", data_licence):
            cited.append(reference)
    return cited


def demo_licence(dataset_format: str, seed: int | None) -> str:
    """``docs/data_license.txt`` of a bundle trained on demo data (``dataset_format``: whose format it imitates)."""
    generated = f" from seed {seed}" if seed is not None else ""
    return (
        "Training data of these weights\n"
        "==============================\n\n"
        f"The weights were trained on synthetic demo data written{generated} by `medattn demo-data` of\n"
        f"medattn-monai, in the on-disk format of {dataset_format}.\n"
        "The images are drawn by the project's code: no patient's image and no image of a third-party dataset\n"
        "was used. The demo data is covered by the project's licence (Apache-2.0, see LICENSE); no third-party\n"
        "data licence applies to the weights.\n\n"
        "The model has learnt only the demo data's synthetic signal: it says nothing about real images.\n"
        "Research and demonstration only; not a medical device.\n"
    )
