"""``medattn export-bundle``: a trained run as a self-contained Model Zoo bundle folder and ``.zip``.

Layout (MONAI Model Zoo)::

    <name>/configs/{inference,evaluate,metadata}.json, logging.conf
          /scripts/            the network, image loader and metric, copied from this package (imports rewritten)
          /models/model.pt     the run's best weights;  model.ts: the same network in TorchScript
          /docs/README.md, docs/data_license.txt, LICENSE, large_files.yml (only for files over 25 MB)

The bundle needs MONAI, PyTorch, NumPy and the packages in its ``required_packages_version`` only. Configs, scripts,
metadata and docs depend only on the run and the installed versions: the same run gives byte-identical files.
The compiled network is made and checked by ``medattn_monai/export/compiled.py``; what the run was trained on (its
dataset or synthetic demo data) is decided by ``medattn_monai/export/provenance.py``; where the bundle may be
written, by ``medattn_monai/export/target.py`` (a new folder or an earlier export of this command, nothing else).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..data.augment import IMAGENET_MEAN, IMAGENET_STD
from ..data.transforms import LoadResizeImaged
from ..engine.bundles import locate_bundle
from ..engine.evaluation import IMAGE_SUFFIXES
from ..errors import ConfigError
from ..metrics.balanced_accuracy import BalancedAccuracy
from ..networks import describe_network, network_recipe
from .compiled import LARGE_FILE_BYTES, compile_network, large_files
from .configs import evaluate_config, inference_config
from .metadata import bundle_metadata
from .provenance import TrainingData, data_references, demo_licence, real_data_source, training_data
from .readme import render_readme, variant_name
from .requirements import distribution_versions, imported_modules
from .source import RunSource, load_run, select_run, test_metrics
from .target import check_targets, install
from .vendor import PACKAGE, ScriptsPackage, vendor_modules

__all__ = ["LARGE_FILE_BYTES", "export_bundle", "write_bundle", "bundle_name"]

logger = logging.getLogger("medattn")

# modules the configs themselves need besides MONAI (its engines and handlers run on Ignite)
CONFIG_MODULES = ("ignite",)

_BACKBONE_NAMES = {"resnet18": "ResNet18", "densenet121": "DenseNet121", "efficientnet-b0": "EfficientNet-B0",
                   "vit": "ViT"}
_VARIANT_PHRASES = {
    "plain": "plain CNN",
    "ga": "with global self-attention (ga)",
    "la": "with local self-attention (la)",
    "ela": "with embedded local self-attention (ela)",
    "se": "with squeeze-and-excitation (se)",
    "size_matched": "size-matched to its {matched_to} variant",
    "vit": "sized to the plain {family}",
}
_DEMO = "synthetic demo data"


def bundle_name(tags: dict[str, str], facts: dict[str, Any], demo: bool = False) -> str:
    """The default bundle name: ``<dataset>[_demo]_<backbone>_<variant>_classification`` in the zoo's snake case."""
    variant = variant_name(facts)
    if variant == "size_matched":
        variant += f"_{facts['matched_to']}"
    dataset = (tags.get("dataset") or "medattn") + ("_demo" if demo else "")
    raw = f"{dataset}_{facts['backbone']}_{variant}_classification"
    return re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")


def _model_phrase(facts: dict[str, Any]) -> str:
    return f"{_BACKBONE_NAMES[facts['backbone']]} " + _VARIANT_PHRASES[variant_name(facts)].format(**facts)


def _source_bundle(info: dict) -> Path:
    """The bundle the run was trained with (its recorded folder, else the bundle of that name in this checkout)."""
    recorded = Path(info.get("bundle_root") or "")
    if (recorded / "configs" / "metadata.json").is_file():
        return recorded
    return Path(locate_bundle(recorded.name))


def _data_texts(origin: Path, source_meta: dict, data: TrainingData) -> dict[str, Any]:
    """What the bundle says about its training data: metadata fields, ``docs/data_license.txt`` and README texts.

    Demo data is described as what it is, with no third-party dataset's source, citation or licence; real data
    with the training bundle's texts.
    """
    licence = (origin / "docs" / "data_license.txt").read_text(encoding="utf-8")
    references = list(source_meta.get("references", []))
    intended = source_meta.get("intended_use", "Research only. Not a medical device; not for diagnosis.")
    if not data.demo:
        source = real_data_source(source_meta) or "See `docs/data_license.txt`."
        return {"data_source": source, "references": references, "intended_use": intended, "licence_file": licence,
                "readme": {"paragraph": source, "test_split": "its datalist's test split",
                           "licence": "Code and weights: see `LICENSE`. The weights were trained on data under the "
                                      "terms in `docs/data_license.txt`; those terms (e.g. non-commercial use) bind "
                                      "what you do with the weights."}}
    seed = f" from seed {data.seed}" if data.seed is not None else ""
    source = (f"Synthetic demo data written{seed} by `medattn demo-data` of medattn-monai, in the on-disk format of "
              f"the {origin.name} bundle's dataset: images drawn by the project's code, no patient data and no "
              "third-party dataset. The model has learnt the demo data's synthetic signal only and says nothing "
              "about real images.")
    cited = set(data_references(references, licence))
    return {
        "data_source": source, "references": [r for r in references if r not in cited],
        "intended_use": f"Demonstration only: trained on {_DEMO}. {intended}",
        "licence_file": demo_licence(f"the {origin.name} bundle's dataset", data.seed),
        "readme": {"paragraph": source, "test_split": f"the test split of the {_DEMO}",
                   "licence": f"Code and weights: see `LICENSE`. The weights were trained on {_DEMO} made by "
                              "medattn-monai (`docs/data_license.txt`): no third-party data licence binds them."},
    }


def _card(source: RunSource, facts: dict[str, Any], task: str, metrics: dict[str, float],
          data: TrainingData) -> tuple[str, str]:
    """The bundle's title and one-paragraph description."""
    phrase = _model_phrase(facts)
    bacc = metrics.get("test_bacc", float("nan"))
    if data.demo:
        return (f"{phrase}: {task} (trained on {_DEMO})",
                f"A {phrase} ({facts['params_count']:,} parameters) for {task[0].lower() + task[1:]}, trained with "
                f"medattn-monai (run {source.run_name}) on {_DEMO}, not on real images: a demonstration of the "
                f"pipeline; test balanced accuracy {bacc:.4f} on the demo data's test split.")
    return (f"{phrase}: {task}",
            f"A {phrase} ({facts['params_count']:,} parameters) for {task[0].lower() + task[1:]}, trained with "
            f"medattn-monai (run {source.run_name}); test balanced accuracy {bacc:.4f}.")


def _write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _vendor(net_cls: type, facts: dict[str, Any]) -> ScriptsPackage:
    return vendor_modules(
        [net_cls.__module__, LoadResizeImaged.__module__, BalancedAccuracy.__module__],
        description=f"Code of this bundle: {_BACKBONE_NAMES[facts['backbone']]} network, image loader and balanced "
                    "accuracy, copied from medattn-monai by `medattn export-bundle` (imports rewritten).",
    )


def _check_no_package_names(folder: Path) -> None:
    leaks = [f for f in _files(folder) if PACKAGE.encode() in (folder / f).read_bytes()]
    # TorchScript records the source paths of what it compiled (MONAI's and torch's too): a path naming the
    # package's folder (a virtual environment inside it) is harmless there; anywhere else it is a copying bug
    if "models/model.ts" in leaks:
        logger.warning("models/model.ts records a source path containing %r; the bundle does not need it", PACKAGE)
        leaks.remove("models/model.ts")
    if leaks:
        raise ValueError(f"exported files name {PACKAGE} (the bundle would need this package): {leaks}")


def _metadata(source: RunSource, source_meta: dict, texts: dict[str, Any], card: tuple[str, str],
              scripts: ScriptsPackage, version: str, changelog: str | None, authors: str | None) -> dict:
    info, network_args = source.info, source.info["network_args"]
    return bundle_metadata(
        source_meta, name=card[0], description=card[1], version=version,
        changelog=changelog or f"exported from run {source.run_name} (MLflow {source.run_id}) by medattn export-bundle",
        required_packages=distribution_versions(imported_modules(scripts.files.values()) | set(CONFIG_MODULES)),
        classes=list(info["classes"]), image_size=int(info["params"]["image_size"]),
        in_channels=int(network_args.get("in_channels", 3)), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        eval_metrics=test_metrics(source.metrics), data_source=texts["data_source"], references=texts["references"],
        intended_use=texts["intended_use"], authors=authors,
    )


def write_bundle(source: RunSource, folder: str | Path, version: str = "0.1.0", changelog: str | None = None,
                 authors: str | None = None, data: TrainingData | None = None) -> Path:
    """Write the bundle of a checked run into ``folder`` (created; it must not exist).

    Args:
        source: the run (see :func:`~medattn_monai.export.source.load_run`).
        folder: the bundle folder.
        version: the bundle's version.
        changelog: what this version is (default: where it was exported from).
        authors: the bundle's authors (default: the source bundle's).
        data: what the run was trained on (default: decided from the run, see
            ``medattn_monai/export/provenance.py``).

    Raises:
        ConfigError: it cannot be told whether the run was trained on demo data (see ``data``).
        ValueError: a file of the bundle (other than the TorchScript model's recorded source paths) names this
            package: a copying bug.
        RuntimeError: the compiled network differs from the run's.
    """
    folder, info = Path(folder), source.info
    data = data or training_data(info, source.tags, source.experiment)
    facts = describe_network(**info["network_args"])
    net_cls, net_kwargs = network_recipe(**info["network_args"])
    scripts = _vendor(net_cls, facts)
    origin = _source_bundle(info)
    source_meta = json.loads((origin / "configs" / "metadata.json").read_text())
    texts = _data_texts(origin, source_meta, data)
    metrics = test_metrics(source.metrics)
    card = _card(source, facts, source_meta.get("task", "image classification"), metrics, data)
    metadata = _metadata(source, source_meta, texts, card, scripts, version, changelog, authors)
    image_size, classes = metadata["network_data_format"]["inputs"]["image"]["spatial_shape"][0], list(info["classes"])
    in_channels = metadata["network_data_format"]["inputs"]["image"]["num_channels"]

    folder.mkdir(parents=True)
    _write_json(inference_config(scripts.target(net_cls), net_kwargs, scripts.target(LoadResizeImaged), image_size,
                                 in_channels, classes), folder / "configs" / "inference.json")
    _write_json(evaluate_config(scripts.target(BalancedAccuracy), len(classes)), folder / "configs" / "evaluate.json")
    _write_json(metadata, folder / "configs" / "metadata.json")
    shutil.copyfile(origin / "configs" / "logging.conf", folder / "configs" / "logging.conf")
    scripts.write(folder)
    (folder / "docs").mkdir()
    (folder / "docs" / "data_license.txt").write_text(texts["licence_file"], encoding="utf-8")
    shutil.copyfile(origin / "LICENSE", folder / "LICENSE")
    (folder / "models").mkdir()
    torch.save(source.state_dict, folder / "models" / "model.pt")
    example = torch.rand(2, in_channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    compiled = compile_network(folder, scripts.name, source.network, example)
    large = large_files(folder)
    if large:
        (folder / "large_files.yml").write_text(large)

    _write_readme(folder, source, facts, scripts, net_cls, net_kwargs, metadata, texts, compiled)
    _check_no_package_names(folder)
    return folder


def _write_readme(folder: Path, source: RunSource, facts: dict[str, Any], scripts: ScriptsPackage, net_cls: type,
                  net_kwargs: dict[str, Any], metadata: dict, texts: dict[str, Any], compiled: str) -> None:
    info, card = source.info, (metadata["name"], metadata["description"])
    metrics = dict(metadata["eval_metrics"])
    if "best_val_bacc" in source.metrics:
        metrics["best_val_bacc"] = float(source.metrics["best_val_bacc"])
    readme = render_readme(
        title=card[0], description=card[1],
        run={"run_name": source.run_name, "run_id": source.run_id, "experiment": source.experiment},
        facts=facts, network_args=net_kwargs, network_target=scripts.target(net_cls),
        loader_module=scripts.modules[LoadResizeImaged.__module__], params=info["params"], classes=info["classes"],
        split_hash=str(info.get("split_hash") or source.tags.get("split_hash", "")), metrics=metrics,
        metadata=metadata, data=texts["readme"], mean=IMAGENET_MEAN, std=IMAGENET_STD, suffixes=IMAGE_SUFFIXES,
        torchscript=compiled, files=sorted(_files(folder) + ["docs/README.md"]),
    )
    (folder / "docs" / "README.md").write_text(readme, encoding="utf-8")


def export_bundle(
    run_id: str | None = None,
    out: str | None = None,
    *,
    dataset: str | None = None,
    backbone: str | None = None,
    attention: str | None = None,
    baseline: str | None = None,
    experiment: str | None = None,
    metric: str = "test_bacc",
    output_root: str = "runs",
    tracking_uri: str | None = None,
    version: str = "0.1.0",
    changelog: str | None = None,
    authors: str | None = None,
    data: str | None = None,
    zip: bool = True,  # noqa: A002 - the --zip/--nozip flag; zip() is not called in this function
    overwrite: bool = False,
) -> str:
    """Export a trained run as a Model Zoo bundle folder (and ``<folder>.zip``) that runs with MONAI alone.

    Give ``run_id`` (an MLflow run id or a run folder), or tags to pick the best FINISHED train run by ``metric``.
    The bundle is written only into a folder that does not exist, or (with ``overwrite``) over an earlier export of
    this command; any other existing target is refused before anything is written
    (``medattn_monai/export/target.py``).
    Longer than 60 lines because of its docstring only: one entry per command-line flag.

    Args:
        run_id: the run to export: MLflow run id or run folder.
        out: the bundle folder (its name is the bundle's); default
            ``dist/<dataset>[_demo]_<backbone>_<variant>_classification``.
        dataset: without ``run_id``: pick among runs with this ``dataset`` tag (``isic``, ``camelyon17``).
        backbone: without ``run_id``: pick among runs with this ``backbone`` tag.
        attention: without ``run_id``: pick among runs with this ``attention`` tag (``none`` for baselines).
        baseline: without ``run_id``: pick among runs with this ``baseline`` tag (``plain``, ``size_matched``, ``vit``).
        experiment: without ``run_id``: pick among the runs of this MLflow experiment only.
        metric: the metric that picks the best run.
        output_root: where run folders live (a run whose folder is missing is read from its MLflow artifacts).
        tracking_uri: the MLflow store.
        version: the bundle's version (``metadata.json``).
        changelog: what this version is.
        authors: the bundle's authors (default: the training bundle's).
        data: ``demo`` or ``real``: what the run was trained on, needed only when neither its datalist (not on this
            machine) nor its experiment tells; never overrides them.
        zip: also write ``<out>.zip``.
        overwrite: replace an earlier export in ``out`` (and its zip).

    Returns:
        the bundle folder.

    Raises:
        ConfigError: no run given or found; ``out`` or its zip exists and may not be replaced; the run cannot be
            exported (not FINISHED, no checkpoint, no test metrics, network not rebuildable, training data unknown).
    """
    if out is not None:
        check_targets(out, overwrite, zip)
    if run_id is None:
        if all(v is None for v in (dataset, backbone, attention, baseline, experiment)):
            raise ConfigError("give --run_id (an MLflow run id or run folder), or tags (--dataset, --backbone, "
                              f"--attention, --baseline, --experiment) to pick the best run by {metric}")
        run_id = select_run(dataset, backbone, attention, baseline, experiment, metric, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="bundle-export-") as tmp:
        source = load_run(str(run_id), output_root, tracking_uri, download_dir=Path(tmp) / "run")
        trained_on = training_data(source.info, source.tags, source.experiment, data)
        facts = describe_network(**source.info["network_args"])
        target = Path(out) if out else Path("dist") / bundle_name(source.tags, facts, trained_on.demo)
        check_targets(target, overwrite, zip)
        # staged under a neutral name: TorchScript records the path of the scripts it compiled
        staged = write_bundle(source, Path(tmp) / "bundle", version=version, changelog=changelog, authors=authors,
                              data=trained_on)
        archive = install(staged, target, overwrite, zip)
    logger.info("wrote %s%s", target, f" and {archive}" if archive else "")
    return str(target)
