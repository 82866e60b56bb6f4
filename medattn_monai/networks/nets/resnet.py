"""ResNet-18 (MONAI, 2-D, torchvision's key layout) with an attention variant in chosen stages.

- ``ga``/``la``: a residual attention layer appended to ``layer{s}`` as ``layer{s}.attn`` (so it runs after the
  stage's last block; no backbone parameter is renamed).
- ``ela``: every block's ``conv2`` (3×3, stride 1) in the chosen stages becomes a full-width
  :class:`~medattn_monai.networks.blocks.LocalAttentionConv2d` (SASA's replacement, fewer parameters).
- ``se``: every block of the chosen stages is an :class:`SEResNetBlock`: MONAI's ``ChannelSELayer`` (reduction 16)
  on the residual branch before the addition (SE-ResNet, Hu et al. 2018, arXiv 1709.01507).
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.blocks import ChannelSELayer
from monai.networks.nets.resnet import ResNet, ResNetBlock, get_inplanes
from torch import nn

from ...errors import ConfigError
from ..blocks import LocalAttentionConv2d
from ..spec import NetworkSpec
from .stage_attention import added_attention, se_reduction

__all__ = ["AttentionResNet18", "SEResNetBlock"]


class SEResNetBlock(ResNetBlock):
    """MONAI's basic ResNet block with channel squeeze-and-excitation on the residual branch (before the addition).

    Same arguments as :class:`monai.networks.nets.resnet.ResNetBlock`; adds ``se`` (``ChannelSELayer``, reduction
    16 as in SE-ResNet: :func:`~.stage_attention.se_reduction`). Parameter names of the plain block are unchanged.
    """

    def __init__(self, in_planes: int, planes: int, spatial_dims: int = 3, stride: int = 1, **kwargs) -> None:
        super().__init__(in_planes, planes, spatial_dims=spatial_dims, stride=stride, **kwargs)
        self.se = ChannelSELayer(spatial_dims, planes, r=se_reduction(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out: torch.Tensor = self.act(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.act(out)


class AttentionResNet18(ResNet):
    """ResNet-18 as ``monai.networks.nets.resnet18(spatial_dims=2, conv1_t_stride=2, bias_downsample=False)``,
    optionally with attention (see the module docstring). Maps ``B×in_channels×H×W`` to logits ``B×num_classes``.

    Args:
        widen_factor: MONAI's width knob (channels ``64·2^(s−1)·widen_factor`` per stage); the size-matched
            baselines change only this.
        options: the network's other arguments, fields of :class:`~medattn_monai.networks.spec.NetworkSpec`
            (``CLASS_FIELDS``: ``num_classes``, ``attention``, ``stages`` = ``layer1``–``layer4``, ...).

    Raises:
        ConfigError: for invalid options, naming the value.
    """

    def __init__(self, widen_factor: float = 1.0, **options: Any) -> None:
        spec = NetworkSpec.for_class("resnet18", options)
        # read by _make_layer while ResNet.__init__ builds the stages (a plain attribute: allowed before Module init)
        self._se_stages = spec.attention_stages if spec.attention == "se" else ()
        self._stages_built = 0
        super().__init__(
            block=ResNetBlock,
            layers=[2, 2, 2, 2],
            block_inplanes=get_inplanes(),
            spatial_dims=2,
            n_input_channels=spec.in_channels,
            conv1_t_stride=2,
            widen_factor=widen_factor,
            num_classes=spec.num_classes,
            bias_downsample=False,
        )
        del self._se_stages, self._stages_built
        self.attention = spec.attention
        self.attention_stages = spec.attention_stages
        for stage in self.attention_stages:
            layer = getattr(self, f"layer{stage}")
            channels = int(get_inplanes()[stage - 1] * widen_factor)
            if spec.attention in ("ga", "la"):
                layer.add_module("attn", added_attention(spec, channels, stage))
            elif spec.attention == "ela":
                for block in layer:
                    try:
                        block.conv2 = LocalAttentionConv2d(channels, channels, spec.window, heads=spec.heads)
                    except ValueError as e:
                        raise ConfigError(f"attention='ela' in layer{stage} ({channels} channels): {e}") from e

    def _make_layer(
        self,
        block: type[ResNetBlock],
        planes: int,
        blocks: int,
        spatial_dims: int,
        shortcut_type: str,
        stride: int = 1,
        norm: str | tuple = "batch",
    ) -> nn.Sequential:
        self._stages_built += 1
        if self._stages_built in self._se_stages:
            block = SEResNetBlock
        return super()._make_layer(block, planes, blocks, spatial_dims, shortcut_type, stride=stride, norm=norm)
