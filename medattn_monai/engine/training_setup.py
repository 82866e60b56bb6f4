"""What a training is set up with: the optimizer, the loss, checks of the hyper-parameters, the seed, and a word on
what the network costs when that is a surprise."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["check_hyper_parameters", "make_loss", "make_optimizer", "network_cost", "seed_everything"]

logger = logging.getLogger("medattn")


def make_optimizer(network: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; biases, normalisation scales, attention γ and position-bias tables are not decayed.

    Decaying γ (initialised to 0) would pull every attention variant back towards its plain CNN. A module may
    name more parameters to exempt with a timm-style ``no_weight_decay()`` returning parameter names.
    """
    exempt: set[str] = set()
    for prefix, module in network.named_modules():
        names = getattr(module, "no_weight_decay", None)
        if callable(names):
            exempt |= {f"{prefix}.{n}" if prefix else n for n in names()}
    decay, no_decay = [], []
    for name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # on CUDA the fused kernel updates every parameter in one launch; on CPU the default measured as fast as foreach
    on_cuda = any(p.is_cuda for p in decay + no_decay)
    fused = {"fused": True} if on_cuda else {}
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate, **fused)


def make_loss(num_classes: int, label_smoothing: float = 0.0, class_weights: str | Sequence[float] | None = None,
              train_labels: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Cross-entropy with optional class weights (a list, or ``"balanced"``: inverse training frequency)."""
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    weight = None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ConfigError(f"class_weights must be null, 'balanced' or a list of {num_classes} numbers")
        counts = torch.bincount(torch.as_tensor(train_labels), minlength=num_classes).float()
        weight = counts.sum() / (num_classes * counts.clamp(min=1))
    elif class_weights is not None:
        if len(class_weights) != num_classes:
            raise ConfigError(f"class_weights has {len(class_weights)} values, expected {num_classes}")
        weight = torch.tensor([float(w) for w in class_weights])
    return torch.nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device),
                                     label_smoothing=label_smoothing)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random`` before the network is built (its initial weights follow the seed).

    Unlike ``monai.utils.set_determinism`` this leaves cuDNN's autotuner on: CPU runs are exactly reproducible,
    GPU runs fast (see ``docs/performance.md``).
    """
    import random

    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def check_hyper_parameters(epochs: int, batch_size: int, learning_rate: float, warmup_epochs: int) -> None:
    """Reject values no training can use, naming the key."""
    for key, value, ok in (
        ("epochs", epochs, isinstance(epochs, int) and epochs >= 1),
        ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1),
        ("learning_rate", learning_rate, isinstance(learning_rate, (int, float)) and learning_rate > 0),
        ("warmup_epochs", warmup_epochs, isinstance(warmup_epochs, int) and 0 <= warmup_epochs <= epochs),
    ):
        if not ok:
            raise ConfigError(f"bad value for {key}: {value!r}")


def network_cost(network_args: Mapping[str, Any]) -> None:
    """Say at the start why a ViT will train several times slower than the CNN it is sized to (its token count);
    nothing for a CNN. See :func:`~medattn_monai.networks.summary.network_cost_note`."""
    from ..networks.summary import network_cost_note

    note = network_cost_note(**network_args)
    if note:
        logger.info("%s", note)
