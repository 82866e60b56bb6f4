"""Which layers the explanation maps come from, and how coarse their grids are.

A map is computed on a layer's grid and upsampled to the input: Grad-CAM on the layer's output, an attention
map on the map the layer attends over. A ResNet's last stage is 1/32 of the input, a 2×2 grid at 64 px; its
upsampled Grad-CAM is four overlapping blobs whose maximum sits at one of the four cell centres, so it can say
in which quarter the evidence lies and nothing finer. We call a grid *coarse* below 7×7 positions, the grid of
the last stage at the 224 px the backbones were designed for.

* **Grad-CAM** (``gradcam_layer``): ``"auto"`` takes the network's Grad-CAM layer (its last stage,
  :func:`~medattn_monai.networks.gradcam_target_layer`) when its grid has at least 7×7 positions, otherwise the
  deepest stage or block that has (ResNet18 at 64 px: ``layer2``, 8×8). ``"last"`` always takes the last stage;
  any other value names a module. Earlier layers localise more finely, but their features are less specific to
  the class (Selvaraju et al., ICCV 2017, section 3), so the layer is logged and drawn with every map.
* **Attention** (``attention_layer``): ``"auto"`` averages the attention layers whose grid has at least 7×7
  positions, or, when none has, those on the finest grid there is (``ga`` at 64 px: ``layer3.attn``, 4×4, not
  ``layer4.attn``'s 2×2, which would only blur it); ``"all"`` averages every attention layer; any other value
  names one layer. A ViT's rollout is on its patch grid.

Grids are measured, not computed from strides: :func:`map_grids` runs the network once on a blank image of the
run's size and reads every module's output shape. When a chosen grid is still coarse (the attention layers sit
at the last stages whatever the image size), :func:`coarse_grid_warning` gives the one line ``explain`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..networks.attention_maps import attention_layers, gradcam_target_layer
from .attention_map import attention_map, is_vit

__all__ = ["MIN_GRID", "MapLayers", "choose_map_layers", "coarse_grid_warning", "format_grid", "map_grids"]

MIN_GRID = 7  # positions per side below which a map is coarse: the last ResNet stage at 224 px
_STAGE_DEPTH = 1  # "layer2", "features.denseblock2", "_blocks.5": stages and blocks, not their inner convolutions


def format_grid(grid: tuple[int, int] | None) -> str:
    """``"8×8"`` (``"?"`` when unknown)."""
    return "?" if grid is None else f"{grid[0]}×{grid[1]}"


def _coarse(grid: tuple[int, int] | None) -> bool:
    return grid is not None and min(grid) < MIN_GRID


@dataclass(frozen=True)
class MapLayers:
    """The layers the maps of one network come from, with their grids (rows × columns).

    Attributes:
        gradcam: the Grad-CAM layer (None for a ViT, which has no convolutional stage).
        gradcam_grid: its output grid.
        attention: the attention layers averaged into the attention map (empty: no attention map); for a ViT the
            names of its blocks (rollout spans them all).
        attention_grids: each attention layer's grid (a ViT: the patch grid, under the name ``"rollout"``).
        image_size: the input side the grids were measured at.
    """

    gradcam: str | None
    gradcam_grid: tuple[int, int] | None
    attention: tuple[str, ...]
    attention_grids: dict[str, tuple[int, int]]
    image_size: int

    @property
    def attention_grid(self) -> tuple[int, int] | None:
        """The coarsest grid among the chosen attention layers (None without an attention map)."""
        grids = list(self.attention_grids.values())
        return min(grids, key=lambda g: g[0] * g[1]) if grids else None

    @property
    def attention_layer_arg(self) -> str | list[str] | None:
        """What :func:`~medattn_monai.explain.attention_map` takes as ``layer`` for these layers."""
        if not self.attention or "rollout" in self.attention_grids:
            return None
        return self.attention[0] if len(self.attention) == 1 else list(self.attention)

    def describe(self, kind: str) -> str:
        """``"layer2, 8×8"`` (Grad-CAM) or ``"layer3.attn, 4×4"`` / ``"patch grid, 8×8"`` (attention; a ViT)."""
        if kind == "gradcam":
            return f"{self.gradcam}, {format_grid(self.gradcam_grid)}"
        if "rollout" in self.attention_grids:
            return f"patch grid, {format_grid(self.attention_grids['rollout'])}"
        grids = sorted({format_grid(g) for g in self.attention_grids.values()})
        names = self.attention[0] if len(self.attention) == 1 else f"mean of {len(self.attention)} layers"
        return f"{names}, {' and '.join(grids)}"


def map_grids(net: nn.Module, image_size: int, device: torch.device | str = "cpu") -> dict[str, tuple[int, int]]:
    """Every module's output grid (modules whose output is ``B×C×h×w``) and every spatial attention layer's grid
    (the map its weights are over: its input), measured on one blank ``image_size`` image, in forward order
    (a module after the modules it calls). A ViT's patch grid is under ``"rollout"``.
    """
    if is_vit(net):
        blank = torch.zeros(1, 3, image_size, image_size, device=device)
        return {"rollout": tuple(attention_map(net, blank, upsample=False, normalize=False).shape[-2:])}
    grids: dict[str, tuple[int, int]] = {}
    spatial = set(attention_layers(net))

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple, output) -> None:
            source = inputs[0] if name in spatial and inputs else output
            if isinstance(source, torch.Tensor) and source.ndim == 4:
                grids[name] = (int(source.shape[-2]), int(source.shape[-1]))

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in net.named_modules() if name]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    return grids


def _gradcam_layer(net: nn.Module, requested: str, grids: dict[str, tuple[int, int]]) -> str | None:
    try:
        last = gradcam_target_layer(net)
    except ValueError:
        last = None  # a ViT
    if requested == "last" or (requested == "auto" and (last is None or not _coarse(grids.get(last)))):
        return last
    if requested != "auto":
        if requested not in dict(net.named_modules()):
            raise ConfigError(f"gradcam_layer={requested!r} is not a module of {type(net).__name__}: give 'auto', "
                              f"'last' or a module name such as {last!r}")
        if requested not in grids:
            raise ConfigError(f"gradcam_layer={requested!r}: its output is not a spatial map (B×C×h×w)")
        return requested
    fine = [name for name, grid in grids.items() if name.count(".") <= _STAGE_DEPTH and not _coarse(grid)]
    return fine[-1] if fine else last


def _attention_layers(net: nn.Module, requested: str | None, grids: dict[str, tuple[int, int]]) -> tuple[str, ...]:
    if "rollout" in grids:
        return tuple(attention_layers(net))
    spatial = [name for name in attention_layers(net) if name in grids]
    if not spatial and requested not in (None, "auto", "all"):
        raise ConfigError(f"attention_layer={requested!r}: {type(net).__name__} has no spatial attention layers")
    if not spatial:
        return ()
    if requested in (None, "all"):
        return tuple(spatial)
    if requested != "auto":
        if requested not in spatial:
            raise ConfigError(f"attention_layer={requested!r} is not an attention layer of {type(net).__name__}; "
                              f"give 'auto', 'all' or one of {spatial}")
        return (requested,)
    fine = [name for name in spatial if not _coarse(grids[name])]
    if fine:
        return tuple(fine)
    finest = max(grids[name][0] * grids[name][1] for name in spatial)
    return tuple(name for name in spatial if grids[name][0] * grids[name][1] == finest)


def choose_map_layers(net: nn.Module, image_size: int, gradcam_layer: str = "auto",
                      attention_layer: str | None = "auto", device: torch.device | str = "cpu") -> MapLayers:
    """The Grad-CAM layer and the attention layers of ``net``'s maps at ``image_size`` (rules: module docstring).

    Raises:
        ConfigError: ``gradcam_layer`` or ``attention_layer`` names no suitable module.
    """
    grids = map_grids(net, image_size, device)
    gradcam = _gradcam_layer(net, gradcam_layer or "auto", grids)
    attention = _attention_layers(net, attention_layer, grids)
    attention_grids = ({"rollout": grids["rollout"]} if "rollout" in grids
                       else {name: grids[name] for name in attention})
    return MapLayers(gradcam, grids.get(gradcam) if gradcam else None, attention, attention_grids, image_size)


def _size_for_fine_grid(image_size: int, grid: tuple[int, int]) -> int:
    """The smallest image size (a multiple of 32, as the networks take) giving this layer a 7×7 grid."""
    stride = image_size / min(grid)
    return int(-(-MIN_GRID * stride // 32) * 32)


def coarse_grid_warning(run: str, layers: MapLayers) -> str | None:
    """One line when a chosen map grid is coarser than 7×7 (None otherwise): the run, the layers and their grids,
    what a map cell spans, and the image size that would give the layer 7×7 positions."""
    coarse = []
    if layers.gradcam is not None and _coarse(layers.gradcam_grid):
        coarse.append((f"Grad-CAM on {layers.gradcam}", layers.gradcam_grid))
    by_grid: dict[tuple[int, int], list[str]] = {}
    for name, grid in layers.attention_grids.items():
        if _coarse(grid):
            by_grid.setdefault(grid, []).append(name)
    for grid, names in by_grid.items():
        coarse.append(("attention rollout" if names == ["rollout"] else f"attention on {', '.join(names)}", grid))
    if not coarse:
        return None
    size = layers.image_size
    parts = [f"{what} is a {format_grid(grid)} grid (a cell spans {-(-size // grid[0])} px; 7×7 from image_size "
             f"{_size_for_fine_grid(size, grid)})" for what, grid in coarse]
    return (f"run {run}: coarse maps at {size} px: {'; '.join(parts)}: under {MIN_GRID}×{MIN_GRID} positions a map "
            "tells the region, not the structure (docs/explanations.md)")
