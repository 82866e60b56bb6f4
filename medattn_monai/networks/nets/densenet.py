"""DenseNet-121 (MONAI, 2-D) with an attention variant in chosen stages (dense blocks).

- ``ga``/``la``: a residual attention layer inserted into ``features`` as ``features.attn{s}`` right after
  ``denseblock{s}`` (before ``transition{s}``, or before ``norm5`` for stage 4); no parameter is renamed.
- ``ela``: every dense layer's 3×3 convolution (``layers.conv2``, ``bn_size·growth → growth``) in the chosen
  blocks becomes a :class:`~medattn_monai.networks.blocks.LocalAttentionConv2d`.
- ``se``: MONAI's ``ChannelSELayer`` on each dense layer's new features before they are concatenated
  (``layers.se``, appended after ``conv2``); the 32 new features get 16 hidden units (reduction 2, see
  :func:`~.stage_attention.se_reduction`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from monai.networks.blocks import ChannelSELayer
from monai.networks.nets import DenseNet121
from torch import nn

from ...errors import ConfigError
from ..blocks import LocalAttentionConv2d
from ..spec import NetworkSpec
from .stage_attention import added_attention, se_reduction

__all__ = ["AttentionDenseNet121"]

_BN_SIZE = 4  # MONAI's default bottleneck factor: dense layers' 1×1 conv widens to 4·growth_rate


class AttentionDenseNet121(DenseNet121):
    """MONAI's ``DenseNet121(spatial_dims=2)``, optionally with attention (see the module docstring).

    Args:
        growth_rate: DenseNet's width knob (k in the paper, 32 for DenseNet-121); the size-matched baselines
            change only this.
        options: the network's other arguments, fields of :class:`~medattn_monai.networks.spec.NetworkSpec`
            (``CLASS_FIELDS``: ``num_classes``, ``attention``, ``stages`` = dense blocks 1–4, ...).

    Raises:
        ConfigError: for invalid options, naming the value.
    """

    def __init__(self, growth_rate: int = 32, **options: Any) -> None:
        spec = NetworkSpec.for_class("densenet121", options)
        super().__init__(
            spatial_dims=2,
            in_channels=spec.in_channels,
            out_channels=spec.num_classes,
            growth_rate=growth_rate,
            pretrained=False,
        )
        self.attention = spec.attention
        self.attention_stages = spec.attention_stages
        added: dict[str, nn.Module] = {}
        for stage in self.attention_stages:
            block = getattr(self.features, f"denseblock{stage}")
            if spec.attention in ("ga", "la"):
                last = block[-1].layers
                channels = last.norm1.num_features + last.conv2.out_channels
                added[f"denseblock{stage}"] = added_attention(spec, channels, stage)
                continue
            for layer in block:
                if spec.attention == "se":
                    layer.layers.add_module("se", ChannelSELayer(2, growth_rate, r=se_reduction(growth_rate)))
                elif spec.attention == "ela":
                    try:
                        layer.layers.conv2 = LocalAttentionConv2d(
                            _BN_SIZE * growth_rate, growth_rate, spec.window, heads=spec.heads
                        )
                    except ValueError as e:
                        raise ConfigError(f"attention='ela' in denseblock{stage}: {e}") from e
        if added:
            modules: list[tuple[str, nn.Module]] = []
            for name, module in self.features.named_children():
                modules.append((name, module))
                if name in added:
                    modules.append((f"attn{name[-1]}", added[name]))
            self.features = nn.Sequential(OrderedDict(modules))
