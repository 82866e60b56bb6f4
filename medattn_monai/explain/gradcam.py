"""Grad-CAM for any 2-D classification network, with Captum's ``LayerGradCam``.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization", ICCV 2017.
For a layer with activations ``A`` (B x C x h x w) and the target class score ``y_c``, the map is
``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d y_c / d A_k``; it is then upsampled
bilinearly to the input size (``align_corners=False``) and min-max normalised per image to [0, 1]. This is the
quantity ``monai.visualize.GradCAM`` computes too, except that MONAI's default post-processing maps the maximum
to 0 and the minimum to 1 (``default_normalizer``); ours maps the maximum to 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["grad_cam", "normalize_maps", "upsample_maps"]


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of a batch to [0, 1]; a constant map becomes all zeros.

    Args:
        maps: B x ... maps.

    Returns:
        Maps of the same shape, each with minimum 0 and maximum 1 (or all 0).
    """
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    # a constant map has no spatial information: zeros, never a division by ~0 that would amplify noise
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def upsample_maps(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinear upsampling (``align_corners=False``, as ``monai.visualize.default_upsampler``) of B x h x w maps.

    Args:
        maps: B x h x w maps.
        size: the target (H, W).

    Returns:
        B x H x W maps.
    """
    return F.interpolate(maps[:, None], size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[:, 0]


def _submodule(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError as exc:
        top = [name for name, _ in model.named_children()]
        raise ConfigError(f"layer {layer!r} is not a submodule of {type(model).__name__}; "
                          f"its children are {top}") from exc


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    target: int | torch.Tensor | None = None,
    *,
    relu: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """Grad-CAM maps of a batch, upsampled to the input size.

    The model runs in eval mode (its training flag is restored afterwards), so batch statistics do not mix
    images of the batch and each map depends on its own image only.

    Args:
        model: a 2-D classifier mapping ``B x C x H x W`` to logits ``B x num_classes``.
        x: input batch, B x C x H x W.
        layer: name of the layer to explain, as in ``model.named_modules()`` (e.g. ``"layer4"`` for a ResNet).
        target: class to explain: an int for every image, a length-B tensor of classes, or None for each image's
            predicted class (argmax of the logits).
        relu: keep only positive evidence (the Grad-CAM definition); False gives the signed map.
        normalize: min-max normalise each map to [0, 1] after upsampling.

    Returns:
        B x H x W maps (detached, on ``x``'s device).

    Raises:
        ConfigError: ``layer`` is not a submodule of ``model``.
        ValueError: ``x`` is not a 4-D batch.
    """
    from captum.attr import LayerGradCam

    if x.ndim != 4:
        raise ValueError(f"x must be B x C x H x W, got shape {tuple(x.shape)}")
    module = _submodule(model, layer)
    was_training = model.training
    model.eval()
    try:
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(dim=1)
        cam = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=relu)  # B x 1 x h x w
    finally:
        model.train(was_training)
    maps = upsample_maps(cam[:, 0].detach(), x.shape[2:])
    return normalize_maps(maps) if normalize else maps
