"""``medattn models``: the table of every network, answered at once for the default arguments.

Building every network on the ``meta`` device to count its parameters and multiply-adds needs PyTorch and MONAI,
whose import alone takes 5–6 s on a 2-core machine, and the counting about as long again. The table for the
default arguments is therefore kept in ``networks/model_table.json``, written by ``python -m
medattn_monai.models_command`` (and a test fails when it is stale). It is printed only when it was computed from
exactly what is installed: the same network sources (a hash of ``medattn_monai/networks``), the same torch and
MONAI versions and the same arguments; anything else (other arguments, an edited network, another MONAI) is
computed afresh by :func:`medattn_monai.networks.summary.print_model_table`.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["TABLE_FILE", "current_key", "print_models", "write_table"]

NETWORKS = Path(__file__).with_name("networks")
TABLE_FILE = NETWORKS / "model_table.json"
# print_model_table's defaults (a test keeps the two equal)
_DEFAULTS = {"image_size": 224, "num_classes": 2, "in_channels": 3, "stages": [3, 4],
             "backbones": ["resnet18", "densenet121", "efficientnet-b0"]}


def current_key(arguments: dict[str, Any]) -> dict[str, Any]:
    """What a stored table must have been computed from to be printed now."""
    sources = hashlib.sha256()
    for path in sorted(NETWORKS.rglob("*.py")):
        sources.update(path.relative_to(NETWORKS).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"networks_sha256": sources.hexdigest(), "torch": metadata.version("torch"),
            "monai": metadata.version("monai"), "arguments": arguments}


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _arguments(image_size: Any, num_classes: Any, in_channels: Any, stages: Any, backbones: Any) -> dict[str, Any]:
    if isinstance(backbones, str):
        backbones = [b.strip() for b in backbones.split(",") if b.strip()]
    return {"image_size": image_size, "num_classes": num_classes, "in_channels": in_channels,
            "stages": _as_list(stages), "backbones": _as_list(backbones)}


def _stored_text(arguments: dict[str, Any]) -> str | None:
    try:
        stored = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
        if stored["key"] == current_key(arguments):
            return str(stored["text"])
    except (OSError, ValueError, KeyError, metadata.PackageNotFoundError):
        pass
    return None


def print_models(
    image_size: int = 224,
    num_classes: int = 2,
    in_channels: int = 3,
    stages: tuple = (3, 4),
    backbones: tuple = ("resnet18", "densenet121", "efficientnet-b0"),
) -> None:
    """Print every backbone × variant and baseline: parameters, overhead over the plain backbone, multiply-adds
    for one ``image_size`` image, output shape, stages with attention and width knob.

    Args:
        image_size: input side (224 for ISIC, 96 for Camelyon17, 64 for the demo).
        num_classes: number of logits.
        in_channels: input channels.
        stages: stages carrying the attention variants (e.g. ``--stages 3,4``).
        backbones: CNN families to list, each with its variants, size-matched CNNs and ViT (e.g.
            ``--backbones resnet18``); all three by default.
    """
    text = _stored_text(_arguments(image_size, num_classes, in_channels, stages, backbones))
    if text is not None:
        print(text)
        return
    from .networks.summary import print_model_table

    print_model_table(image_size, num_classes, in_channels, stages, backbones)


def write_table() -> Path:
    """Compute the default table and store it with its key in :data:`TABLE_FILE`."""
    import contextlib
    import io

    from .networks.summary import print_model_table

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_model_table(**_DEFAULTS)
    stored = {"key": current_key(_DEFAULTS), "text": out.getvalue().rstrip("\n")}
    TABLE_FILE.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
    return TABLE_FILE


if __name__ == "__main__":
    print(f"wrote {write_table()}")
