"""Scripting a network for deployment: TorchScript where possible, else ``torch.export``.

(The Model Zoo bundle export, which calls this, is the ``medattn_monai.export`` package.)
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

__all__ = ["export_network"]

logger = logging.getLogger(__name__)


def export_network(
    net: nn.Module, example: torch.Tensor, method: str = "auto"
) -> torch.jit.ScriptModule | torch.export.ExportedProgram:
    """Export an eval-mode copy of ``net`` (``net`` itself is left untouched).

    EfficientNet's memory-efficient Swish (a custom autograd function) is switched to the plain one first, as
    MONAI requires for scripting.

    Args:
        net: the network.
        example: an input batch; traces ``torch.export`` (whose program is specialised to its shape) and is
            otherwise unused.
        method: ``auto`` (TorchScript, falling back to ``torch.export`` when scripting fails), ``torchscript`` or
            ``export``.

    Returns:
        a ``torch.jit.ScriptModule`` (call it; save with ``torch.jit.save``) or a
        ``torch.export.ExportedProgram`` (call ``.module()``; save with ``torch.export.save``).

    Raises:
        ValueError: for an unknown ``method``; scripting or export errors when the chosen method fails.
    """
    if method not in ("auto", "torchscript", "export"):
        raise ValueError(f"method must be 'auto', 'torchscript' or 'export', got {method!r}.")
    model = copy.deepcopy(net).eval()
    if hasattr(model, "set_swish"):
        model.set_swish(memory_efficient=False)
    if method in ("auto", "torchscript"):
        try:
            return torch.jit.script(model)
        except Exception as e:  # any scripting failure falls back to torch.export
            if method == "torchscript":
                raise
            logger.info("TorchScript failed (%s); using torch.export", e)
    return torch.export.export(model, (example,))
