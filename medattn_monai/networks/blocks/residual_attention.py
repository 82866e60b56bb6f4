"""The residual form shared by the *added* attention layers (``ga`` and ``la``).

    y = x + γ ⊙ W_out · Attn(W_q·n, W_k·n, W_v·n),   n = BatchNorm(x)

with ``W_q, W_k, W_v``: 1×1 convolutions ``C → C_a`` (``C_a = C // attn_ratio``, a BoTNet-style bottleneck,
Srinivas et al. 2021, arXiv 2101.11605), ``W_out``: 1×1 convolution ``C_a → C`` and ``γ`` a learnable per-channel
scale initialised to 0, so that a network extended with these layers starts out computing exactly its plain CNN
(the zero-initialised residual of Goyal et al. 2017 and the non-local block, Wang et al. 2018, arXiv 1711.07971).
Subclasses choose ``Attn`` (global or local).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_ops import resolve_heads

__all__ = ["ResidualAttention2d"]


class ResidualAttention2d(nn.Module):
    """Base of :class:`GlobalSelfAttention2d` and :class:`LocalSelfAttention2d` (see the module docstring).

    Args:
        channels: ``C``, channels of the input and output.
        num_heads: number of heads; None gives ``max(1, C_a // dim_head)``.
        attn_ratio: channel reduction of the attention, ``C_a = C // attn_ratio``.
        dim_head: head width used by the default ``num_heads``.

    Raises:
        ValueError: when ``C_a < 1`` or ``num_heads`` does not divide ``C_a``.
    """

    def __init__(self, channels: int, num_heads: int | None = None, attn_ratio: int = 4, dim_head: int = 32) -> None:
        super().__init__()
        if attn_ratio < 1 or channels // attn_ratio < 1:
            raise ValueError(f"attn_ratio must be in [1, channels={channels}], got {attn_ratio}.")
        self.channels = channels
        self.inner_dim = channels // attn_ratio
        self.num_heads = resolve_heads(self.inner_dim, num_heads, dim_head)
        self.dim_head = self.inner_dim // self.num_heads
        self.norm = nn.BatchNorm2d(channels)
        self.qkv = nn.Conv2d(channels, 3 * self.inner_dim, kernel_size=1, bias=False)  # q, k and v in one conv
        self.proj = nn.Conv2d(self.inner_dim, channels, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(channels))

    def reset_gamma(self, value: float = 0.0) -> None:
        """Set every channel's residual scale ``γ`` (0: the layer is the identity)."""
        nn.init.constant_(self.gamma, value)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, self.dim_head, height, width)
        return qkv[:, 0], qkv[:, 1], qkv[:, 2]  # each B×heads×d×H×W

    def _residual(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        out = self.proj(attended.reshape(b, self.inner_dim, height, width))
        return x + self.gamma.view(1, -1, 1, 1) * out

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Explicit attention weights of queries ``q`` and keys ``k`` (slow path); layout set by the subclass."""
        raise NotImplementedError

    def apply_weights(self, weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``weights`` from :meth:`attention_weights` applied to ``v``: ``B×heads×d×H×W``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``B×C×H×W``.

        Returns:
            ``B×C×H×W``.
        """
        q, k, v = self._qkv(x)
        return self._residual(x, self._attend(q, k, v))

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same output through the slow path, with the attention weights (layout: the subclass docstring)."""
        q, k, v = self._qkv(x)
        weights = self.attention_weights(q, k)
        return self._residual(x, self.apply_weights(weights, v)), weights
