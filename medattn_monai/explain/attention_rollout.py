"""Attention rollout for MONAI's ViT.

Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020. Each block's attention (heads fused,
mean by default) gets the identity added for the residual connection and its rows renormalised,
``A_l = (W_l + I) / rowsum``; the rollout is the product ``R = A_L ... A_2 A_1``, whose row i says how much each
input token flows into output token i.

Token layout of ``monai.networks.nets.ViT``: the patch tokens in row-major order of the patch grid, preceded by a
class token only when it was built with ``classification=True``. With a class token, the map is the class
token's row of R over the patch tokens (what the classification head reads). Without one the network's head
pools the tokens, so the map is the mean of R's rows: the attention flow each patch gives to the average output
token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import ViT
from torch import nn

from .gradcam import normalize_maps, upsample_maps

__all__ = ["attention_rollout", "rollout_attention_matrices"]

_HEAD_FUSION = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}
HEAD_FUSIONS = tuple(_HEAD_FUSION)


def rollout_attention_matrices(attentions: Sequence[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Roll out per-layer attention matrices.

    Args:
        attentions: one B x heads x T x T row-stochastic attention tensor per layer, first layer first.
        head_fusion: how heads are fused: ``"mean"`` (Abnar & Zuidema), ``"max"`` or ``"min"``.

    Returns:
        B x T x T rollout; each row sums to 1.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion={head_fusion!r} is not one of {HEAD_FUSIONS}")
    if not attentions:
        raise ValueError("attentions is empty")
    rollout = None
    for att in attentions:
        fused = _HEAD_FUSION[head_fusion](att.float(), dim=1)  # B x T x T
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        layer = fused + eye  # the residual connection carries each token to itself
        layer = layer / layer.sum(dim=-1, keepdim=True)
        rollout = layer if rollout is None else layer @ rollout
    return rollout


def _find_vit(model: nn.Module) -> ViT:
    for module in model.modules():
        if isinstance(module, ViT):
            return module
    raise ValueError(f"{type(model).__name__} contains no monai.networks.nets.ViT")


def _patch_grid(n_tokens: int, size: Sequence[int]) -> tuple[int, int]:
    """The h x w patch grid of an H x W input with n_tokens patches (the grid has the input's aspect ratio)."""
    height, width = int(size[0]), int(size[1])
    h = round((n_tokens * height / width) ** 0.5)
    if h < 1 or n_tokens % h or height % h or width % (n_tokens // h):
        raise ValueError(f"{n_tokens} patch tokens do not tile a {height} x {width} input")
    return h, n_tokens // h


def attention_rollout(model: nn.Module, x: torch.Tensor, *, head_fusion: str = "mean", upsample: bool = True,
                      normalize: bool = True) -> torch.Tensor:
    """Attention-rollout map per image for a network containing a 2-D ``monai.networks.nets.ViT``.

    The blocks' attention matrices are recorded during one forward pass in eval mode: ``save_attn`` is switched on
    (and fused attention off, which computes the same attention) for that pass only, so a ViT built without
    ``save_attn=True`` works too; the flags are restored afterwards.

    Args:
        model: the ViT, or a network that wraps one (the first ViT among its modules is used).
        x: input batch, B x C x H x W.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over heads.
        upsample: upsample the patch-grid map to H x W (bilinear).
        normalize: min-max normalise each map to [0, 1].

    Returns:
        B x H x W maps (B x h x w on the patch grid when ``upsample`` is False).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be B x C x H x W (2-D ViT), got shape {tuple(x.shape)}")
    vit = _find_vit(model)
    attns = [block.attn for block in vit.blocks]
    flags = [(a.save_attn, a.use_flash_attention) for a in attns]
    was_training = model.training
    model.eval()
    try:
        for a in attns:
            a.save_attn, a.use_flash_attention = True, False
        with torch.no_grad():
            model(x)
        matrices = [a.att_mat for a in attns]
    finally:
        for a, (save, flash) in zip(attns, flags):
            a.save_attn, a.use_flash_attention = save, flash
        model.train(was_training)
    rollout = rollout_attention_matrices(matrices, head_fusion)
    if hasattr(vit, "cls_token"):
        scores = rollout[:, 0, 1:]
    else:
        scores = rollout.mean(dim=1)
    maps = scores.reshape(x.shape[0], *_patch_grid(scores.shape[1], x.shape[2:]))
    if upsample:
        maps = upsample_maps(maps, x.shape[2:])
    return normalize_maps(maps) if normalize else maps
