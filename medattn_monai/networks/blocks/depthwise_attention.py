"""Space-only local self-attention in place of a depthwise convolution (``ela`` in EfficientNet's MBConv blocks).

A depthwise convolution mixes space within each channel; its attention counterpart mixes space only too: the
values are the input itself (no value or output projection, the block's 1×1 projection follows), and only the
attention weights are learned, from queries and keys projected to ``C_qk = C / qk_ratio`` channels::

    y = pool_s( LocalMHSA_k(W_q·x, W_k·x, x) )

Head ``h`` uses its own ``C_qk / heads`` query/key channels and mixes its own ``C / heads`` value channels. When
the replaced convolution is strided (``s = 2``), attention runs at stride 1 and ``pool_2`` is a 2×2 average pool
(``ceil_mode``, so the output size equals the strided "same" convolution's ``ceil(H / 2)``); otherwise ``pool_1``
is the identity. References: SASA (Ramachandran et al. 2019, arXiv 1906.05909), EfficientNet (Tan and Le 2019,
arXiv 1905.11946).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention_block import LocalWindowAttention
from .attention_ops import resolve_heads

__all__ = ["DepthwiseLocalAttention2d"]


class DepthwiseLocalAttention2d(LocalWindowAttention):
    """A drop-in replacement of a (possibly strided) depthwise k×k convolution (see the module docstring):
    ``B×C×H×W`` to ``B×C×H×W`` (stride 1) or ``B×C×ceil(H/2)×ceil(W/2)`` (stride 2).

    Parameters: ``qk`` (1×1 conv ``C → 2·C_qk``) and ``rel_pos.table`` (``heads × k × k``). Attention weights: the
    stride-1 weights ``B×heads×HW×k²`` (:class:`.attention_block.LocalWindowAttention`).

    Args:
        channels: ``C``, channels of the input and output.
        window: ``k``, odd side of the neighbourhood.
        stride: 1 or 2, the stride of the replaced convolution.
        heads: number of heads; None gives ``max(1, C_qk // dim_head)`` shrunk until it divides ``C`` and
            ``C_qk``. A requested number must divide ``C``.
        qk_ratio: ``C_qk`` is ``C // qk_ratio`` rounded up to a multiple of ``heads``.
        dim_head: query/key head width used by the default ``heads``.
        block_size: query block side of the halo computation (a speed knob).

    Raises:
        ValueError: for an even or too small ``window``, a stride other than 1 or 2, or heads not dividing ``C``.

    Example::

        >>> dw = DepthwiseLocalAttention2d(480, window=7, stride=2)
        >>> dw(torch.randn(2, 480, 14, 14)).shape
        torch.Size([2, 480, 7, 7])
    """

    def __init__(
        self,
        channels: int,
        window: int = 7,
        stride: int = 1,
        heads: int | None = None,
        qk_ratio: int = 16,
        dim_head: int = 32,
        block_size: int = 8,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}.")
        if qk_ratio < 1:
            raise ValueError(f"qk_ratio must be >= 1, got {qk_ratio}.")
        self.channels = channels
        self.stride = stride
        qk_dim = max(1, channels // qk_ratio)
        if heads is None:
            self.heads = resolve_heads(qk_dim, None, dim_head, divides=channels)
        else:
            self.heads = resolve_heads(channels, heads, dim_head)
        self.qk_dim = -(-qk_dim // self.heads) * self.heads
        self.qk = nn.Conv2d(channels, 2 * self.qk_dim, kernel_size=1, bias=False)
        self._init_window(self.heads, window, block_size)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, c, height, width = x.shape
        qk = self.qk(x).reshape(b, 2, self.heads, self.qk_dim // self.heads, height, width)
        return qk[:, 0], qk[:, 1], x.reshape(b, self.heads, c // self.heads, height, width)

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        b, height, width = attended.shape[0], attended.shape[-2], attended.shape[-1]
        out = attended.reshape(b, self.channels, height, width)
        if self.stride == 2:
            out = F.avg_pool2d(out, kernel_size=2, stride=2, ceil_mode=True)
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, qk_dim={self.qk_dim}, heads={self.heads}, window={self.window}, "
            f"stride={self.stride}"
        )
