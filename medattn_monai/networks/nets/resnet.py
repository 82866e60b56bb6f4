"""ResNet-18 (MONAI, 2-D, torchvision's key layout) with an attention variant in chosen stages.

- ``ga``/``la``: a residual attention layer appended to ``layer{s}`` as ``layer{s}.attn`` (so it runs after the
  stage's last block; no backbone parameter is renamed).
- ``ela``: every block's ``conv2`` (3×3, stride 1) in the chosen stages becomes a full-width
  :class:`~medattn_monai.networks.blocks.LocalAttentionConv2d` (SASA's replacement, fewer parameters).
- ``se``: every block of the chosen stages is an :class:`SEResNetBlock`: MONAI's ``ChannelSELayer`` (reduction 16)
  on the residual branch before the addition (SE-ResNet, Hu et al. 2018, arXiv 1709.01507).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ChannelSELayer
from monai.networks.nets.resnet import ResNet, ResNetBlock, get_inplanes

from ...errors import ConfigError
from ..blocks import LocalAttentionConv2d
from .stage_attention import AttentionOptions, added_attention, se_reduction

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
        num_classes: number of output logits.
        in_channels: input channels.
        attention: ``none``, ``ga``, ``la``, ``ela`` or ``se``.
        stages: stages (1–4 = ``layer1``–``layer4``) that carry the attention.
        heads: heads of every attention layer (None: one per 32 channels of attention width).
        attn_ratio: channel reduction of the added ``ga``/``la`` layers.
        window: odd local window of ``la``/``ela``.
        image_size: largest input side (sizes ``ga``'s relative position tables).
        widen_factor: MONAI's width knob (channels ``64·2^(s−1)·widen_factor`` per stage); the size-matched
            baselines change only this.

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
        widen_factor: float = 1.0,
    ) -> None:
        options = AttentionOptions(attention, tuple(stages), heads, attn_ratio, window, image_size)
        # read by _make_layer while ResNet.__init__ builds the stages (a plain attribute: allowed before Module init)
        self._se_stages = options.stages if attention == "se" else ()
        self._stages_built = 0
        super().__init__(
            block=ResNetBlock,
            layers=[2, 2, 2, 2],
            block_inplanes=get_inplanes(),
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_stride=2,
            widen_factor=widen_factor,
            num_classes=num_classes,
            bias_downsample=False,
        )
        del self._se_stages, self._stages_built
        self.attention = attention
        self.attention_stages = options.stages if attention != "none" else ()
        for stage in self.attention_stages:
            layer = getattr(self, f"layer{stage}")
            channels = int(get_inplanes()[stage - 1] * widen_factor)
            if attention in ("ga", "la"):
                layer.add_module("attn", added_attention(options, channels, stage))
            elif attention == "ela":
                for block in layer:
                    try:
                        block.conv2 = LocalAttentionConv2d(channels, channels, window, heads=heads)
                    except ValueError as e:
                        raise ConfigError(f"attention='ela' in layer{stage} ({channels} channels): {e}") from e

    def _make_layer(self, block, planes, blocks, spatial_dims, shortcut_type, stride=1, norm="batch"):  # noqa: ANN001
        self._stages_built += 1
        if self._stages_built in self._se_stages:
            block = SEResNetBlock
        return super()._make_layer(block, planes, blocks, spatial_dims, shortcut_type, stride=stride, norm=norm)
