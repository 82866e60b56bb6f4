"""Attention maps as explanation maps: where a network routes information, input-sized like Grad-CAM.

The networks give the raw material (``medattn_monai.networks.attention_maps``); this module turns it into one
``B×H×W`` map per image:

* spatial attention (``ga``, ``la``, ``ela``): per attention layer, the attention each position of the layer's map
  receives, averaged over heads and queries (:func:`~medattn_monai.networks.attention_received`; a local weight is
  credited to the neighbour it is paid to). Each layer's map sums to 1 on its own grid; multiplied by the grid's
  size it becomes *relative* attention (1 = what a uniform attention would give), which is comparable across
  grids. The network's map is the mean of its layers' relative maps, each upsampled bilinearly to the input
  size, or the map of one named layer.
* ViT: attention rollout (:func:`~medattn_monai.networks.attention_rollout`, Abnar and Zuidema 2020) on the patch
  grid, made relative and upsampled the same way.

``se`` (channel attention) weighs channels, not positions: it has no spatial map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..networks.attention_maps import attention_layers, attention_received, attention_rollout
from .gradcam import normalize_maps, upsample_maps

__all__ = ["attention_map", "has_attention_map", "is_vit"]


def is_vit(net: nn.Module) -> bool:
    """Whether ``net`` holds a MONAI ViT (its attention map is the rollout)."""
    from monai.networks.nets import ViT

    return any(isinstance(m, ViT) for m in net.modules())


def has_attention_map(net: nn.Module) -> bool:
    """Whether :func:`attention_map` has something to show for ``net`` (spatial attention layers or a ViT)."""
    return bool(attention_layers(net))


def attention_map(model: nn.Module, x: torch.Tensor, *, layer: str | Sequence[str] | None = None, upsample: bool = True,
                  normalize: bool = True) -> torch.Tensor:
    """The attention map of each image: attention received (spatial attention) or attention rollout (ViT).

    The model runs once in eval mode (its mode is restored afterwards).

    Args:
        model: a network from :func:`~medattn_monai.networks.build_network` with attention layers, a ViT, or any
            module holding such layers.
        x: ``B×C×H×W`` input batch.
        layer: one attention layer's name (see :func:`~medattn_monai.networks.attention_layers`), or a list of
            names (their mean); None: the mean over all spatial attention layers. Ignored for a ViT (rollout
            spans all blocks). :func:`~medattn_monai.explain.map_layers.choose_map_layers` picks the layers
            whose grids are fine enough.
        upsample: upsample to the input size (bilinear, as Grad-CAM). Without upsampling, ``layer`` (or a ViT)
            is needed: maps of several layers live on different grids.
        normalize: min-max normalise each map to [0, 1]; False leaves relative attention (mean ≈ 1).

    Returns:
        ``B×H×W`` maps (``B×h×w`` on the layer's or patch grid when not upsampled), detached.

    Raises:
        ValueError: the network has no attention layers (a plain CNN, ``se``).
        ConfigError: ``layer`` is not one of its attention layers.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be B×C×H×W, got shape {tuple(x.shape)}")
    if not has_attention_map(model):
        raise ValueError(f"{type(model).__name__} has no spatial attention layers and no ViT: no attention map")
    if is_vit(model):
        rollout = attention_rollout(model, x)
        maps = [rollout * rollout[0].numel()]
    else:
        received = attention_received(model, x)
        if layer is not None:
            names = [layer] if isinstance(layer, str) else list(layer)
            unknown = [name for name in names if name not in received]
            if unknown or not names:
                raise ConfigError(f"layer {layer!r} is not an attention layer of {type(model).__name__}; "
                                  f"its attention layers are {sorted(received)}")
            received = {name: received[name] for name in names}
        maps = [m * m[0].numel() for m in received.values()]
    if upsample:
        result = torch.stack([upsample_maps(m.float(), x.shape[2:]) for m in maps]).mean(dim=0)
    elif len(maps) == 1:
        result = maps[0].float()
    else:
        raise ValueError("maps of several attention layers can only be combined upsampled: pass one layer or upsample")
    return normalize_maps(result) if normalize else result
