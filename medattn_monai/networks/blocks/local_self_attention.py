"""Local self-attention layer (``la``): every position attends to its k×k neighbourhood.

Stand-alone self-attention's local operator (SASA, Ramachandran et al. 2019, arXiv 1906.05909) with a learned k×k
relative position bias per head, in the residual form of :mod:`.residual_attention`::

    Attn(q, k, v)_i = Σ_{j ∈ N_k(i)} softmax_j(q_i·k_j / √d + B[y_j − y_i, x_j − x_i]) v_j

``N_k(i)``: the positions of the k×k window centred on ``i`` that lie inside the map (outside positions are masked
out, never zero-padded keys). Computed in halo blocks (HaloNet, Vaswani et al. 2021, arXiv 2103.12731): memory
O(H·W·k²), never an ``HW × HW`` matrix on large maps (:func:`.attention_ops.local_attention`). With
``k >= 2·max(H, W) − 1`` every position sees the whole map and the layer equals :class:`GlobalSelfAttention2d`
with the same weights.
"""

from __future__ import annotations

from .attention_block import LocalWindowAttention
from .residual_attention import ResidualAttention2d

__all__ = ["LocalSelfAttention2d"]


class LocalSelfAttention2d(ResidualAttention2d, LocalWindowAttention):
    """Residual local self-attention: ``x + γ ⊙ W_out · LocalMHSA_k(BatchNorm(x))`` (``γ`` starts at 0).

    Parameters: ``norm`` (BatchNorm2d), ``qkv`` (1×1 conv ``C → 3·C_a``), ``proj`` (1×1 conv ``C_a → C``),
    ``rel_pos.table`` (``heads × k × k``) and ``gamma`` (``C``). Attention weights: ``B×heads×HW×k²``
    (:class:`.attention_block.LocalWindowAttention`).

    Args:
        channels: ``C``, channels of the input and output.
        window: ``k``, odd side of the neighbourhood.
        heads: number of heads; None gives ``max(1, C_a // dim_head)``.
        attn_ratio: ``C_a = C // attn_ratio``.
        dim_head: head width used by the default ``heads``.
        block_size: query block side of the halo computation (a speed knob; results do not depend on it).

    Raises:
        ValueError: for an even or too small ``window`` and bad channel/head sizes.

    Example::

        >>> layer = LocalSelfAttention2d(128, window=7)
        >>> layer(torch.randn(2, 128, 28, 28)).shape
        torch.Size([2, 128, 28, 28])
    """

    def __init__(
        self,
        channels: int,
        window: int = 7,
        heads: int | None = None,
        attn_ratio: int = 4,
        dim_head: int = 32,
        block_size: int = 8,
    ) -> None:
        super().__init__(channels, heads=heads, attn_ratio=attn_ratio, dim_head=dim_head)
        self._init_window(self.heads, window, block_size)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner_dim={self.inner_dim}, heads={self.heads}, window={self.window}"
