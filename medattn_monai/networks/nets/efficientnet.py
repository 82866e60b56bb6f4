"""EfficientNet-B0 (MONAI, 2-D, never pretrained) with an attention variant in chosen stages.

Stage ``s`` is the group of MBConv stacks whose output stride is ``2^(s+1)``: for B0, stage 3 = stacks 3–4
(stride 16), stage 4 = stacks 5–6 (stride 32).

- ``ga``/``la``: a residual attention layer appended to the stage's last stack as ``_blocks.{i}.attn``.
- ``ela``: every MBConv block of the chosen stages gets a
  :class:`~medattn_monai.networks.blocks.DepthwiseLocalAttention2d` in place of its depthwise convolution
  (space-only attention, values = input; attend at stride 1 then 2×2 average pool where the conv was strided).
- ``se`` is not a variant here: every MBConv block already carries squeeze-and-excitation.
"""

from __future__ import annotations

from typing import Any

from monai.networks.layers.factories import Act
from monai.networks.nets import EfficientNet
from monai.networks.nets.efficientnet import MBConvBlock
from torch import nn

from ...errors import ConfigError
from ..blocks import DepthwiseLocalAttention2d
from ..spec import NetworkSpec
from .stage_attention import added_attention

__all__ = ["EFFICIENTNET_B0_BLOCKS", "AttentionEfficientNetB0"]

# MONAI's EfficientNetBN block definitions, which it keeps inside its constructor (identical for B0–B7)
EFFICIENTNET_B0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


class AttentionEfficientNetB0(EfficientNet):
    """``EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2)`` as a plain ``EfficientNet`` (so the
    width can change), optionally with attention (see the module docstring).

    Args:
        width_coefficient: EfficientNet's width multiplier (1.0 for B0); the size-matched baselines change only
            this.
        options: the network's other arguments, fields of :class:`~medattn_monai.networks.spec.NetworkSpec`
            (``CLASS_FIELDS``: ``num_classes``, ``attention``, ``stages``, ...; ``image_size`` also sets MONAI's
            static "same" padding). ``attention='se'`` is a ConfigError: the blocks already have SE.

    Raises:
        ConfigError: for invalid options, naming the value.
    """

    def __init__(self, width_coefficient: float = 1.0, **options: Any) -> None:
        spec = NetworkSpec.for_class("efficientnet-b0", options)
        super().__init__(
            list(EFFICIENTNET_B0_BLOCKS),
            spatial_dims=2,
            in_channels=spec.in_channels,
            num_classes=spec.num_classes,
            width_coefficient=width_coefficient,
            depth_coefficient=1.0,
            dropout_rate=0.2,
            image_size=spec.image_size,
            drop_connect_rate=0.2,
        )
        self.attention = spec.attention
        self.attention_stages = spec.attention_stages
        stacks_of_stage = self.stage_stacks()
        for stage in self.attention_stages:
            stacks = stacks_of_stage[stage]
            if spec.attention in ("ga", "la"):
                channels = self._blocks_args[stacks[-1]].output_filters
                self._blocks[stacks[-1]].add_module("attn", added_attention(spec, channels, stage))
                continue
            for i in stacks:
                for block in self._blocks[i]:
                    try:
                        block._depthwise_conv = DepthwiseLocalAttention2d(
                            block._bn1.num_features, spec.window, stride=block.stride, heads=spec.heads
                        )
                    except ValueError as e:
                        raise ConfigError(f"attention='ela' in stack {i}: {e}") from e
                    block._depthwise_conv_padding = nn.Identity()  # attention needs no "same" padding

    def set_swish(self, memory_efficient: bool = True) -> None:
        """MONAI's ``set_swish`` (memory-efficient Swish for training, plain for export) that skips the added
        attention layers in the stacks."""
        self._swish = Act["memswish"]() if memory_efficient else Act["swish"](alpha=1.0)
        for module in self._blocks.modules():
            if isinstance(module, MBConvBlock):
                module.set_swish(memory_efficient)

    def stage_stacks(self) -> dict[int, list[int]]:
        """Stack indices of ``_blocks`` per stage (0–4), by output stride ``2^(stage+1)`` (the stem has stride 2)."""
        stride, stages = 2, {}
        for i, args in enumerate(self._blocks_args):
            stride *= args.stride
            stages.setdefault(stride.bit_length() - 2, []).append(i)
        return stages
