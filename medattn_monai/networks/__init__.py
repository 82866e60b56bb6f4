"""Networks: MONAI backbones, their self-attention variants and the baselines they are compared with.

See ``docs/networks.md`` for the formulas, and :func:`build_network` for the one entry point.
"""

from __future__ import annotations

from .factory import BACKBONES, CNN_BACKBONES, VARIANTS, NetworkSpec, build_network, count_parameters, describe_network

__all__ = [
    "BACKBONES",
    "CNN_BACKBONES",
    "VARIANTS",
    "NetworkSpec",
    "build_network",
    "count_parameters",
    "describe_network",
]
