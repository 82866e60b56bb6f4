"""Attention blocks on 2-D feature maps: the operators the network variants add or substitute."""

from __future__ import annotations

from .attention_block import AttentionBlock, LocalWindowAttention
from .attention_conv import LocalAttentionConv2d
from .attention_ops import (
    apply_global_weights,
    apply_local_weights,
    global_attention,
    global_attention_weights,
    local_attention,
    local_attention_weights,
    neighbour_offsets,
)
from .depthwise_attention import DepthwiseLocalAttention2d
from .global_self_attention import GlobalSelfAttention2d
from .local_self_attention import LocalSelfAttention2d
from .relative_position import RelativePositionBias2d
from .residual_attention import ResidualAttention2d

__all__ = [
    "AttentionBlock",
    "DepthwiseLocalAttention2d",
    "GlobalSelfAttention2d",
    "LocalAttentionConv2d",
    "LocalSelfAttention2d",
    "LocalWindowAttention",
    "RelativePositionBias2d",
    "ResidualAttention2d",
    "apply_global_weights",
    "apply_local_weights",
    "global_attention",
    "global_attention_weights",
    "local_attention",
    "local_attention_weights",
    "neighbour_offsets",
]
