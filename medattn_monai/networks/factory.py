"""One factory for every network of the study (bundle ``network_def`` targets it)."""

from __future__ import annotations

import torch
from monai.networks.nets import DenseNet121, EfficientNetBN, resnet18

from ..errors import ConfigError

__all__ = ["BACKBONES", "VARIANTS", "build_network", "count_parameters", "describe_network"]

BACKBONES = ("resnet18", "densenet121", "efficientnet-b0")
VARIANTS = ("none",)


def count_parameters(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def build_network(
    backbone: str = "resnet18",
    attention: str = "none",
    num_classes: int = 2,
    in_channels: int = 3,
    image_size: int = 224,
    **options,
) -> torch.nn.Module:
    """Build a 2-D classification network mapping ``B×in_channels×H×W`` to logits ``B×num_classes``."""
    net = _build(backbone, attention, num_classes, in_channels, image_size, **options)
    # the arguments travel with the module so that describe_network(net) needs no second build
    net.network_args = dict(backbone=backbone, attention=attention, num_classes=num_classes, in_channels=in_channels,
                            image_size=image_size, **options)
    return net


def _build(backbone: str, attention: str, num_classes: int, in_channels: int, image_size: int,
           **options) -> torch.nn.Module:
    if attention not in VARIANTS:
        raise ConfigError(f"attention={attention!r} is not one of {VARIANTS}")
    if backbone == "resnet18":
        return resnet18(
            spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes, conv1_t_stride=2, bias_downsample=False
        )
    if backbone == "densenet121":
        return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
    if backbone == "efficientnet-b0":
        return EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels, num_classes=num_classes)
    raise ConfigError(f"backbone={backbone!r} is not one of {BACKBONES}")


def describe_network(net: torch.nn.Module | None = None, **args) -> dict:
    """The tracking facts of a network built by :func:`build_network` (or of the network those ``args`` build):
    backbone, attention, baseline, family, matched_to, stages, params_count."""
    if net is None:
        net = build_network(**args)
    args = net.network_args
    attention = args.get("attention", "none")
    return {
        "backbone": args["backbone"],
        "attention": attention,
        "baseline": "plain" if attention == "none" else None,
        "family": args["backbone"],
        "matched_to": None,
        "stages": None if attention == "none" else list(args.get("stages") or (3, 4)),
        "params_count": count_parameters(net),
    }
