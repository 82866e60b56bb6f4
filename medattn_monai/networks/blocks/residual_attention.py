"""The residual form shared by the *added* attention layers (``ga`` and ``la``).

    y = x + γ ⊙ W_out · Attn(W_q·n, W_k·n, W_v·n),   n = BatchNorm(x)

with ``W_q, W_k, W_v``: 1×1 convolutions ``C → C_a`` (``C_a = C // attn_ratio``, a BoTNet-style bottleneck,
Srinivas et al. 2021, arXiv 2101.11605), ``W_out``: 1×1 convolution ``C_a → C`` and ``γ`` a learnable per-channel
scale initialised to 0, so that a network extended with these layers starts out computing exactly its plain CNN
(the zero-initialised residual of Goyal et al. 2017 and the non-local block, Wang et al. 2018, arXiv 1711.07971).
Subclasses choose ``Attn`` (global or local); the computation is :class:`.attention_block.AttentionBlock`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_block import AttentionBlock
from .attention_ops import resolve_heads

__all__ = ["ResidualAttention2d"]


class ResidualAttention2d(AttentionBlock):
    """Base of :class:`GlobalSelfAttention2d` and :class:`LocalSelfAttention2d` (see the module docstring).

    Args:
        channels: ``C``, channels of the input and output.
        heads: number of heads; None gives ``max(1, C_a // dim_head)``.
        attn_ratio: channel reduction of the attention, ``C_a = C // attn_ratio``.
        dim_head: head width used by the default ``heads``.

    Raises:
        ValueError: when ``C_a < 1`` or ``heads`` does not divide ``C_a``.
    """

    def __init__(self, channels: int, heads: int | None = None, attn_ratio: int = 4, dim_head: int = 32) -> None:
        super().__init__()
        if attn_ratio < 1 or channels // attn_ratio < 1:
            raise ValueError(f"attn_ratio must be in [1, channels={channels}], got {attn_ratio}.")
        self.channels = channels
        self.inner_dim = channels // attn_ratio
        self.heads = resolve_heads(self.inner_dim, heads, dim_head)
        self.dim_head = self.inner_dim // self.heads
        self.norm = nn.BatchNorm2d(channels)
        self.qkv = nn.Conv2d(channels, 3 * self.inner_dim, kernel_size=1, bias=False)  # q, k and v in one conv
        self.proj = nn.Conv2d(self.inner_dim, channels, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(channels))

    def reset_gamma(self, value: float = 0.0) -> None:
        """Set every channel's residual scale ``γ`` (0: the layer is the identity)."""
        nn.init.constant_(self.gamma, value)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, self.dim_head, height, width)
        return qkv[:, 0], qkv[:, 1], qkv[:, 2]  # each B×heads×d×H×W

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """``x + γ ⊙ W_out · attended``: ``B×C×H×W``."""
        b, _, height, width = x.shape
        out = self.proj(attended.reshape(b, self.inner_dim, height, width))
        return x + self.gamma.view(1, -1, 1, 1) * out
