"""``medattn models``: every backbone × variant and baseline with its parameters, overhead and cost.

Counts come from :func:`~.factory.describe_spec` (the numbers bundles log as ``params_count``). Multiply-adds are
counted by :func:`~.meta_device.count_macs` over one forward pass on the ``meta`` device (no memory, no
arithmetic): convolutions, matrix products and attention, as implemented (the halo blocks of ``la`` include their
masked keys); element-wise operations, norms and pooling are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..errors import ConfigError
from .factory import describe_spec, meta_build, spec_recipe
from .meta_device import count_macs
from .spec import CNN_BACKBONES, NetworkSpec, normalize_stages, takes_network_fields, variants_of

__all__ = ["model_rows", "model_table", "network_cost_note", "print_model_table"]

_HEADER = ("network", "params", "overhead", "GMACs", "output", "attn stages", "width")
_RIGHT_ALIGNED = {1, 2, 3}


def _networks(base: NetworkSpec, stages: tuple[int, ...], backbones: Sequence[str]) -> list[tuple[str, NetworkSpec]]:
    """(row name, spec) of every network the table lists, in its order."""
    named = []
    for backbone in backbones:
        plain = base.plain(backbone)
        named.append((f"{backbone} plain", plain))
        variants = variants_of(backbone)
        named += [(f"{backbone} {v}", replace(plain, attention=v, baseline=None, stages=stages)) for v in variants]
        named += [
            (f"{backbone} size-matched to {v}", replace(plain, baseline="size_matched", matched_to=v, stages=stages))
            for v in variants
        ]
    named += [(f"vit (sized to {family})", replace(base.plain("vit"), family=family)) for family in backbones]
    return named


def _row(name: str, spec: NetworkSpec, counted: dict) -> dict:
    info = describe_spec(spec)
    cls, kwargs = spec_recipe(spec)
    key = (cls, tuple(kwargs.items()))  # equal networks (a size-matched CNN at the plain width, ...) are counted once
    if key not in counted:
        x = torch.empty(1, spec.in_channels, spec.image_size, spec.image_size, device="meta")
        counted[key] = count_macs(meta_build(spec), x)
    macs, shape = counted[key]
    # the overhead is over the plain CNN of the row's family (a ViT's: the CNN it is sized to)
    params, plain = info["params_count"], describe_spec(spec.plain(spec.family))["params_count"]
    return {
        "network": name,
        "params": params,
        "overhead": None if spec.baseline == "plain" else params / plain - 1,
        "gmacs": macs / 1e9,
        "output": "×".join(str(s) for s in shape),
        "stages": info["stages"] if info["attention"] != "none" else "",
        "width": info["width"] or "",
    }


def model_rows(
    base: NetworkSpec, stages: Sequence[int] = (3, 4), backbones: Sequence[str] = CNN_BACKBONES
) -> list[dict]:
    """One dict per network: ``network, params, overhead`` (fraction over the plain backbone or, for a ViT, its
    family's plain CNN), ``gmacs`` (multiply-adds ×1e9 for one image), ``output``, ``stages`` (with attention),
    ``width`` (the width knob of size-matched CNNs and ViTs).

    Args:
        base: the classes, input channels and image size of every network (e.g. ``NetworkSpec(image_size=96)``).
        stages: stages carrying the attention variants.
        backbones: the CNN families to list.
    """
    unknown = [b for b in backbones if b not in CNN_BACKBONES]
    if unknown:
        raise ConfigError(f"backbones={list(backbones)!r}: {unknown} not among {list(CNN_BACKBONES)}")
    counted: dict[tuple, tuple[int, torch.Size]] = {}
    return [_row(name, spec, counted) for name, spec in _networks(base, normalize_stages(stages), backbones)]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(c.rjust(w) if i in _RIGHT_ALIGNED else c.ljust(w) for i, (c, w) in pairs)


def model_table(rows: list[dict]) -> str:
    """Rows of :func:`model_rows` as an aligned text table."""
    cells = [
        (
            r["network"],
            f"{r['params']:,}",
            "" if r["overhead"] is None else f"{r['overhead']:+.1%}",
            f"{r['gmacs']:.2f}",
            r["output"],
            r["stages"],
            r["width"],
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [_HEADER, *cells]) for i in range(len(_HEADER))]
    lines = [_line(_HEADER, widths).rstrip(), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [_line(c, widths).rstrip() for c in cells])


def print_model_table(
    image_size: int = 224,
    num_classes: int = 2,
    in_channels: int = 3,
    stages: tuple = (3, 4),
    backbones: tuple = CNN_BACKBONES,
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
    if isinstance(backbones, str):
        backbones = tuple(b.strip() for b in backbones.split(",") if b.strip())
    base = NetworkSpec(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    rows = model_rows(base, stages, tuple(backbones))
    print(f"multiply-adds (GMACs) for one {image_size}×{image_size} image; overhead over the plain backbone\n")
    print(model_table(rows))


@takes_network_fields
def network_cost_note(*args: Any, pretrained_path: str | None = None, **fields: Any) -> str | None:
    """Why a ViT trains several times slower than the CNN it is sized to (None for a CNN).

    Sized by parameters, the ViT's compute follows its token count instead: ``(image_size / patch)²`` patches, each
    through every transformer block. At 224 px its 16-px patches give 14×14 tokens; below 128 px the patches are
    8 px (so that 64 px still gives 8×8 tokens), and a CNN's cost shrinks with the pixels while the ViT's does not.
    """
    spec = NetworkSpec.from_args(*args, **fields)
    if spec.backbone != "vit":
        return None
    x = torch.empty(1, spec.in_channels, spec.image_size, spec.image_size, device="meta")
    vit = meta_build(spec)
    vit_macs, _ = count_macs(vit, x)
    cnn_macs, _ = count_macs(meta_build(spec.plain(spec.family)), x)
    patch, blocks = vit.patch_size, len(vit.vit.blocks)
    grid = spec.image_size // patch
    return (f"vit (sized to {spec.family}) at {spec.image_size} px: {grid}×{grid} patches of {patch} px = "
            f"{grid * grid} tokens through {blocks} transformer blocks, {vit_macs / 1e9:.2f} GMACs per image: "
            f"{vit_macs / cnn_macs:.1f}× the {cnn_macs / 1e9:.2f} of {spec.family} at this size, so expect "
            f"about that much longer per epoch (`medattn models --image_size {spec.image_size}` lists every network)")
