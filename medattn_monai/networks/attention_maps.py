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
- :func:`attention_rollout` is Abnar and Zuidema's (2020, arXiv 2005.00928) rollout for the ViT
  (:func:`rollout_attention_matrices` the same on given matrices).
- :func:`gradcam_target_layer` names the module Grad-CAM should target.

Each runs the network once in eval mode (batch norm in training mode would update its statistics) and restores
its mode afterwards. ``medattn_monai.explain.attention_map`` turns these maps into input-sized explanation maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks.selfattention import SABlock
from monai.networks.nets import ViT
from torch import nn

from .blocks import DepthwiseLocalAttention2d, GlobalSelfAttention2d, LocalAttentionConv2d, LocalSelfAttention2d
from .nets import AttentionDenseNet121, AttentionEfficientNetB0, AttentionResNet18, ViTClassifier

__all__ = [
    "attention_layers",
    "attention_received",
    "attention_rollout",
    "collect_attention",
    "gradcam_target_layer",
    "rollout_attention_matrices",
]

_HEAD_FUSION = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}
_SPATIAL = (GlobalSelfAttention2d, LocalSelfAttention2d, LocalAttentionConv2d, DepthwiseLocalAttention2d)


def attention_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The network's attention modules by qualified name (spatial attention layers and ViT self-attention)."""
    return {name: m for name, m in net.named_modules() if isinstance(m, _SPATIAL + (SABlock,))}


def _collect(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, tuple[int, int] | None]]:
    """name -> (weights, (H, W) of the map a spatial layer's weights are over; None for ViT blocks).

    One forward pass in eval mode (batch norm in training mode would update its statistics and mix the images of
    the batch); the network's mode and the ViT blocks' ``save_attn`` / ``use_flash_attention`` flags are restored
    afterwards. Fused attention never materialises the weights, so it is off for this pass (it computes the same
    attention).
    """
    found: dict[str, tuple[torch.Tensor, tuple[int, int] | None]] = {}
    handles, saved = [], []

    def spatial_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
            features = inputs[0]
            found[name] = (module.forward_with_weights(features)[1], (features.shape[-2], features.shape[-1]))

        return hook

    layers = attention_layers(net)
    for name, module in layers.items():
        if isinstance(module, SABlock):
            saved.append((module, module.save_attn, module.use_flash_attention))
            module.save_attn, module.use_flash_attention = True, False
        else:
            handles.append(module.register_forward_hook(spatial_hook(name)))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(x)
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
        for module, save, flash in saved:
            module.save_attn, module.use_flash_attention = save, flash
    for name, module in layers.items():
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


def rollout_attention_matrices(attentions: list[torch.Tensor], head_fusion: str = "mean",
                               residual: float = 0.5) -> torch.Tensor:
    """Roll out per-block attention matrices (Abnar and Zuidema 2020).

    ``Â_l = residual·I + (1 − residual)·fuse_heads(A_l)``, rows renormalised (the identity stands for the residual
    connection; with ``residual = 0.5`` and mean fusion this is the paper's ``(A_l + I) / 2``); the rollout is
    ``Â_L ⋯ Â_2 Â_1``, whose row ``i`` says how much each input token flows into output token ``i``.

    Args:
        attentions: one ``B×heads×T×T`` row-stochastic tensor per block, first block first.
        head_fusion: ``"mean"`` (the paper), ``"max"`` or ``"min"`` over heads.
        residual: weight of the identity, in [0, 1).

    Returns:
        ``B×T×T``; each row sums to 1.
    """
    if head_fusion not in _HEAD_FUSION:
        raise ValueError(f"head_fusion={head_fusion!r} is not one of {tuple(_HEAD_FUSION)}")
    if not 0 <= residual < 1:
        raise ValueError(f"residual={residual!r} is not in [0, 1)")
    if not attentions:
        raise ValueError("attentions is empty")
    rollout = None
    for att in attentions:
        fused = _HEAD_FUSION[head_fusion](att.float(), dim=1)  # B×T×T
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        layer = residual * eye + (1 - residual) * fused
        layer = layer / layer.sum(dim=-1, keepdim=True)
        rollout = layer if rollout is None else layer @ rollout
    return rollout


def _find_vit(net: nn.Module) -> ViT:
    for module in net.modules():
        if isinstance(module, ViT):
            return module
    raise ValueError(f"attention rollout needs a ViT; {type(net).__name__} contains no monai.networks.nets.ViT")


def _patch_grid(n_tokens: int, size: tuple[int, int]) -> tuple[int, int]:
    """The h×w patch grid of an H×W input with ``n_tokens`` patches (the grid has the input's aspect ratio)."""
    height, width = int(size[0]), int(size[1])
    h = round((n_tokens * height / width) ** 0.5)
    if h < 1 or n_tokens % h or height % h or width % (n_tokens // h):
        raise ValueError(f"{n_tokens} patch tokens do not tile a {height} x {width} input")
    return h, n_tokens // h


def attention_rollout(
    net: nn.Module, x: torch.Tensor, head_fusion: str = "mean", residual: float = 0.5
) -> torch.Tensor:
    """Attention rollout of a network holding a 2-D MONAI ``ViT`` (:class:`ViTClassifier`, or any module wrapping
    one): the attention flow from each patch, ``B×h×w`` on the patch grid, each map summing to 1.

    With a class token (MONAI's ``classification=True``, as in :class:`ViTClassifier`) the map is the class
    token's row of the rollout over the patch tokens: what the classification head reads. Without one, MONAI's
    ViT has only patch tokens and a head that pools them, so the map is the mean of the rollout's rows.

    Args:
        net: the network.
        x: ``B×C×H×W`` input.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over heads (:func:`rollout_attention_matrices`).
        residual: weight of the residual connection (:func:`rollout_attention_matrices`).

    Raises:
        ValueError: when ``net`` holds no MONAI ``ViT``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be B×C×H×W (2-D ViT), got shape {tuple(x.shape)}")
    vit = _find_vit(net)
    blocks = {id(block.attn) for block in vit.blocks}
    layers = attention_layers(net)
    mats = [w for name, (w, _) in _collect(net, x).items() if id(layers[name]) in blocks]  # in block order
    rollout = rollout_attention_matrices(mats, head_fusion, residual)
    scores = rollout[:, 0, 1:] if hasattr(vit, "cls_token") else rollout.mean(dim=1)
    scores = scores / scores.sum(dim=-1, keepdim=True)
    return scores.reshape(x.shape[0], *_patch_grid(scores.shape[1], x.shape[2:]))


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
