"""The epoch's mean training loss as an Ignite metric (``train_loss``)."""

from __future__ import annotations

from typing import Any

from ignite.metrics import Average

__all__ = ["MeanLoss"]


def _loss(output: Any) -> Any:
    return output["loss"].detach() if isinstance(output, dict) else output


class MeanLoss(Average):
    """Mean of the per-iteration loss over an epoch (summed across DDP ranks before averaging)."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(output_transform=_loss, device=device)
