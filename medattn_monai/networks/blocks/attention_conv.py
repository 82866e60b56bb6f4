"""Local self-attention in place of a spatial convolution (``ela`` in ResNet and DenseNet blocks).

Stand-alone self-attention (SASA, Ramachandran et al. 2019, arXiv 1906.05909) replaces a k×k convolution
``C_in → C_out`` by local multi-head attention at full width::

    y = W_out · LocalMHSA_k(W_q·x, W_k·x, W_v·x)

with ``W_q, W_k, W_v``: 1×1 convolutions ``C_in → C_out`` and ``W_out``: 1×1 ``C_out → C_out``. No norm and no
residual of its own: it sits where the convolution sat, between the block's norms. It has fewer parameters than
a 3×3 convolution (``3·C_in·C_out + C_out²`` against ``9·C_in·C_out``).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_block import LocalWindowAttention
from .attention_ops import resolve_heads

__all__ = ["LocalAttentionConv2d"]


class LocalAttentionConv2d(LocalWindowAttention):
    """A drop-in, stride-1 replacement of a k×k convolution by local self-attention (see the module docstring):
    ``B×C_in×H×W`` to ``B×C_out×H×W``.

    Parameters: ``qkv`` (1×1 conv ``C_in → 3·C_out``), ``proj`` (1×1 conv ``C_out → C_out``) and
    ``rel_pos.table`` (``heads × k × k``). Attention weights: ``B×heads×HW×k²``
    (:class:`.attention_block.LocalWindowAttention`).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``, also the attention width.
        window: ``k``, odd side of the neighbourhood.
        heads: number of heads; None gives ``max(1, C_out // dim_head)``.
        dim_head: head width used by the default ``heads``.
        block_size: query block side of the halo computation (a speed knob).

    Raises:
        ValueError: for an even or too small ``window`` or heads that do not divide ``C_out``.

    Example::

        >>> conv2 = LocalAttentionConv2d(256, 256, window=7)
        >>> conv2(torch.randn(2, 256, 14, 14)).shape
        torch.Size([2, 256, 14, 14])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        window: int = 7,
        heads: int | None = None,
        dim_head: int = 32,
        block_size: int = 8,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be >= 1, got in_channels={in_channels}, out_channels={out_channels}.")
        self.out_channels = out_channels
        self.heads = resolve_heads(out_channels, heads, dim_head)
        self.dim_head = out_channels // self.heads
        self.qkv = nn.Conv2d(in_channels, 3 * out_channels, kernel_size=1, bias=False)
        self.proj = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)
        self._init_window(self.heads, window, block_size)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, height, width = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.heads, self.dim_head, height, width)
        return qkv[:, 0], qkv[:, 1], qkv[:, 2]

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        b, height, width = attended.shape[0], attended.shape[-2], attended.shape[-1]
        return self.proj(attended.reshape(b, self.out_channels, height, width))

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, heads={self.heads}, window={self.window}"
