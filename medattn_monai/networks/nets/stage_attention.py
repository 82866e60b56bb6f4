"""What the attention variants of every backbone share: stage sizes, SE's reduction and the layers added after a stage.

Variants (docs/networks.md): ``none`` (plain), ``ga`` and ``la`` (a residual attention layer *added after* each chosen
stage), ``ela`` (local attention *replacing* the spatial convolution inside every block of the chosen stages) and
``se`` (channel squeeze-and-excitation inside the blocks of the chosen stages). Stages are numbered 1–4 by the
stride of their output: stage ``s`` outputs stride ``2^(s+1)`` (4, 8, 16, 32), so ``stages=(3, 4)`` are the
stride-16 and stride-32 levels.
"""

from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ..blocks import GlobalSelfAttention2d, LocalSelfAttention2d
from ..spec import NetworkSpec

__all__ = ["added_attention", "se_reduction", "stage_map_size"]


def se_reduction(channels: int) -> int:
    """SE's reduction ratio for ``channels``: 16 (Hu et al. 2018), but keeping at least 16 hidden units.

    At initialisation about half of the hidden ReLU units are inactive for every input (the squeezed features
    have a channel-wise sign), so a 2-unit SE (32 channels / 16: DenseNet's new features) is entirely dead in
    about a quarter of the layers; 16 units make that negligible (2^-16).
    """
    return max(1, min(16, channels // 16))


def stage_map_size(image_size: int, stage: int) -> int:
    """Side of stage ``stage``'s output map for a square ``image_size`` input (stride ``2^(stage+1)``, rounded up)."""
    stride = 2 ** (stage + 1)
    return -(-image_size // stride)


def added_attention(spec: NetworkSpec, channels: int, stage: int) -> nn.Module:
    """The ``ga`` or ``la`` layer added after ``stage`` (``channels`` wide), sized for ``spec.image_size``."""
    try:
        if spec.attention == "ga":
            side = stage_map_size(spec.image_size, stage)
            return GlobalSelfAttention2d(channels, side, heads=spec.heads, attn_ratio=spec.attn_ratio)
        if spec.attention == "la":
            return LocalSelfAttention2d(channels, spec.window, heads=spec.heads, attn_ratio=spec.attn_ratio)
    except ValueError as e:
        raise ConfigError(f"attention={spec.attention!r} after stage {stage} ({channels} channels): {e}") from e
    raise ValueError(f"no added layer for attention={spec.attention!r}")
