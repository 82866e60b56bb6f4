"""Global self-attention layer (``ga``): every position attends to all H·W positions of the map.

Multi-head self-attention over the flattened feature map as in the non-local block (Wang et al. 2018,
arXiv 1711.07971) and BoTNet's MHSA (Srinivas et al. 2021, arXiv 2101.11605), with a learned 2-D relative
position bias per head (:mod:`.relative_position`), in the residual form of :mod:`.residual_attention`::

    Attn(q, k, v)_i = Σ_j softmax_j(q_i·k_j / √d + B[y_j − y_i, x_j − x_i]) v_j
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .attention_ops import apply_global_weights, global_attention, global_attention_weights
from .relative_position import RelativePositionBias2d
from .residual_attention import ResidualAttention2d

__all__ = ["GlobalSelfAttention2d"]


class GlobalSelfAttention2d(ResidualAttention2d):
    """Residual global self-attention: ``x + γ ⊙ W_out · MHSA(BatchNorm(x))`` (``γ`` starts at 0).

    Computed with ``scaled_dot_product_attention`` and the relative bias as a float mask (fused kernels on GPU).
    Parameters: ``norm`` (BatchNorm2d), ``qkv`` (1×1 conv ``C → 3·C_a``), ``proj`` (1×1 conv ``C_a → C``),
    ``rel_pos.table`` (``heads × (2·Hmax − 1) × (2·Wmax − 1)``) and ``gamma`` (``C``).

    Args:
        channels: ``C``, channels of the input and output.
        max_size: largest feature map ``(Hmax, Wmax)`` (an int means square) the bias table covers; smaller maps
            use its centred sub-table.
        heads: number of heads; None gives ``max(1, C_a // dim_head)``.
        attn_ratio: ``C_a = C // attn_ratio``.
        dim_head: head width used by the default ``heads``.

    Raises:
        ValueError: for bad sizes at construction; in ``forward``, for a map larger than ``max_size``.

    Example::

        >>> layer = GlobalSelfAttention2d(256, max_size=14)
        >>> layer(torch.randn(2, 256, 14, 14)).shape
        torch.Size([2, 256, 14, 14])
    """

    def __init__(
        self,
        channels: int,
        max_size: Sequence[int] | int = 14,
        heads: int | None = None,
        attn_ratio: int = 4,
        dim_head: int = 32,
    ) -> None:
        super().__init__(channels, heads=heads, attn_ratio=attn_ratio, dim_head=dim_head)
        size = (max_size, max_size) if isinstance(max_size, int) else tuple(max_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"max_size must be one or two positive ints, got {max_size}.")
        self.max_size = (int(size[0]), int(size[1]))
        self.rel_pos = RelativePositionBias2d(self.heads, (size[0] - 1, size[1] - 1))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return global_attention(q, k, v, self.rel_pos.table)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Weights ``B×heads×HW×HW``: row ``i`` (query), column ``j`` (key), both row-major positions ``y·W + x``."""
        return global_attention_weights(q, k, self.rel_pos.table)

    def apply_weights(self, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``weights`` applied to ``v``: ``B×heads×dv×H×W``."""
        return apply_global_weights(weights, v)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner_dim={self.inner_dim}, heads={self.heads}, max_size={self.max_size}"
