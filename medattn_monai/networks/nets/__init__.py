"""The study's networks: MONAI backbones with attention variants, and the ViT baseline."""

from __future__ import annotations

from .densenet import AttentionDenseNet121
from .efficientnet import AttentionEfficientNetB0
from .resnet import AttentionResNet18, SEResNetBlock
from .stage_attention import stage_map_size
from .vit import ViTClassifier

__all__ = [
    "AttentionDenseNet121",
    "AttentionEfficientNetB0",
    "AttentionResNet18",
    "SEResNetBlock",
    "ViTClassifier",
    "stage_map_size",
]
