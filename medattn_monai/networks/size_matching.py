"""Size-matched baselines: the width of a plain network whose parameter count matches a target.

A size-matched CNN is the same backbone with only its width knob changed (docs/networks.md): ResNet's
``widen_factor``, DenseNet's ``growth_rate``, EfficientNet's ``width_coefficient``; the ViT baseline changes its
``hidden_size``. The knob is searched on a fixed grid by bisection (parameter counts never decrease with width)
and the grid value with the closest count is kept, within a tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConfigError
from .spec import NetworkSpec

__all__ = ["WIDTH_GRIDS", "WIDTH_KNOBS", "closest_width", "match_width"]

WIDTH_KNOBS = {
    "resnet18": "widen_factor",
    "densenet121": "growth_rate",
    "efficientnet-b0": "width_coefficient",
    "vit": "hidden_size",
}

# ResNet channels are int(64·2^s·widen_factor): steps of 1/64 reach every stem width from 16 to 256
WIDTH_GRIDS: dict[str, Sequence[float | int]] = {
    "resnet18": [n / 64 for n in range(16, 257)],
    "densenet121": list(range(8, 97)),
    "efficientnet-b0": [n / 100 for n in range(25, 301)],
    "vit": list(range(64, 1025, 32)),
}


def closest_width(
    count: Callable[[float | int], int], grid: Sequence[float | int], target: int
) -> tuple[float | int, int]:
    """The grid value whose parameter count is closest to ``target``, and that count.

    Args:
        count: parameters of the network built with a width; non-decreasing along ``grid``.
        grid: candidate widths, increasing.
        target: the parameter count to match.

    Returns:
        ``(width, count(width))``; about log2(len(grid)) + 2 calls to ``count``.
    """
    lo, hi = 0, len(grid) - 1
    while lo < hi:  # first index whose count reaches the target (the last one if none does)
        mid = (lo + hi) // 2
        if count(grid[mid]) >= target:
            hi = mid
        else:
            lo = mid + 1
    candidates = [(grid[i], count(grid[i])) for i in (lo - 1, lo) if 0 <= i < len(grid)]
    return min(candidates, key=lambda wc: abs(wc[1] - target))


def match_width(
    base: NetworkSpec,
    target: int,
    tolerance: float,
    what: str,
    count: Callable[[NetworkSpec, float | int], int],
) -> tuple[float | int, int]:
    """The width of ``base`` (a plain network or the ViT) whose parameter count is closest to ``target``.

    Args:
        base: the network whose width knob (:data:`WIDTH_KNOBS`) changes.
        target: the parameter count to match.
        tolerance: the largest relative difference accepted.
        what: what ``target`` is, for the error message (e.g. "the la variant's size").
        count: parameters of ``base`` built with a width.

    Returns:
        ``(width, count)``.

    Raises:
        ConfigError: when no width on the grid comes within ``tolerance``.
    """
    width, found = closest_width(lambda w: count(base, w), WIDTH_GRIDS[base.backbone], target)
    if abs(found - target) > tolerance * target:
        raise ConfigError(
            f"no {WIDTH_KNOBS[base.backbone]} of {base.backbone} gives {what} ({target:,} parameters) within "
            f"±{tolerance:.0%}: the closest, {width}, gives {found:,}"
        )
    return width, found
