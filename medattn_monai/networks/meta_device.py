"""Networks on the ``meta`` device: parameter counts, shapes and multiply-adds without memory or arithmetic.

A meta tensor has a shape and no values, so whatever only computes values can be skipped there; and on the meta
device such operations are not free: most run as Python decompositions (a DenseNet-121 has 121 batch norms and 120
weight initialisations, each ~1–4 ms that way). So:

- :func:`meta_network` builds a network on the meta device without running its weight initialisers
  (``torch.nn.init`` and the in-place random/fill methods they use): the same parameters and buffers, with the
  same shapes.
- :func:`count_macs` counts multiply-adds with :class:`torch.utils.flop_counter.FlopCounterMode` over one meta
  forward pass, in which normalisations (which that counter does not count) pass their input on instead of
  computing an output of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "meta_network"]

# the in-place methods weight initialisers call: they change values only, never a shape
_VALUE_METHODS = frozenset(
    getattr(torch.Tensor, name)
    for name in ("normal_", "uniform_", "fill_", "zero_", "erfinv_", "mul_", "add_", "clamp_", "copy_", "random_")
)
# normalisations keep their input's shape; FlopCounterMode counts none of them
_NORMS = frozenset({F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm})


def _on_meta(args: tuple) -> bool:
    return bool(args) and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta"


class _SkipInitialisers(TorchFunctionMode):
    """Returns a meta tensor untouched where a weight initialiser would fill it."""

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        initialiser = getattr(func, "__module__", None) == "torch.nn.init" and name.endswith("_")
        if (initialiser or func in _VALUE_METHODS) and _on_meta(args):
            return args[0]
        return func(*args, **(kwargs or {}))


class _ShapeOnlyNorms(TorchFunctionMode):
    """Gives a normalisation of a meta tensor as its input: the output has the input's shape, and no values."""

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _NORMS and _on_meta(args):
            return args[0]
        return func(*args, **(kwargs or {}))


def meta_network(cls: type[nn.Module], kwargs: Mapping[str, Any]) -> nn.Module:
    """``cls(**kwargs)`` built on the meta device: every parameter and buffer with its shape, none with values."""
    with torch.device("meta"), _SkipInitialisers():
        return cls(**kwargs)


def count_macs(net: nn.Module, x: torch.Tensor) -> tuple[int, torch.Size]:
    """Multiply-adds of one eval-mode forward pass of ``net`` on ``x``, and the output's shape (``net``'s mode is
    restored).

    ``net`` and ``x`` are on the meta device. Counted as :class:`~torch.utils.flop_counter.FlopCounterMode` counts:
    convolutions, matrix products and attention, as implemented; element-wise operations, norms and pooling are not.
    """
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter, _ShapeOnlyNorms():
            out = net(x)
    finally:
        net.train(was_training)
    return counter.get_total_flops() // 2, out.shape
