"""One factory for every network of the study (bundle ``network_def`` targets it)."""

from __future__ import annotations

import torch
from monai.networks.nets import DenseNet121, EfficientNetBN, resnet18

from ..errors import ConfigError

__all__ = ["BACKBONES", "VARIANTS", "build_network", "count_parameters"]

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
