"""``medattn models``: every backbone × variant and baseline with its parameters, overhead and cost.

Counts come from :func:`describe_network` (the numbers bundles log as ``params_count``). Multiply-adds are
counted by :class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass on the ``meta`` device (no
memory, no arithmetic): convolutions, matrix products and attention, as implemented (the halo blocks of ``la``
include their masked keys); element-wise operations, norms and pooling are not counted.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from .factory import CNN_BACKBONES, NetworkSpec, _construct, describe_network, variants_of
from .nets.stage_attention import normalize_stages

__all__ = ["model_rows", "model_table", "print_model_table"]


def _macs(spec: NetworkSpec, image_size: int) -> tuple[int, tuple[int, ...]]:
    with torch.device("meta"):
        net = _construct(spec).eval()
    x = torch.empty(1, spec.in_channels, image_size, image_size, device="meta")
    # outside the device context: its per-op dispatch would make the forward pass ~10x slower
    with FlopCounterMode(display=False) as counter:
        out = net(x)
    return counter.get_total_flops() // 2, tuple(out.shape)


def _row(name: str, spec_args: dict, plain_params: int | None, image_size: int) -> dict:
    info = describe_network(**spec_args)
    spec = NetworkSpec.from_args(**spec_args)
    macs, shape = _macs(spec, image_size)
    params = info["params_count"]
    return {
        "network": name,
        "params": params,
        "overhead": None if plain_params is None else params / plain_params - 1,
        "gmacs": macs / 1e9,
        "output": "×".join(str(s) for s in shape),
        "stages": info["stages"] if info["attention"] != "none" else "",
        "width": info["width"] or "",
    }


def model_rows(
    image_size: int = 224,
    num_classes: int = 2,
    in_channels: int = 3,
    stages: tuple = (3, 4),
    backbones: tuple = CNN_BACKBONES,
) -> list[dict]:
    """One dict per network: ``network, params, overhead`` (fraction over the plain backbone or, for a ViT, its
    family's plain CNN), ``gmacs`` (multiply-adds ×1e9 for one image), ``output``, ``stages`` (with attention),
    ``width`` (the width knob of size-matched CNNs and ViTs). ``backbones``: the CNN families to list."""
    unknown = [b for b in backbones if b not in CNN_BACKBONES]
    if unknown:
        raise ConfigError(f"backbones={list(backbones)!r}: {unknown} not among {list(CNN_BACKBONES)}")
    common = dict(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    rows = []
    for backbone in backbones:
        plain = describe_network(backbone, **common)["params_count"]
        rows.append(_row(f"{backbone} plain", dict(backbone=backbone, **common), None, image_size))
        for variant in variants_of(backbone):
            args = dict(backbone=backbone, attention=variant, stages=stages, **common)
            rows.append(_row(f"{backbone} {variant}", args, plain, image_size))
        for variant in variants_of(backbone):
            args = dict(backbone=backbone, baseline="size_matched", matched_to=variant, stages=stages, **common)
            rows.append(_row(f"{backbone} size-matched to {variant}", args, plain, image_size))
    for family in backbones:
        plain = describe_network(family, **common)["params_count"]
        rows.append(_row(f"vit (sized to {family})", dict(backbone="vit", family=family, **common), plain, image_size))
    return rows


def model_table(rows: list[dict]) -> str:
    """Rows of :func:`model_rows` as an aligned text table."""
    header = ("network", "params", "overhead", "GMACs", "output", "attn stages", "width")
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
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    right = {1, 2, 3}
    fmt = lambda c: "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in enumerate(zip(c, widths)))  # noqa: E731
    lines = [fmt(header).rstrip(), "  ".join("-" * w for w in widths)] + [fmt(c).rstrip() for c in cells]
    return "\n".join(lines)


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
    rows = model_rows(image_size, num_classes, in_channels, normalize_stages(stages), tuple(backbones))
    print(f"multiply-adds (GMACs) for one {image_size}×{image_size} image; overhead over the plain backbone\n")
    print(model_table(rows))
