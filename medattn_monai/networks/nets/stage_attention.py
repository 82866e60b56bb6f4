"""Options shared by the attention variants of every backbone, and the layers added after a stage.

Variants (``design.md``): ``none`` (plain), ``ga`` and ``la`` (a residual attention layer *added after* each chosen
stage), ``ela`` (local attention *replacing* the spatial convolution inside every block of the chosen stages) and
``se`` (channel squeeze-and-excitation inside the blocks of the chosen stages). Stages are numbered 1–4 by the
stride of their output: stage ``s`` outputs stride ``2^(s+1)`` (4, 8, 16, 32), so ``stages=(3, 4)`` are the
stride-16 and stride-32 levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ...errors import ConfigError
from ..blocks import GlobalSelfAttention2d, LocalSelfAttention2d

__all__ = ["VARIANTS", "AttentionOptions", "added_attention", "normalize_stages", "se_reduction", "stage_map_size"]

VARIANTS = ("none", "ga", "la", "ela", "se")
ALL_STAGES = (1, 2, 3, 4)


def normalize_stages(stages: Sequence[int] | int | str) -> tuple[int, ...]:
    """Stages as a sorted tuple of distinct ints in 1–4; accepts a list, an int or a string such as ``"3,4"``."""
    if isinstance(stages, str):
        items: list = [p.strip() for p in stages.strip("()[] ").split(",") if p.strip()]
    elif isinstance(stages, int):
        items = [stages]
    else:
        items = list(stages)
    try:
        values = [int(s) for s in items]
    except (TypeError, ValueError):
        raise ConfigError(f"stages={stages!r}: expected stage numbers such as [3, 4]") from None
    if not values or any(v not in ALL_STAGES for v in values) or any(float(s) != v for s, v in zip(items, values)):
        raise ConfigError(f"stages={stages!r}: expected a non-empty subset of {list(ALL_STAGES)}")
    return tuple(sorted(set(values)))


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


@dataclass(frozen=True)
class AttentionOptions:
    """Validated attention options of a backbone (all plain values, so bundles can set them from JSON).

    Args:
        attention: one of ``VARIANTS``.
        stages: stages carrying attention (see the module docstring).
        heads: number of heads of every attention layer; None: ``max(1, width // 32)`` per layer.
        attn_ratio: channel reduction ``C_a = C // attn_ratio`` of the added layers (``ga``, ``la``).
        window: odd side ``k`` of the local window (``la``, ``ela``).
        image_size: the largest input side; sizes ``ga``'s relative position tables.

    Raises:
        ConfigError: naming the offending value.
    """

    attention: str = "none"
    stages: tuple[int, ...] = (3, 4)
    heads: int | None = None
    attn_ratio: int = 4
    window: int = 7
    image_size: int = 224

    def __post_init__(self) -> None:
        if self.attention not in VARIANTS:
            raise ConfigError(f"attention={self.attention!r} is not one of {list(VARIANTS)}")
        object.__setattr__(self, "stages", normalize_stages(self.stages))
        if self.heads is not None and (not isinstance(self.heads, int) or self.heads < 1):
            raise ConfigError(f"heads={self.heads!r}: expected a positive int or null (one head per 32 channels)")
        if not isinstance(self.attn_ratio, int) or self.attn_ratio < 1:
            raise ConfigError(f"attn_ratio={self.attn_ratio!r}: expected a positive int")
        if not isinstance(self.window, int) or self.window < 3 or self.window % 2 == 0:
            raise ConfigError(f"window={self.window!r}: expected an odd int >= 3 (a centred k×k neighbourhood)")
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise ConfigError(f"image_size={self.image_size!r}: expected an int >= 32")

    def applies_to(self, stage: int) -> bool:
        """Whether ``stage`` carries this variant's attention."""
        return self.attention != "none" and stage in self.stages


def added_attention(options: AttentionOptions, channels: int, stage: int) -> nn.Module:
    """The ``ga`` or ``la`` layer added after ``stage`` (``channels`` wide), sized for ``options.image_size``."""
    try:
        if options.attention == "ga":
            side = stage_map_size(options.image_size, stage)
            return GlobalSelfAttention2d(channels, side, heads=options.heads, attn_ratio=options.attn_ratio)
        if options.attention == "la":
            return LocalSelfAttention2d(channels, options.window, heads=options.heads, attn_ratio=options.attn_ratio)
    except ValueError as e:
        raise ConfigError(f"attention={options.attention!r} after stage {stage} ({channels} channels): {e}") from e
    raise ValueError(f"no added layer for attention={options.attention!r}")
