"""One factory for every network of the study (bundle ``network_def`` targets :func:`build_network`).

A network is named by the fields of :class:`~.spec.NetworkSpec` (plain JSON values; docs/networks.md):

- ``backbone``: ``resnet18``, ``densenet121``, ``efficientnet-b0`` or ``vit``.
- ``attention``: ``none``, ``ga``, ``la``, ``ela`` or ``se`` (``se`` not on ``efficientnet-b0``; ViT: ``none``).
- ``baseline`` (with ``attention="none"``): None or ``plain`` (the plain CNN), or ``size_matched`` with
  ``matched_to`` naming the variant whose parameter count the CNN matches (±5 %) by changing only its width knob.
  A ViT is a baseline of its own, sized (±15 %) to the plain CNN named by ``family`` (default ``resnet18``).

:func:`describe_network` gives the tracking facts of the same fields (``params_count`` among them) from a
parameter-free build on the ``meta`` device, cached, so bundles and ``medattn models`` agree and nothing is
built twice for a size-matched search.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache, lru_cache
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .meta_device import meta_network
from .nets import AttentionDenseNet121, AttentionEfficientNetB0, AttentionResNet18, ViTClassifier
from .pretrained import load_pretrained
from .size_matching import WIDTH_KNOBS, match_width
from .spec import (
    BACKBONES,
    BASELINES,
    CNN_BACKBONES,
    VARIANTS,
    NetworkSpec,
    network_arguments,
    takes_network_fields,
    variants_of,
)

__all__ = [
    "BACKBONES",
    "BASELINES",
    "CNN_BACKBONES",
    "VARIANTS",
    "NetworkSpec",
    "build_network",
    "count_parameters",
    "describe_network",
    "meta_build",
    "network_recipe",
    "spec_recipe",
    "variants_of",
]

CNN_TOLERANCE = 0.05
VIT_TOLERANCE = 0.15

_CLASSES = {
    "resnet18": AttentionResNet18,
    "densenet121": AttentionDenseNet121,
    "efficientnet-b0": AttentionEfficientNetB0,
}
_PRETRAINABLE = ("resnet18", "densenet121")


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def spec_recipe(spec: NetworkSpec, width: float | int | None = None) -> tuple[type[nn.Module], dict[str, Any]]:
    """The class of ``spec``'s module and its constructor arguments; ``width`` overrides the width knob.

    Size-matched widths and the ViT's hidden size are resolved (searched once, cached).
    """
    if spec.backbone == "vit":
        hidden = width if width is not None else _vit_width(spec)[0]
        return ViTClassifier, dict(num_classes=spec.num_classes, in_channels=spec.in_channels,
                                   image_size=spec.image_size, hidden_size=int(hidden))
    kwargs = spec.class_args()
    if spec.baseline == "size_matched" and width is None:
        width = _matched_width(spec)[0]
    if width is not None:
        knob = WIDTH_KNOBS[spec.backbone]
        kwargs[knob] = int(width) if knob == "growth_rate" else float(width)
    return _CLASSES[spec.backbone], kwargs


def meta_build(spec: NetworkSpec, width: float | int | None = None) -> nn.Module:
    """``spec``'s network (``width`` overriding its width knob) on the meta device, for counting.

    The last few builds are kept (networks equal in class and arguments are one), so that what counts a network's
    parameters and what then counts its multiply-adds build it once: treat the module as read-only.
    """
    cls, kwargs = spec_recipe(spec, width)
    return _meta_build(cls, tuple(kwargs.items()))


@lru_cache(maxsize=8)
def _meta_build(cls: type[nn.Module], kwargs: tuple[tuple[str, Any], ...]) -> nn.Module:
    return meta_network(cls, dict(kwargs))


@cache
def _params(spec: NetworkSpec, width: float | int | None = None) -> int:
    return count_parameters(meta_build(spec, width))


@cache
def _state_shapes(spec: NetworkSpec) -> tuple[tuple[str, torch.Size], ...]:
    """state_dict key → shape of ``spec``'s network (built on the meta device)."""
    return tuple((k, v.shape) for k, v in meta_build(spec).state_dict().items())


@cache
def _matched_width(spec: NetworkSpec) -> tuple[float | int, int]:
    """(width, params) of the size-matched CNN of ``spec`` (a ``baseline='size_matched'`` spec)."""
    variant = replace(spec, attention=spec.matched_to, baseline=None, matched_to=None)
    what = f"the {spec.matched_to} variant's size"
    return match_width(spec.plain(), _params(variant), CNN_TOLERANCE, what, _params)


@cache
def _vit_width(spec: NetworkSpec) -> tuple[int, int]:
    """(hidden_size, params) of the ViT sized to its family's plain CNN."""
    # the ViT's count does not depend on its family: one cache for all three
    target = _params(spec.plain(spec.family))
    width, count = match_width(spec.plain(), target, VIT_TOLERANCE, f"the plain {spec.family}'s size", _params)
    return int(width), count


@takes_network_fields
def build_network(*args: Any, pretrained_path: str | None = None, **fields: Any) -> nn.Module:
    """Build a 2-D classification network mapping ``B×in_channels×H×W`` to logits ``B×num_classes``.

    Args:
        args, fields: the fields of :class:`~.spec.NetworkSpec` (``backbone``, ``attention``, ``num_classes``,
            ``in_channels``, ``image_size`` may be positional, in that order; the others are keywords).
        pretrained_path: a local torchvision ImageNet checkpoint for the ResNet-18/DenseNet-121 backbone weights
            (native width only); None trains from scratch.

    Returns:
        the module, carrying ``network_args``: the fields as given (defaults filled in, ``pretrained_path`` left
        out), a JSON-able dict that run folders record and ``build_network(**network_args)`` rebuilds it from.

    Raises:
        ConfigError: for an unknown field, an invalid value or combination, naming it.
    """
    given = network_arguments(*args, **fields)
    spec = NetworkSpec(**given)
    cls, kwargs = spec_recipe(spec)
    net = cls(**kwargs)
    if pretrained_path is not None:
        if spec.backbone not in _PRETRAINABLE or spec.baseline == "size_matched":
            widened = " (size_matched: widened)" if spec.baseline == "size_matched" else ""
            raise ConfigError(
                f"pretrained_path is for the native-width resnet18/densenet121 backbones only, not "
                f"{spec.backbone}{widened}: those train from scratch"
            )
        load_pretrained(net, pretrained_path, spec.backbone, dict(_state_shapes(spec.plain())))
    # the fields travel with the module: run folders record them, so evaluation rebuilds exactly this network
    # (pretrained_path is left out: a run's own weights replace it)
    stages = given["stages"]
    net.network_args = dict(given, stages=stages if isinstance(stages, (str, int)) else list(stages))
    return net


@takes_network_fields
def describe_network(*args: Any, pretrained_path: str | None = None, **fields: Any) -> dict[str, Any]:
    """The tracking facts of the network :func:`build_network` builds from the same arguments, without building it.

    Returns:
        ``backbone``, ``attention``, ``baseline`` (``plain``, ``size_matched``, ``vit``; None for attention
        variants), ``family``, ``matched_to`` (None unless size-matched), ``stages`` (e.g. ``"3,4"``; None for
        plain networks and the ViT), ``params_count`` (trainable parameters), ``width`` (``knob=value`` for
        size-matched CNNs and the ViT, else None) and ``pretrained`` (bool).

    Raises:
        ConfigError: as :func:`build_network`.
    """
    return dict(describe_spec(NetworkSpec.from_args(*args, **fields)), pretrained=pretrained_path is not None)


@takes_network_fields
def network_recipe(*args: Any, **fields: Any) -> tuple[type[nn.Module], dict[str, Any]]:
    """The class and constructor arguments that :func:`build_network` instantiates for the same arguments.

    Size-matched widths and the ViT's hidden size are resolved, so ``cls(**kwargs)`` is the network (without
    ``pretrained_path`` weights) with no search: an exported bundle names the class and these arguments directly.

    Raises:
        ConfigError: as :func:`build_network`.
    """
    return spec_recipe(NetworkSpec.from_args(*args, **fields))


@cache
def describe_spec(spec: NetworkSpec) -> dict[str, Any]:
    """:func:`describe_network` of a spec, without ``pretrained`` (cached: do not change the dict returned)."""
    width = None
    if spec.backbone == "vit":
        hidden, params = _vit_width(spec)
        width = f"hidden_size={hidden}"
    elif spec.baseline == "size_matched":
        value, params = _matched_width(spec)
        width = f"{WIDTH_KNOBS[spec.backbone]}={value}"
    else:
        params = _params(spec)
    return {
        "backbone": spec.backbone,
        "attention": spec.attention,
        "baseline": spec.baseline,
        "family": spec.family,
        "matched_to": spec.matched_to,
        "stages": ",".join(str(s) for s in spec.stages) if spec.variant != "none" else None,
        "params_count": int(params),
        "width": width,
    }
