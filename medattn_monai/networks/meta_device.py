"""Networks on the ``meta`` device: parameter counts, shapes and multiply-adds without memory or arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "meta_network"]


def meta_network(cls: type[nn.Module], kwargs: Mapping[str, Any]) -> nn.Module:
    """``cls(**kwargs)`` built on the meta device: every parameter and buffer with its shape, none with values."""
    with torch.device("meta"):
        return cls(**kwargs)


def count_macs(net: nn.Module, x: torch.Tensor) -> tuple[int, torch.Size]:
    """Multiply-adds of one forward pass of ``net`` (in its current mode) on ``x``, and the output's shape.

    ``net`` and ``x`` are on the meta device. Counted as :class:`~torch.utils.flop_counter.FlopCounterMode` counts:
    convolutions, matrix products and attention, as implemented; element-wise operations, norms and pooling are not.
    """
    # outside the device context: its per-op dispatch would make the forward pass ~10x slower
    with FlopCounterMode(display=False) as counter:
        out = net(x)
    return counter.get_total_flops() // 2, out.shape
