"""What every attention block here shares: queries, keys and values from the input, attended, then finished.

    y = finish(x, Attn(q, k, v)),   (q, k, v) = qkv(x)

A block chooses ``qkv`` (its projections), ``Attn`` (global or local, :mod:`.attention_ops`) and ``finish`` (a
residual, an output projection, a pooling). The fast path (``forward``) and the slow path that also returns the
attention weights (``forward_with_weights``, for explanations) differ only in how ``Attn`` is computed.
:class:`LocalWindowAttention` is ``Attn`` over a k×k window with a k×k relative position table per head.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_ops import apply_local_weights, check_window, local_attention, local_attention_weights
from .relative_position import RelativePositionBias2d

__all__ = ["AttentionBlock", "LocalWindowAttention"]


class AttentionBlock(nn.Module):
    """Base of the attention blocks (see the module docstring); subclasses define the five hooks below."""

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys ``B×heads×d×H×W`` and values ``B×heads×dv×H×W`` of the input ``x``."""
        raise NotImplementedError

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The attention output ``B×heads×dv×H×W`` (fast path)."""
        raise NotImplementedError

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The block's output from its input ``x`` and the attention output."""
        raise NotImplementedError

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Explicit attention weights of queries ``q`` and keys ``k`` (slow path); layout set by the subclass."""
        raise NotImplementedError

    def apply_weights(self, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``weights`` from :meth:`attention_weights` applied to ``v``: ``B×heads×dv×H×W``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for ``x`` (shapes: the subclass docstring)."""
        q, k, v = self._qkv(x)
        return self._finish(x, self._attend(q, k, v))

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same output through the slow path, with the attention weights (layout: the subclass docstring)."""
        q, k, v = self._qkv(x)
        weights = self.attention_weights(q, k)
        return self._finish(x, self.apply_weights(weights, v)), weights


class LocalWindowAttention(AttentionBlock):
    """``Attn`` over each position's k×k window (:func:`.attention_ops.local_attention`), for a block that calls
    :meth:`_init_window` once its heads are known.

    Weights (slow path): ``B×heads×HW×k²``; neighbour ``n`` is at offset ``neighbour_offsets(k)[n]``, 0 outside the
    map.
    """

    def _init_window(self, heads: int, window: int, block_size: int) -> None:
        """Check ``window`` (odd, >= 3) and ``block_size`` (the halo computation's query block side, a speed knob),
        and create the ``heads × k × k`` table ``rel_pos``."""
        self.window = check_window(window)
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}.")
        self.block_size = block_size
        self.rel_pos = RelativePositionBias2d(heads, window // 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return local_attention(q, k, v, self.rel_pos.table, self.block_size)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Weights ``B×heads×HW×k²``; neighbour ``n`` is at offset ``neighbour_offsets(k)[n]``, 0 outside the map."""
        return local_attention_weights(q, k, self.rel_pos.table)

    def apply_weights(self, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return apply_local_weights(weights, v)
