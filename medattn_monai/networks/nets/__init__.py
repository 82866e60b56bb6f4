"""The study's networks: MONAI backbones with attention variants, and the ViT baseline."""

from __future__ import annotations

from .densenet import AttentionDenseNet121
from .efficientnet import AttentionEfficientNetB0
from .resnet import AttentionResNet18, SEResNetBlock
from .stage_attention import VARIANTS, AttentionOptions, stage_map_size
from .vit import ViTClassifier

__all__ = [
    "VARIANTS",
    "AttentionDenseNet121",
    "AttentionEfficientNetB0",
    "AttentionOptions",
    "AttentionResNet18",
    "SEResNetBlock",
    "ViTClassifier",
    "stage_map_size",
]
