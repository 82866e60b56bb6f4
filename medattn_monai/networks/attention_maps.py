"""What explanations need from the networks: attention weights, attention maps, rollout and Grad-CAM layers.

- :func:`collect_attention` runs the network once and returns every attention layer's weights, computed by the
  layer's slow path (explicit softmax) from the same input its fast path saw. Layouts:

  * ``ga`` (:class:`GlobalSelfAttention2d`): ``B×heads×HW×HW``; query ``i`` and key ``j`` are row-major positions
    (``i = y·W + x``) of the layer's ``H×W`` map.
  * ``la`` / ``ela`` (:class:`LocalSelfAttention2d`, :class:`LocalAttentionConv2d`,
    :class:`DepthwiseLocalAttention2d`): ``B×heads×HW×k²``; neighbour ``n`` of query ``(y, x)`` is the position
    ``(y + dy, x + dx)`` with ``(dy, dx) = neighbour_offsets(k)[n]`` (row-major over ``dy, dx ∈ [−k//2, k//2]``);
    neighbours outside the map have weight 0. A strided ``ela`` layer attends at stride 1: its weights are on
    its input's map.
  * ViT (MONAI ``SABlock``, names ``vit.blocks.{i}.attn``): ``B×heads×T×T`` over ``T = 1 + N`` tokens, the class
    token first, then the ``N`` patches row-major.

- :func:`attention_received` aggregates them per layer into the attention each position receives, averaged over
  heads and queries: ``B×H×W`` (a local weight is credited to the neighbour it is paid to).
- :func:`attention_rollout` is Abnar and Zuidema's (2020, arXiv 2005.00928) rollout for the ViT.
- :func:`gradcam_target_layer` names the module Grad-CAM should target.

Call these on a network in eval mode (batch norm in training mode would update its statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks.selfattention import SABlock
from torch import nn

from .blocks import DepthwiseLocalAttention2d, GlobalSelfAttention2d, LocalAttentionConv2d, LocalSelfAttention2d
from .nets import AttentionDenseNet121, AttentionEfficientNetB0, AttentionResNet18, ViTClassifier

__all__ = ["attention_layers", "attention_received", "attention_rollout", "collect_attention", "gradcam_target_layer"]

_SPATIAL = (GlobalSelfAttention2d, LocalSelfAttention2d, LocalAttentionConv2d, DepthwiseLocalAttention2d)


def attention_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The network's attention modules by qualified name (spatial attention layers and ViT self-attention)."""
    return {name: m for name, m in net.named_modules() if isinstance(m, _SPATIAL + (SABlock,))}


def _collect(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, tuple[int, int] | None]]:
    """name -> (weights, (H, W) of the map a spatial layer's weights are over; None for ViT blocks)."""
    found: dict[str, tuple[torch.Tensor, tuple[int, int] | None]] = {}
    handles, saved = [], []

    def spatial_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
            features = inputs[0]
            found[name] = (module.forward_with_weights(features)[1], (features.shape[-2], features.shape[-1]))

        return hook

    for name, module in attention_layers(net).items():
        if isinstance(module, SABlock):
            saved.append((module, module.save_attn))
            module.save_attn = True
        else:
            handles.append(module.register_forward_hook(spatial_hook(name)))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
        for module, flag in saved:
            module.save_attn = flag
    for name, module in attention_layers(net).items():
        if isinstance(module, SABlock):
            found[name] = (module.att_mat, None)
            module.att_mat = torch.Tensor()  # do not keep the batch's weights alive in the network
    return found


def collect_attention(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Attention weights of every attention layer for input ``x`` (layouts: the module docstring).

    Args:
        net: a network from :func:`build_network` (or any module holding these layers), in eval mode.
        x: ``B×C×H×W`` input batch.

    Returns:
        layer name -> weights; empty for a plain CNN.
    """
    return {name: weights for name, (weights, _) in _collect(net, x).items()}


def _received(weights: torch.Tensor, size: tuple[int, int], local: bool) -> torch.Tensor:
    b, _, n_queries, n_keys = weights.shape
    height, width = size
    mean = weights.mean(dim=1)  # B×HW×(HW or k²), averaged over heads
    if not local:
        return mean.mean(dim=1).reshape(b, height, width)
    window = int(round(n_keys**0.5))
    # fold is the adjoint of unfold: it adds each query's k² weights onto the neighbours they are paid to
    per_key = F.fold(mean.transpose(1, 2), (height, width), window, padding=window // 2)
    return per_key.reshape(b, height, width) / n_queries


def attention_received(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """For each spatial attention layer, the attention each position of its map receives: ``B×H×W``.

    ``received[b, y', x'] = mean over heads h and queries i of weight(h, i → (y', x'))``; a map sums to 1 for
    each image. ViT layers are left out (use :func:`attention_rollout`).
    """
    layers = attention_layers(net)
    return {
        name: _received(weights, size, not isinstance(layers[name], GlobalSelfAttention2d))
        for name, (weights, size) in _collect(net, x).items()
        if size is not None
    }


def attention_rollout(net: nn.Module, x: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout of a :class:`ViTClassifier`: the class token's attention to each patch, ``B×h×w``.

    ``A_l`` = head-averaged weights of block ``l``, mixed with the residual stream as
    ``Â_l = residual·I + (1 − residual)·A_l`` (rows renormalised); the rollout is ``Â_L ⋯ Â_1``, and its class-token
    row over the patches, reshaped to the patch grid, is returned (renormalised to sum to 1).

    Raises:
        ValueError: when ``net`` has no ViT blocks.
    """
    mats = [weights for weights, size in _collect(net, x).values() if size is None]  # ViT blocks, in order
    if not mats:
        raise ValueError(f"attention rollout needs a ViT; {type(net).__name__} has no transformer blocks.")
    tokens = mats[0].shape[-1]
    eye = torch.eye(tokens, dtype=mats[0].dtype, device=mats[0].device)
    rollout = eye.expand(mats[0].shape[0], tokens, tokens)
    for att in mats:
        a = residual * eye + (1 - residual) * att.mean(dim=1)
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    cls = rollout[:, 0, 1:]
    side = int(round((tokens - 1) ** 0.5))
    return (cls / cls.sum(dim=-1, keepdim=True)).reshape(-1, side, side)


def gradcam_target_layer(net: nn.Module) -> str:
    """Name of the module whose output Grad-CAM should use: the last convolutional stage, as the classifier sees it.

    ResNet: ``layer4`` (its output, after an attention layer added there). DenseNet: ``class_layers.relu``
    (``norm5`` + ReLU of the last dense block, MONAI's documented Grad-CAM layer). EfficientNet: ``_blocks`` (the
    last MBConv stack's output, after an added attention layer; the 1×1 head follows).

    Raises:
        ValueError: for the ViT (no convolutional stage: use :func:`attention_rollout`) or an unknown network.
    """
    if isinstance(net, AttentionResNet18):
        return "layer4"
    if isinstance(net, AttentionDenseNet121):
        return "class_layers.relu"
    if isinstance(net, AttentionEfficientNetB0):
        return "_blocks"
    if isinstance(net, ViTClassifier):
        raise ValueError("the ViT has no convolutional stage for Grad-CAM; use attention_rollout(net, x).")
    raise ValueError(f"no Grad-CAM layer known for {type(net).__name__}.")
