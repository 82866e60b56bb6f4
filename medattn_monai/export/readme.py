"""The exported bundle's ``docs/README.md``, rendered from ``templates/README.md`` with the run's facts.

The variant definitions follow ``docs/networks.md`` (the study's design), in words a reader of one bundle needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from .requirements import install_lines

__all__ = ["FILE_ROLES", "VARIANT_DEFINITIONS", "render_readme", "variant_name"]

TEMPLATE = Path(__file__).with_name("templates") / "README.md"

VARIANT_DEFINITIONS = {
    "none": "The plain CNN: MONAI's {backbone} without attention.",
    "ga": (
        "**Global self-attention (`ga`)**: after each of the chosen {stages}, a residual layer "
        "`x + γ·out(attn(norm(x)))` is added, in which every position of the feature map attends to all H·W "
        "positions (multi-head attention with a learned relative position bias; queries, keys and values in "
        "C/{attn_ratio} channels, BoTNet-style; `γ` a learned per-channel scale that starts at 0, so training starts "
        "from the plain CNN). Non-local networks (Wang et al. 2018), BoTNet (Srinivas et al. 2021)."
    ),
    "la": (
        "**Local self-attention (`la`)**: after each of the chosen {stages}, a residual layer "
        "`x + γ·out(attn(norm(x)))` is added, in which every position attends only to its {window}×{window} "
        "neighbourhood inside the map (positions outside are masked out, not zero-padded; learned relative "
        "position bias; queries, keys and values in C/{attn_ratio} channels; `γ` starts at 0). Stand-alone "
        "self-attention (SASA, Ramachandran et al. 2019)."
    ),
    "ela": (
        "**Embedded local self-attention (`ela`)**: in every block of the chosen {stages}, {ela_place} is replaced "
        "by {window}×{window} local self-attention (positions outside the map are masked out; learned relative "
        "position bias). Stand-alone self-attention (SASA, Ramachandran et al. 2019)."
    ),
    "se": (
        "**Squeeze-and-excitation (`se`)**, channel attention: MONAI's `ChannelSELayer` in every block of the "
        "chosen {stages}, {se_place}. Hu et al. 2018."
    ),
    "size_matched": (
        "**Size-matched CNN**: the plain {backbone} with only its width changed ({width}) so that its parameter "
        "count is within ±5 % of the `{matched_to}` attention variant's: a control for the extra parameters of "
        "attention."
    ),
    "vit": (
        "**Vision Transformer baseline**: MONAI's `ViT` (2-D, class token, linear head) with {width}, sized to "
        "within ±15 % of the plain {family}'s parameters."
    ),
}

# where ela's attention and se's layers go in each backbone (docs/networks.md)
_ELA_PLACES = {
    "resnet18": "the 3×3 convolution `conv2`",
    "densenet121": "the dense layer's 3×3 convolution",
    "efficientnet-b0": ("the MBConv block's depthwise convolution (space-only attention, attending at stride 1 and "
                        "average-pooling 2×2 where the convolution was strided)"),
}
_SE_PLACES = {"resnet18": "on the residual branch before the addition",
              "densenet121": "on each dense layer's new features before the concatenation"}

# what each file of an exported bundle is, for its README (files not listed are described by their folder)
FILE_ROLES = {
    "configs/inference.json": "inference: every image of `dataset_dir` → `eval/predictions.csv`",
    "configs/evaluate.json": "overlay on `inference.json`: metrics on a labelled datalist split",
    "configs/metadata.json": "versions, requirements, input/output format, the run's test metrics",
    "configs/logging.conf": "logging of `python -m monai.bundle run`",
    "models/model.pt": "the run's best weights (a plain `state_dict`)",
    "models/model.ts": "the network with its weights, in TorchScript",
    "models/model.pt2": "the network with its weights, as a `torch.export` program",
    "large_files.yml": "files over the Model Zoo's 25 MB limit: upload them and fill in their URLs",
    "docs/README.md": "this file",
    "docs/data_license.txt": "terms of the training data",
    "LICENSE": "licence of the bundle",
    "scripts/__init__.py": "the bundle's code, copied from medattn-monai",
}


def variant_name(facts: Mapping[str, Any]) -> str:
    """``ga``/``la``/``ela``/``se``, or ``plain``, ``size_matched`` or ``vit`` for a baseline."""
    if facts["attention"] != "none":
        return facts["attention"]
    return facts.get("baseline") or "plain"


def _stages(stages: str | None) -> str:
    """``"3,4"`` as ``stages 3, 4 (stride 16, 32)``: stage s outputs stride 2^(s+1)."""
    numbers = [int(x) for x in (stages or "").split(",") if x.strip()]
    strides = ", ".join(str(2 ** (s + 1)) for s in numbers)
    return f"stage{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} (stride {strides})"


def _definition(facts: Mapping[str, Any], network_args: Mapping[str, Any]) -> str:
    key = variant_name(facts)
    key = "none" if key == "plain" else key
    values = {**network_args, **facts, "stages": _stages(facts.get("stages")),
              "ela_place": _ELA_PLACES.get(facts["backbone"], ""), "se_place": _SE_PLACES.get(facts["backbone"], "")}
    return VARIANT_DEFINITIONS[key].format(**values)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"| {k} | {v} |" for k, v in rows)


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else f"`{value}`"


def _run_values(metadata: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    """The README's install lines and training table."""
    torch_line, packages_line, checks_line = install_lines(metadata)
    training = [(f"`{k}`", _value(v)) for k, v in params.items() if k != "pretrained_path"]
    training.append(("ImageNet-pretrained backbone", "yes" if params.get("pretrained_path") else "no (from scratch)"))
    return {"torch_line": torch_line, "packages_line": packages_line, "checks_line": checks_line,
            "training_rows": _table(training)}


def render_readme(
    *,
    title: str,
    description: str,
    run: Mapping[str, str],
    facts: Mapping[str, Any],
    network_args: Mapping[str, Any],
    network_target: str,
    loader_module: str,
    params: Mapping[str, Any],
    classes: Sequence[str],
    split_hash: str,
    metrics: Mapping[str, float],
    metadata: Mapping[str, Any],
    data: Mapping[str, str],
    mean: Sequence[float],
    std: Sequence[float],
    suffixes: Sequence[str],
    torchscript: str,
    files: Sequence[str],
) -> str:
    """The README text.

    Longer than 60 lines because of its docstring and the one mapping of template names to values.

    Args:
        title: the bundle's name.
        description: one paragraph: what the model is and does.
        run: ``run_name``, ``run_id``, ``experiment`` of the source run.
        facts: :func:`~medattn_monai.networks.describe_network` of the run's network.
        network_args: the constructor arguments of the network class (``network_recipe``).
        network_target: the network's ``_target_`` in the bundle.
        loader_module: the module of the image loader's copy in ``scripts``.
        params: the run's hyper-parameters.
        classes: class names in logit order.
        split_hash: the datalist's split hash.
        metrics: metrics to report (test metrics and the best validation balanced accuracy).
        metadata: the bundle's ``metadata.json`` (input format, normalisation, versions, requirements).
        data: texts about the training data: ``paragraph`` (the Data section), ``test_split`` (what the test
            metrics were measured on) and ``licence`` (the License section).
        mean: normalisation mean per channel.
        std: normalisation standard deviation per channel.
        suffixes: image file suffixes inference reads.
        torchscript: the sentence about the compiled model.
        files: the bundle's files (relative paths).
    """
    image = metadata["network_data_format"]["inputs"]["image"]
    copied = "copied from medattn-monai: network, image loader or metric code"
    roles = [(f"`{f}`", FILE_ROLES.get(f, copied if f.startswith("scripts/") else "bundle file")) for f in files]
    values = {
        "title": title,
        "description": description,
        "run_name": run["run_name"],
        "run_id": run["run_id"],
        "experiment": run["experiment"],
        "backbone": facts["backbone"],
        "variant": variant_name(facts),
        "params_count": f"{facts['params_count']:,}",
        "in_channels": image["num_channels"],
        "image_size": image["spatial_shape"][0],
        "num_classes": len(classes),
        "network_target": network_target,
        "variant_definition": _definition(facts, network_args),
        "data_paragraph": data["paragraph"],
        "test_split": data["test_split"],
        "licence_paragraph": data["licence"],
        "class_list": ", ".join(f"{i} `{c}`" for i, c in enumerate(classes)),
        "split_hash": split_hash,
        "colour": "RGB" if image["num_channels"] == 3 else "greyscale",
        "loader_module": loader_module,
        "mean": tuple(mean),
        "std": tuple(std),
        "metric_rows": _table([(f"`{k}`", f"{v:.4f}") for k, v in metrics.items()]),
        "torchscript": torchscript,
        "suffixes": ", ".join(f"`{s}`" for s in suffixes),
        "intended_use": metadata["intended_use"],
        "seed": params.get("seed", "?"),
        "file_rows": "\n".join(f"- {name}: {role}" for name, role in roles),
        "reference_rows": "\n".join(f"- {r}" for r in metadata["references"]),
        **_run_values(metadata, params),
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)
