"""``medattn export-bundle``: a trained run as a self-contained Model Zoo bundle folder and ``.zip``.

Layout (MONAI Model Zoo)::

    <name>/configs/{inference,evaluate,metadata}.json, logging.conf
          /scripts/            the network, image loader and metric, copied from this package (imports rewritten)
          /models/model.pt     the run's best weights;  model.ts: the same network in TorchScript
          /docs/README.md, docs/data_license.txt, LICENSE, large_files.yml (only for files over 25 MB)

The bundle needs MONAI, PyTorch, NumPy and the packages in its ``required_packages_version`` only. Configs, scripts,
metadata and docs depend only on the run and the installed versions: the same run gives byte-identical files. The
TorchScript model is made by MONAI's own ``ckpt_export`` from the bundle's configs and scripts, so the Model Zoo's
check passes by construction, and it is compared with the original network before the bundle is written.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
import shutil
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ..data.augment import IMAGENET_MEAN, IMAGENET_STD
from ..data.transforms import LoadResizeImaged
from ..engine.evaluation import IMAGE_SUFFIXES
from ..engine.bundles import locate_bundle
from ..errors import ConfigError
from ..metrics.balanced_accuracy import BalancedAccuracy
from ..networks import describe_network, network_recipe
from .configs import evaluate_config, inference_config
from .metadata import bundle_metadata
from .readme import render_readme, variant_name
from .requirements import distribution_versions, imported_modules
from .source import RunSource, load_run, select_run, test_metrics
from .vendor import PACKAGE, vendor_modules

__all__ = ["LARGE_FILE_BYTES", "export_bundle", "write_bundle", "bundle_name"]

logger = logging.getLogger("medattn")

# the Model Zoo's limit per file (its CONTRIBUTING.md: "no larger than 25MB"); read as 10^6 bytes to be safe
LARGE_FILE_BYTES = 25_000_000
# modules the configs themselves need besides MONAI (its engines and handlers run on Ignite)
CONFIG_MODULES = ("ignite",)
# the Model Zoo's (and the PyTorch reference's) tolerance for an exported network
EXPORT_TOLERANCE = 1e-5

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


def bundle_name(tags: dict[str, str], facts: dict[str, Any]) -> str:
    """The default bundle name: ``<dataset>_<backbone>_<variant>_classification`` in the zoo's snake case."""
    variant = variant_name(facts)
    if variant == "size_matched":
        variant += f"_{facts['matched_to']}"
    raw = f"{tags.get('dataset') or 'medattn'}_{facts['backbone']}_{variant}_classification"
    return re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")


def _model_phrase(facts: dict[str, Any]) -> str:
    return f"{_BACKBONE_NAMES[facts['backbone']]} " + _VARIANT_PHRASES[variant_name(facts)].format(**facts)


def _source_bundle(info: dict) -> Path:
    """The bundle the run was trained with (its recorded folder, else the bundle of that name in this checkout)."""
    recorded = Path(info.get("bundle_root") or "")
    if (recorded / "configs" / "metadata.json").is_file():
        return recorded
    return Path(locate_bundle(recorded.name))


@contextmanager
def _importable(folder: Path, package: str) -> Iterator[None]:
    """Make ``folder/<package>`` importable as ``package`` for a while, then forget it (no ``__pycache__`` left)."""
    def owned(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if owned(k)]}
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        sys.dont_write_bytecode = bytecode
        for k in [k for k in sys.modules if owned(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        importlib.invalidate_caches()


def _compile(folder: Path, package: str, reference: torch.nn.Module, example: torch.Tensor) -> str:
    """Write ``models/model.ts`` with MONAI's ``ckpt_export`` (``models/model.pt2``, ``torch.export``, where
    scripting fails) from the bundle's own configs and scripts; check it against ``reference``. Returns the
    README's sentence about it."""
    from monai.bundle import ConfigParser, ckpt_export

    configs, models = folder / "configs", folder / "models"
    with _importable(folder, package):
        try:
            ckpt_export(net_id="network_def", filepath=str(models / "model.ts"), ckpt_file=str(models / "model.pt"),
                        meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                        bundle_root=str(folder))
            compiled = torch.jit.load(str(models / "model.ts"), map_location="cpu").eval()
            sentence = ("`models/model.ts` is the same network in TorchScript: `torch.jit.load(\"models/model.ts\")` "
                        "maps a normalised batch to logits.")
        except Exception as e:  # noqa: BLE001 - any scripting failure falls back to torch.export, as export_network does
            logger.warning("TorchScript export failed (%s); writing a torch.export program instead", e)
            (models / "model.ts").unlink(missing_ok=True)
            parser = ConfigParser()
            parser.read_config(str(configs / "inference.json"))
            net = parser.get_parsed_content("network_def").eval()
            net.load_state_dict(torch.load(models / "model.pt", map_location="cpu", weights_only=True))
            program = torch.export.export(net, (example,))
            torch.export.save(program, str(models / "model.pt2"))
            compiled = torch.export.load(str(models / "model.pt2")).module()
            sentence = (f"The network does not compile to TorchScript; `models/model.pt2` is a `torch.export` "
                        f"program (`torch.export.load(...).module()`) for batches of exactly "
                        f"{'×'.join(map(str, example.shape))}.")
        with torch.no_grad():
            error = (compiled(example) - reference(example)).abs().max().item()
    if error > EXPORT_TOLERANCE:
        raise RuntimeError(f"the exported network differs from the run's by {error:.2e} (> {EXPORT_TOLERANCE}): "
                           "an export bug, please report it")
    return sentence


def _large_files(folder: Path) -> str | None:
    large = sorted(p for p in (folder / "models").iterdir() if p.stat().st_size > LARGE_FILE_BYTES)
    if not large:
        return None
    lines = ["# Files over the Model Zoo's 25 MB limit. Upload each one, put its download URL below, and leave the",
             "# file itself out of the pull request (Model Zoo CONTRIBUTING.md, \"Prepare a config file for large files\").",
             "large_files:"]
    for path in large:
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        lines += [f'  - path: "{path.relative_to(folder).as_posix()}"', '    url: ""', f'    hash_val: "{md5}"',
                  '    hash_type: "md5"']
    return "\n".join(lines) + "\n"


def _write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def write_bundle(source: RunSource, folder: str | Path, version: str = "0.1.0", changelog: str | None = None,
                 authors: str | None = None) -> Path:
    """Write the bundle of a checked run into ``folder`` (created).

    Args:
        source: the run (see :func:`~medattn_monai.export.source.load_run`).
        folder: the bundle folder.
        version: the bundle's version.
        changelog: what this version is (default: where it was exported from).
        authors: the bundle's authors (default: the source bundle's).

    Raises:
        ValueError: a file of the bundle (other than the TorchScript model's recorded source paths) names this
            package: a copying bug.
        RuntimeError: the compiled network differs from the run's.
    """
    folder = Path(folder)
    info, network_args = source.info, source.info["network_args"]
    facts = describe_network(**network_args)
    net_cls, net_kwargs = network_recipe(**network_args)
    scripts = vendor_modules(
        [net_cls.__module__, LoadResizeImaged.__module__, BalancedAccuracy.__module__],
        description=f"Code of this bundle: {_BACKBONE_NAMES[facts['backbone']]} network, image loader and balanced "
                    "accuracy, copied from medattn-monai by `medattn export-bundle` (imports rewritten).",
    )
    image_size = int(info["params"]["image_size"])
    in_channels = int(network_args.get("in_channels", 3))
    classes = list(info["classes"])
    origin = _source_bundle(info)
    source_meta = json.loads((origin / "configs" / "metadata.json").read_text())
    metrics = test_metrics(source.metrics)
    phrase = _model_phrase(facts)
    task = source_meta.get("task", "image classification")
    title = f"{phrase}: {task}"
    description = (f"A {phrase} ({facts['params_count']:,} parameters) for {task[0].lower() + task[1:]}, trained with "
                   f"medattn-monai (run {source.run_name}); test balanced accuracy "
                   f"{metrics.get('test_bacc', float('nan')):.4f}.")
    required = distribution_versions(imported_modules(scripts.files.values()) | set(CONFIG_MODULES))
    metadata = bundle_metadata(
        source_meta, name=title, description=description, version=version,
        changelog=changelog or f"exported from run {source.run_name} (MLflow {source.run_id}) by medattn export-bundle",
        required_packages=required, classes=classes, image_size=image_size,
        in_channels=in_channels, mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_metrics=metrics, authors=authors,
    )

    folder.mkdir(parents=True)
    _write_json(inference_config(scripts.target(net_cls), net_kwargs, scripts.target(LoadResizeImaged), image_size,
                                 in_channels, classes), folder / "configs" / "inference.json")
    _write_json(evaluate_config(scripts.target(BalancedAccuracy), len(classes)), folder / "configs" / "evaluate.json")
    _write_json(metadata, folder / "configs" / "metadata.json")
    shutil.copyfile(origin / "configs" / "logging.conf", folder / "configs" / "logging.conf")
    scripts.write(folder)
    (folder / "docs").mkdir()
    shutil.copyfile(origin / "docs" / "data_license.txt", folder / "docs" / "data_license.txt")
    shutil.copyfile(origin / "LICENSE", folder / "LICENSE")
    (folder / "models").mkdir()
    torch.save(source.state_dict, folder / "models" / "model.pt")

    example = torch.rand(2, in_channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    compiled = _compile(folder, scripts.name, source.network, example)
    large = _large_files(folder)
    if large:
        (folder / "large_files.yml").write_text(large)

    readme_metrics = dict(metrics)
    if "best_val_bacc" in source.metrics:
        readme_metrics["best_val_bacc"] = float(source.metrics["best_val_bacc"])
    readme = render_readme(
        title=title, description=description,
        run={"run_name": source.run_name, "run_id": source.run_id, "experiment": source.experiment},
        facts=facts, network_args=net_kwargs, network_target=scripts.target(net_cls),
        loader_module=scripts.modules[LoadResizeImaged.__module__], params=info["params"], classes=classes,
        split_hash=str(info.get("split_hash") or source.tags.get("split_hash", "")), metrics=readme_metrics,
        metadata=metadata, mean=IMAGENET_MEAN, std=IMAGENET_STD, suffixes=IMAGE_SUFFIXES, torchscript=compiled,
        files=sorted(_files(folder) + ["docs/README.md"]),
    )
    (folder / "docs" / "README.md").write_text(readme, encoding="utf-8")

    leaks = [f for f in _files(folder) if PACKAGE.encode() in (folder / f).read_bytes()]
    # TorchScript records the source paths of what it compiled (MONAI's and torch's too): a path naming the
    # package's folder (a virtual environment inside it) is harmless there; anywhere else it is a copying bug
    if "models/model.ts" in leaks:
        logger.warning("models/model.ts records a source path containing %r; the bundle does not need it", PACKAGE)
        leaks.remove("models/model.ts")
    if leaks:
        raise ValueError(f"exported files name {PACKAGE} (the bundle would need this package): {leaks}")
    return folder


def _zip(folder: Path) -> Path:
    """``<folder>.zip`` with the bundle folder at its top, byte-identical for identical files (fixed dates, order)."""
    path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in _files(folder):
            entry = zipfile.ZipInfo(f"{folder.name}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            # weights do not compress: storing them saves minutes on a large model
            entry.compress_type = zipfile.ZIP_STORED if name.startswith("models/") else zipfile.ZIP_DEFLATED
            archive.writestr(entry, (folder / name).read_bytes())
    return path


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
    zip: bool = True,
    overwrite: bool = False,
) -> str:
    """Export a trained run as a Model Zoo bundle folder (and ``<folder>.zip``) that runs with MONAI alone.

    Give ``run_id`` (an MLflow run id or a run folder), or tags to pick the best FINISHED train run by ``metric``.

    Args:
        run_id: the run to export: MLflow run id or run folder.
        out: the bundle folder (its name is the bundle's); default ``dist/<dataset>_<backbone>_<variant>_classification``.
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
        zip: also write ``<out>.zip``.
        overwrite: replace an existing ``out`` folder.

    Returns:
        the bundle folder.

    Raises:
        ConfigError: no run given or found, ``out`` exists, or the run cannot be exported (not FINISHED, no
            checkpoint, no test metrics, network not rebuildable).
    """
    if out is not None and Path(out).exists() and not overwrite:
        raise ConfigError(f"{out} exists: choose another --out or pass --overwrite")
    if run_id is None:
        if all(v is None for v in (dataset, backbone, attention, baseline, experiment)):
            raise ConfigError("give --run_id (an MLflow run id or run folder), or tags (--dataset, --backbone, "
                              f"--attention, --baseline, --experiment) to pick the best run by {metric}")
        run_id = select_run(dataset, backbone, attention, baseline, experiment, metric, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="bundle-export-") as tmp:
        source = load_run(str(run_id), output_root, tracking_uri, download_dir=Path(tmp) / "run")
        target = Path(out) if out else Path("dist") / bundle_name(source.tags, describe_network(**source.info["network_args"]))
        if target.exists() and not overwrite:
            raise ConfigError(f"{target} exists: choose another --out or pass --overwrite")
        # staged under a neutral name: TorchScript records the path of the scripts it compiled
        staged = write_bundle(source, Path(tmp) / "bundle", version=version, changelog=changelog, authors=authors)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(target))
    if zip:
        archive = _zip(target)
        logger.info("wrote %s and %s", target, archive)
    return str(target)
