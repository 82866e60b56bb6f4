"""Networks: MONAI backbones, their self-attention variants and the baselines they are compared with."""

from __future__ import annotations

from .factory import BACKBONES, VARIANTS, build_network, count_parameters, describe_network

__all__ = ["BACKBONES", "VARIANTS", "build_network", "count_parameters", "describe_network"]
