"""Networks: MONAI backbones, their self-attention variants and the baselines they are compared with.

See ``docs/networks.md`` for the formulas, :class:`NetworkSpec` for the fields that name a network and
:func:`build_network` for the one entry point.
"""

from __future__ import annotations

from .attention_maps import (
    attention_layers,
    attention_received,
    attention_rollout,
    collect_attention,
    gradcam_target_layer,
    rollout_attention_matrices,
)
from .factory import build_network, count_parameters, describe_network, network_recipe
from .scripting import export_network
from .spec import BACKBONES, CNN_BACKBONES, VARIANTS, NetworkSpec, variants_of

__all__ = [
    "BACKBONES",
    "CNN_BACKBONES",
    "VARIANTS",
    "NetworkSpec",
    "attention_layers",
    "attention_received",
    "attention_rollout",
    "build_network",
    "collect_attention",
    "count_parameters",
    "describe_network",
    "export_network",
    "gradcam_target_layer",
    "network_recipe",
    "rollout_attention_matrices",
    "variants_of",
]
