"""One factory for every network of the study (bundle ``network_def`` targets :func:`build_network`).

A network is named by plain, JSON-friendly arguments:

- ``backbone``: ``resnet18``, ``densenet121``, ``efficientnet-b0`` or ``vit``.
- ``attention``: ``none``, ``ga``, ``la``, ``ela`` or ``se`` (``se`` not on ``efficientnet-b0``; ViT: ``none``).
- ``baseline`` (with ``attention="none"``): None or ``plain`` (the plain CNN), or ``size_matched`` with
  ``matched_to`` naming the variant whose parameter count the CNN matches (±5 %) by changing only its width knob.
  A ViT is a baseline of its own, sized (±15 %) to the plain CNN named by ``family`` (default ``resnet18``).

:func:`describe_network` gives the tracking facts of the same arguments (``params_count`` among them) from a
parameter-free build on the ``meta`` device, cached, so bundles and ``medattn models`` agree and nothing is
built twice for a size-matched search.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
from torch import nn

from ..errors import ConfigError
from .nets import AttentionDenseNet121, AttentionEfficientNetB0, AttentionResNet18, ViTClassifier
from .nets.stage_attention import VARIANTS, AttentionOptions, normalize_stages
from .pretrained import load_pretrained
from .size_matching import WIDTH_GRIDS, WIDTH_KNOBS, closest_width

__all__ = [
    "BACKBONES",
    "BASELINES",
    "CNN_BACKBONES",
    "VARIANTS",
    "NetworkSpec",
    "build_network",
    "count_parameters",
    "describe_network",
    "network_recipe",
    "variants_of",
]

CNN_BACKBONES = ("resnet18", "densenet121", "efficientnet-b0")
BACKBONES = CNN_BACKBONES + ("vit",)
BASELINES = ("plain", "size_matched")
CNN_TOLERANCE = 0.05
VIT_TOLERANCE = 0.15

_CLASSES = {"resnet18": AttentionResNet18, "densenet121": AttentionDenseNet121, "efficientnet-b0": AttentionEfficientNetB0}


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def variants_of(backbone: str) -> tuple[str, ...]:
    """The attention variants (besides ``none``) that exist for a CNN ``backbone``."""
    return tuple(v for v in VARIANTS[1:] if not (v == "se" and backbone == "efficientnet-b0"))


@dataclass(frozen=True)
class NetworkSpec:
    """Validated, normalised arguments of :func:`build_network` (hashable: the cache key of counts and searches).

    Options that do not affect a network are reset to their defaults (e.g. ``window`` of a ``ga`` network,
    ``stages`` of a plain one), so equal networks have equal specs.
    """

    backbone: str
    attention: str
    num_classes: int
    in_channels: int
    image_size: int
    stages: tuple[int, ...]
    heads: int | None
    attn_ratio: int
    window: int
    baseline: str | None
    matched_to: str | None
    family: str | None

    @classmethod
    def from_args(
        cls,
        backbone: str = "resnet18",
        attention: str = "none",
        num_classes: int = 2,
        in_channels: int = 3,
        image_size: int = 224,
        *,
        stages: Sequence[int] | int | str = (3, 4),
        heads: int | None = None,
        attn_ratio: int = 4,
        window: int = 7,
        baseline: str | None = None,
        matched_to: str | None = None,
        family: str | None = None,
    ) -> NetworkSpec:
        """Validate :func:`build_network`'s arguments (ConfigError naming the value) and normalise them."""
        if backbone not in BACKBONES:
            raise ConfigError(f"backbone={backbone!r} is not one of {list(BACKBONES)}")
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r}: expected a positive int")
        if not isinstance(image_size, int) or image_size < 32 or image_size % 32:
            raise ConfigError(f"image_size={image_size!r}: expected a positive multiple of 32 (e.g. 64, 96, 224)")
        if baseline == "vit":  # the tag's value; accepted for the ViT itself
            if backbone != "vit":
                raise ConfigError(f"baseline='vit' needs backbone='vit', got backbone={backbone!r}")
            baseline = None
        if baseline not in (None,) + BASELINES:
            raise ConfigError(f"baseline={baseline!r} is not one of {[None, *BASELINES]}")
        if backbone == "vit":
            if attention != "none":
                raise ConfigError(f"attention={attention!r}: the ViT baseline has no CNN attention variant (use 'none')")
            if baseline is not None or matched_to is not None:
                raise ConfigError("the ViT is sized by family=<cnn backbone>; baseline/matched_to do not apply to it")
            family = "resnet18" if family is None else family
            if family not in CNN_BACKBONES:
                raise ConfigError(f"family={family!r}: the ViT is sized to one of {list(CNN_BACKBONES)}")
            d = AttentionOptions()
            return cls("vit", "none", num_classes, in_channels, image_size, (), None, d.attn_ratio, d.window, "vit", None, family)
        if family not in (None, backbone):
            raise ConfigError(f"family={family!r}: a {backbone} network's family is its backbone")
        if attention not in VARIANTS:
            raise ConfigError(f"attention={attention!r} is not one of {list(VARIANTS)}")
        variant = attention
        if attention != "none":
            if baseline is not None or matched_to is not None:
                raise ConfigError(
                    f"baseline={baseline!r}, matched_to={matched_to!r}: attention variants are not baselines "
                    f"(use attention='none', baseline='size_matched', matched_to={attention!r})"
                )
        elif baseline == "size_matched":
            if matched_to not in VARIANTS[1:]:
                raise ConfigError(f"matched_to={matched_to!r}: baseline='size_matched' needs one of {list(VARIANTS[1:])}")
            variant = matched_to
        elif matched_to is not None:
            raise ConfigError(f"matched_to={matched_to!r} needs baseline='size_matched'")
        if variant == "se" and backbone == "efficientnet-b0":
            raise ConfigError(
                "attention='se' is not a variant of efficientnet-b0: its MBConv blocks already carry "
                "squeeze-and-excitation (its plain network is the channel-attention model)"
            )
        # validates stages, heads, attn_ratio, window (ConfigError naming the value)
        opts = AttentionOptions(variant, normalize_stages(stages), heads, attn_ratio, window, image_size)
        defaults = AttentionOptions()
        if variant == "none":
            opts = replace(defaults, image_size=image_size)
        elif variant in ("ela", "se"):
            opts = replace(opts, attn_ratio=defaults.attn_ratio)
        if variant in ("ga", "se"):
            opts = replace(opts, window=defaults.window)
        if variant == "se":
            opts = replace(opts, heads=None)
        base = None if attention != "none" else (baseline or "plain")
        return cls(
            backbone, attention, num_classes, in_channels, image_size, opts.stages if variant != "none" else (),
            opts.heads, opts.attn_ratio, opts.window, base, matched_to if base == "size_matched" else None, backbone,
        )

    def with_(self, **changes) -> NetworkSpec:
        """A copy with fields changed (no re-validation: for specs derived from a valid one)."""
        return replace(self, **changes)


def _cnn_kwargs(spec: NetworkSpec) -> dict:
    return dict(
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        attention=spec.attention,
        stages=spec.stages or AttentionOptions().stages,
        heads=spec.heads,
        attn_ratio=spec.attn_ratio,
        window=spec.window,
        image_size=spec.image_size,
    )


def _recipe(spec: NetworkSpec, width: float | int | None = None) -> tuple[type[nn.Module], dict]:
    """The class of ``spec``'s module and its constructor arguments; ``width`` overrides the width knob."""
    if spec.backbone == "vit":
        hidden = width if width is not None else _vit_width(spec)[0]
        return ViTClassifier, dict(num_classes=spec.num_classes, in_channels=spec.in_channels,
                                   image_size=spec.image_size, hidden_size=int(hidden))
    kwargs = _cnn_kwargs(spec)
    if spec.baseline == "size_matched" and width is None:
        width = _matched_width(spec)[0]
    if width is not None:
        knob = WIDTH_KNOBS[spec.backbone]
        kwargs[knob] = int(width) if knob == "growth_rate" else float(width)
    return _CLASSES[spec.backbone], kwargs


def _construct(spec: NetworkSpec, width: float | int | None = None) -> nn.Module:
    """The module of ``spec``; ``width`` overrides the width knob (used by the size search)."""
    cls, kwargs = _recipe(spec, width)
    return cls(**kwargs)


@lru_cache(maxsize=None)
def _meta_shapes(spec: NetworkSpec) -> tuple[tuple[str, torch.Size], ...]:
    """state_dict key → shape of ``spec``'s network, built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        net = _construct(spec)
    return tuple((k, v.shape) for k, v in net.state_dict().items())


@lru_cache(maxsize=None)
def _params(spec: NetworkSpec, width: float | int | None = None) -> int:
    with torch.device("meta"):
        net = _construct(spec, width)
    return count_parameters(net)


def _search(spec: NetworkSpec, target: int, tolerance: float, what: str) -> tuple[float | int, int]:
    # the plain network (or the ViT) of the same classes, channels and size: counts are shared across variants
    if spec.backbone == "vit":
        base = spec.with_(family=None)
    else:
        base = NetworkSpec.from_args(spec.backbone, "none", spec.num_classes, spec.in_channels, spec.image_size)
    width, count = closest_width(lambda w: _params(base, w), WIDTH_GRIDS[spec.backbone], target)
    if abs(count - target) > tolerance * target:
        raise ConfigError(
            f"no {WIDTH_KNOBS[spec.backbone]} of {spec.backbone} gives {what} ({target:,} parameters) within "
            f"±{tolerance:.0%}: the closest, {width}, gives {count:,}"
        )
    return width, count


@lru_cache(maxsize=None)
def _matched_width(spec: NetworkSpec) -> tuple[float | int, int]:
    """(width, params) of the size-matched CNN of ``spec`` (a ``baseline='size_matched'`` spec)."""
    variant = spec.with_(attention=spec.matched_to, baseline=None, matched_to=None)
    return _search(spec, _params(variant), CNN_TOLERANCE, f"the {spec.matched_to} variant's size")


@lru_cache(maxsize=None)
def _vit_width(spec: NetworkSpec) -> tuple[int, int]:
    """(hidden_size, params) of the ViT sized to its family's plain CNN."""
    plain = NetworkSpec.from_args(spec.family, "none", spec.num_classes, spec.in_channels, spec.image_size)
    width, count = _search(spec, _params(plain), VIT_TOLERANCE, f"the plain {spec.family}'s size")
    return int(width), count


def build_network(
    backbone: str = "resnet18",
    attention: str = "none",
    num_classes: int = 2,
    in_channels: int = 3,
    image_size: int = 224,
    *,
    stages: Sequence[int] | int | str = (3, 4),
    heads: int | None = None,
    attn_ratio: int = 4,
    window: int = 7,
    baseline: str | None = None,
    matched_to: str | None = None,
    family: str | None = None,
    pretrained_path: str | None = None,
) -> nn.Module:
    """Build a 2-D classification network mapping ``B×in_channels×H×W`` to logits ``B×num_classes``.

    Args:
        backbone: ``resnet18``, ``densenet121``, ``efficientnet-b0`` or ``vit``.
        attention: ``none``, ``ga``, ``la``, ``ela`` or ``se`` (see ``docs/networks.md``).
        num_classes: number of logits.
        in_channels: input channels.
        image_size: the input side the network is built for: sizes ``ga``'s relative position tables (inputs up
            to this size) and the ViT (exactly this size); other networks accept any side divisible by 32.
        stages: stages (1–4, stride 4–32) carrying the attention; a list, or a string such as ``"3,4"``.
        heads: heads of every attention layer (None: one per 32 channels of attention width).
        attn_ratio: channel reduction of the added ``ga``/``la`` layers.
        window: odd local window of ``la``/``ela``.
        baseline: None or ``plain`` (plain CNN) or ``size_matched`` (needs ``matched_to``), with ``attention='none'``.
        matched_to: the variant (``ga``, ``la``, ``ela``, ``se``) a size-matched CNN matches in parameters.
        family: for ``backbone='vit'``, the CNN whose plain parameter count the ViT is sized to (default resnet18).
        pretrained_path: a local torchvision ImageNet checkpoint for the ResNet-18/DenseNet-121 backbone weights
            (native width only); None trains from scratch.

    Raises:
        ConfigError: for an invalid value or combination, naming it.
    """
    spec = NetworkSpec.from_args(
        backbone, attention, num_classes, in_channels, image_size, stages=stages, heads=heads,
        attn_ratio=attn_ratio, window=window, baseline=baseline, matched_to=matched_to, family=family,
    )
    net = _construct(spec)
    if pretrained_path is not None:
        if spec.backbone not in ("resnet18", "densenet121") or spec.baseline == "size_matched":
            raise ConfigError(
                f"pretrained_path is for the native-width resnet18/densenet121 backbones only, not "
                f"{spec.backbone}{' (size_matched: widened)' if spec.baseline == 'size_matched' else ''}: "
                "those train from scratch"
            )
        plain = NetworkSpec.from_args(spec.backbone, "none", num_classes, in_channels, image_size)
        load_pretrained(net, pretrained_path, spec.backbone, dict(_meta_shapes(plain)))
    # the arguments travel with the module: run folders record them, so evaluation rebuilds exactly this network
    # (pretrained_path is left out: a run's own weights replace it)
    net.network_args = {
        "backbone": backbone, "attention": attention, "num_classes": num_classes, "in_channels": in_channels,
        "image_size": image_size, "stages": stages if isinstance(stages, (str, int)) else list(stages), "heads": heads, "attn_ratio": attn_ratio, "window": window, "baseline": baseline,
        "matched_to": matched_to, "family": family,
    }
    return net


def describe_network(*args, pretrained_path: str | None = None, **kwargs) -> dict:
    """The tracking facts of the network :func:`build_network` builds from the same arguments, without building it.

    Returns:
        ``backbone``, ``attention``, ``baseline`` (``plain``, ``size_matched``, ``vit``; None for attention
        variants), ``family``, ``matched_to`` (None unless size-matched), ``stages`` (e.g. ``"3,4"``; None for
        plain networks and the ViT), ``params_count`` (trainable parameters), ``width`` (``knob=value`` for
        size-matched CNNs and the ViT, else None) and ``pretrained`` (bool).

    Raises:
        ConfigError: as :func:`build_network`.
    """
    return dict(_describe(NetworkSpec.from_args(*args, **kwargs)), pretrained=pretrained_path is not None)


describe_network.__signature__ = inspect.signature(build_network).replace(return_annotation=dict)


def network_recipe(*args, **kwargs) -> tuple[type[nn.Module], dict]:
    """The class and constructor arguments that :func:`build_network` instantiates for the same arguments.

    Size-matched widths and the ViT's hidden size are resolved, so ``cls(**kwargs)`` is the network (without
    ``pretrained_path`` weights) with no search: an exported bundle names the class and these arguments directly.

    Raises:
        ConfigError: as :func:`build_network`.
    """
    return _recipe(NetworkSpec.from_args(*args, **kwargs))


network_recipe.__signature__ = inspect.signature(build_network).replace(
    parameters=[p for n, p in inspect.signature(build_network).parameters.items() if n != "pretrained_path"],
    return_annotation=tuple,
)


@lru_cache(maxsize=None)
def _describe(spec: NetworkSpec) -> dict:
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
        "stages": ",".join(str(s) for s in spec.stages) or None,
        "params_count": int(params),
        "width": width,
    }
