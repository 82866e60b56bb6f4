"""Learned 2-D relative position bias, one table per head.

The bias added to the attention logit of a query at ``(y, x)`` and a key at ``(y', x')`` is
``table[head, y' - y + Dy, x' - x + Dx]``, a table of shape ``heads × (2·Dy + 1) × (2·Dx + 1)`` over the offsets
``|y' - y| <= Dy``, ``|x' - x| <= Dx``. This is the relative position term of Shaw et al. (2018, arXiv 1803.02155)
in the 2-D table form used by Swin Transformer (Liu et al. 2021, arXiv 2103.14030), BoTNet (Srinivas et al. 2021,
arXiv 2101.11605) and HaloNet (Vaswani et al. 2021, arXiv 2103.12731).

- Global attention over maps up to ``Hmax × Wmax`` uses ``Dy = Hmax - 1``, ``Dx = Wmax - 1``; a smaller map reads the
  centred sub-table of its own offsets.
- Local attention with a ``k × k`` window uses ``Dy = Dx = k // 2``: the table is ``k × k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["RelativePositionBias2d", "gather_relative_bias", "pairwise_offsets"]


def gather_relative_bias(table: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Look up the bias of integer offsets ``(dy, dx)`` (key minus query) in ``table``.

    Args:
        table: ``heads × (2·Dy + 1) × (2·Dx + 1)``.
        dy: integer offsets along H, any shape ``S``. Offsets beyond ``±Dy`` are clamped: callers mask them.
        dx: integer offsets along W, same shape as ``dy``.

    Returns:
        ``heads × S``, differentiable with respect to ``table``.
    """
    heads, ty, tx = table.shape
    half_y = (ty - 1) // 2
    half_x = (tx - 1) // 2
    index = (dy.clamp(-half_y, half_y) + half_y) * tx + (dx.clamp(-half_x, half_x) + half_x)
    # index_select has a cheap (index_add) backward, unlike advanced indexing with two index tensors
    out = table.reshape(heads, ty * tx).index_select(1, index.reshape(-1))
    return out.reshape([heads] + list(dy.shape))


def pairwise_offsets(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets ``(dy, dx)`` of every key from every query of an ``height × width`` map, row-major.

    Returns:
        two ``HW × HW`` integer tensors; entry ``[i, j]`` is key ``j``'s position minus query ``i``'s.
    """
    ys = torch.arange(height, device=device).repeat_interleave(width)
    xs = torch.arange(width, device=device).repeat(height)
    return ys[None, :] - ys[:, None], xs[None, :] - xs[:, None]


class RelativePositionBias2d(nn.Module):
    """A learned relative position bias table per head (see the module docstring for the formula).

    Args:
        heads: number of attention heads, one table each.
        max_offset: largest offset ``(Dy, Dx)`` with its own entry (an int means ``Dy = Dx``). The table has shape
            ``heads × (2·Dy + 1) × (2·Dx + 1)``.

    Raises:
        ValueError: when ``heads`` < 1 or an offset is negative.
    """

    def __init__(self, heads: int, max_offset: Sequence[int] | int) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}.")
        offsets = (max_offset, max_offset) if isinstance(max_offset, int) else tuple(max_offset)
        if len(offsets) != 2 or min(offsets) < 0:
            raise ValueError(f"max_offset must be one or two non-negative ints, got {max_offset}.")
        self.max_offset = (int(offsets[0]), int(offsets[1]))
        self.table = nn.Parameter(torch.empty(heads, 2 * offsets[0] + 1, 2 * offsets[1] + 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small random biases (Swin's initialisation), so every head starts slightly position-aware."""
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """Bias of offsets ``dy, dx`` (shape ``S``) as ``heads × S``; see :func:`gather_relative_bias`."""
        return gather_relative_bias(self.table, dy, dx)

    def extra_repr(self) -> str:
        return f"heads={self.table.shape[0]}, max_offset={self.max_offset}"
