"""The ViT baseline: MONAI's ``ViT``, 2-D, returning logits only (no Tanh head, no tuple)."""

from __future__ import annotations

import torch
from monai.networks.nets import ViT
from torch import nn

from ...errors import ConfigError

__all__ = ["ViTClassifier", "default_patch_size"]


def default_patch_size(image_size: int) -> int:
    """16 for inputs of 128 px and more (14×14 tokens at 224), else 8 (8×8 tokens at 64, 12×12 at 96)."""
    return 16 if image_size >= 128 and image_size % 16 == 0 else 8


class ViTClassifier(nn.Module):
    """A Vision Transformer classifier (Dosovitskiy et al. 2021, arXiv 2010.11929) over MONAI's ``ViT``.

    Pre-norm transformer blocks with a class token and learnable position embeddings; the logits are a linear
    map of the final class token. The MONAI network is ``self.vit``; set ``save_attn`` on its blocks'
    ``attn`` modules (see :func:`medattn_monai.networks.collect_attention`) for attention rollout.

    Args:
        num_classes: number of output logits.
        in_channels: input channels.
        image_size: input side (fixed: position embeddings are learned for it).
        hidden_size: token width (the baselines' width knob); a multiple of ``dim_head``.
        num_layers: transformer blocks.
        dim_head: width of each attention head (heads = ``hidden_size // dim_head``).
        mlp_ratio: MLP width as a multiple of ``hidden_size``.
        patch_size: patch side; None: :func:`default_patch_size`.

    Raises:
        ConfigError: when the patch size does not divide ``image_size`` or widths do not divide.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        image_size: int = 224,
        hidden_size: int = 288,
        num_layers: int = 12,
        dim_head: int = 32,
        mlp_ratio: int = 4,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        patch = default_patch_size(image_size) if patch_size is None else patch_size
        if image_size % patch:
            raise ConfigError(f"image_size={image_size} is not a multiple of the ViT patch size {patch}")
        if hidden_size % dim_head:
            raise ConfigError(f"hidden_size={hidden_size} is not a multiple of dim_head={dim_head}")
        self.image_size = image_size
        self.patch_size = patch
        self.vit = ViT(
            in_channels=in_channels,
            img_size=(image_size, image_size),
            patch_size=(patch, patch),
            hidden_size=hidden_size,
            mlp_dim=mlp_ratio * hidden_size,
            num_layers=num_layers,
            num_heads=hidden_size // dim_head,
            classification=True,
            num_classes=num_classes,
            spatial_dims=2,
            post_activation=None,  # anything but "Tanh": a plain linear head
            qkv_bias=True,
        )
        for block in self.vit.blocks:
            # MONAI always builds this LayerNorm, used only with cross-attention: dead weights in the count
            block.norm_cross_attn = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``B×in_channels×image_size×image_size``.

        Returns:
            logits ``B×num_classes``.
        """
        logits, _ = self.vit(x)
        return logits
