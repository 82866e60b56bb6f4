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
from collections.abc import Sequence

from monai.networks.blocks import ChannelSELayer
from monai.networks.nets import DenseNet121
from torch import nn

from ...errors import ConfigError
from ..blocks import LocalAttentionConv2d
from .stage_attention import AttentionOptions, added_attention, se_reduction

__all__ = ["AttentionDenseNet121"]

_BN_SIZE = 4  # MONAI's default bottleneck factor: dense layers' 1×1 conv widens to 4·growth_rate


class AttentionDenseNet121(DenseNet121):
    """MONAI's ``DenseNet121(spatial_dims=2)``, optionally with attention (see the module docstring).

    Args:
        num_classes: number of output logits.
        in_channels: input channels.
        attention: ``none``, ``ga``, ``la``, ``ela`` or ``se``.
        stages: dense blocks (1–4) that carry the attention.
        heads: heads of every attention layer (None: one per 32 channels of attention width).
        attn_ratio: channel reduction of the added ``ga``/``la`` layers.
        window: odd local window of ``la``/``ela``.
        image_size: largest input side (sizes ``ga``'s relative position tables).
        growth_rate: DenseNet's width knob (k in the paper, 32 for DenseNet-121); the size-matched baselines
            change only this.

    Raises:
        ConfigError: for invalid options, naming the value.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        attention: str = "none",
        stages: Sequence[int] = (3, 4),
        heads: int | None = None,
        attn_ratio: int = 4,
        window: int = 7,
        image_size: int = 224,
        growth_rate: int = 32,
    ) -> None:
        options = AttentionOptions(attention, tuple(stages), heads, attn_ratio, window, image_size)
        super().__init__(
            spatial_dims=2, in_channels=in_channels, out_channels=num_classes, growth_rate=growth_rate, pretrained=False
        )
        self.attention = attention
        self.attention_stages = options.stages if attention != "none" else ()
        added: dict[str, nn.Module] = {}
        for stage in self.attention_stages:
            block = getattr(self.features, f"denseblock{stage}")
            if attention in ("ga", "la"):
                last = block[-1].layers
                channels = last.norm1.num_features + last.conv2.out_channels
                added[f"denseblock{stage}"] = added_attention(options, channels, stage)
                continue
            for layer in block:
                if attention == "se":
                    layer.layers.add_module("se", ChannelSELayer(2, growth_rate, r=se_reduction(growth_rate)))
                elif attention == "ela":
                    try:
                        layer.layers.conv2 = LocalAttentionConv2d(_BN_SIZE * growth_rate, growth_rate, window, heads)
                    except ValueError as e:
                        raise ConfigError(f"attention='ela' in denseblock{stage}: {e}") from e
        if added:
            modules: list[tuple[str, nn.Module]] = []
            for name, module in self.features.named_children():
                modules.append((name, module))
                if name in added:
                    modules.append((f"attn{name[-1]}", added[name]))
            self.features = nn.Sequential(OrderedDict(modules))
