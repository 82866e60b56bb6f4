"""The network specification: which network of the study, as plain JSON values, validated once.

:class:`NetworkSpec`'s fields are the one list of a network's arguments. :func:`~.factory.build_network`,
:func:`~.factory.describe_network` and :func:`~.factory.network_recipe` take them (keywords; the first five may be
positional), the network classes of :mod:`.nets` take every field but :data:`FACTORY_FIELDS` (the factory turns those
into a class and its width), and the size matcher and ``medattn models`` work on specs. What the fields mean, and the
rules checked here, are in docs/networks.md.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, fields
from typing import Any, TypeVar

from ..errors import ConfigError
from .blocks.attention_ops import check_window

__all__ = [
    "ALL_STAGES",
    "BACKBONES",
    "BASELINES",
    "BUILD_OPTIONS",
    "CLASS_FIELDS",
    "CNN_BACKBONES",
    "FACTORY_FIELDS",
    "FIELD_NAMES",
    "VARIANTS",
    "NetworkSpec",
    "network_arguments",
    "normalize_stages",
    "takes_network_fields",
    "variants_of",
]

CNN_BACKBONES = ("resnet18", "densenet121", "efficientnet-b0")
BACKBONES = CNN_BACKBONES + ("vit",)
VARIANTS = ("none", "ga", "la", "ela", "se")
BASELINES = ("plain", "size_matched")
ALL_STAGES = (1, 2, 3, 4)
# keys build_network takes besides the fields: they choose the weights, not the network
BUILD_OPTIONS = ("pretrained_path",)
# (backbone, variant) pairs that do not exist, and why
_NOT_A_VARIANT = {
    ("efficientnet-b0", "se"): "its MBConv blocks already carry squeeze-and-excitation (its plain network is the "
    "channel-attention model)",
}


def variants_of(backbone: str) -> tuple[str, ...]:
    """The attention variants (besides ``none``) that exist for a CNN ``backbone``."""
    return tuple(v for v in VARIANTS[1:] if (backbone, v) not in _NOT_A_VARIANT)


def normalize_stages(stages: Sequence[int] | int | str) -> tuple[int, ...]:
    """Stages as a sorted tuple of distinct ints in 1–4; accepts a list, an int or a string such as ``"3,4"``."""
    if isinstance(stages, str):
        items: list = [p.strip() for p in stages.strip("()[] ").split(",") if p.strip()]
    elif isinstance(stages, int):
        items = [stages]
    else:
        items = list(stages)
    try:
        values = [int(s) for s in items]
    except (TypeError, ValueError):
        raise ConfigError(f"stages={stages!r}: expected stage numbers such as [3, 4]") from None
    not_whole = any(float(s) != v for s, v in zip(items, values, strict=True))
    if not values or any(v not in ALL_STAGES for v in values) or not_whole:
        raise ConfigError(f"stages={stages!r}: expected a non-empty subset of {list(ALL_STAGES)}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the study, validated and normalised when constructed (hashable: the key of cached counts).

    Options that do not affect the network are reset to their defaults (``window`` of a ``ga`` network, ``stages``
    of a plain one, ...) and ``baseline``/``family`` are filled in, so equal networks have equal specs. A spec's own
    fields give the same spec again. From user input use :meth:`from_args` or :meth:`from_mapping`: they also refuse
    unknown keys.

    Attributes:
        backbone: ``resnet18``, ``densenet121``, ``efficientnet-b0`` or ``vit``.
        attention: ``none``, ``ga``, ``la``, ``ela`` or ``se`` (``se`` is not a variant of ``efficientnet-b0``: its
            blocks already carry squeeze-and-excitation; the ViT has ``none``).
        num_classes: number of logits.
        in_channels: input channels.
        image_size: the input side the network is built for, a multiple of 32: sizes ``ga``'s relative position
            tables (inputs up to this size) and the ViT (exactly this size); other networks take any side divisible
            by 32.
        stages: stages (1–4, output stride 4–32) carrying the attention: a list, an int or a string such as
            ``"3,4"``; normalised to a sorted tuple.
        heads: heads of every attention layer (None: one per 32 channels of attention width).
        attn_ratio: channel reduction of the added ``ga``/``la`` layers.
        window: odd side of the local window of ``la``/``ela``.
        baseline: None or ``plain`` (the plain CNN) or ``size_matched`` (needs ``matched_to``), with
            ``attention='none'``; normalised to ``plain``, ``size_matched``, ``vit`` (the ViT) or None (a variant).
        matched_to: the variant (``ga``, ``la``, ``ela``, ``se``) whose parameter count a size-matched CNN matches.
        family: for the ViT, the CNN whose plain parameter count it is sized to (default ``resnet18``); for a CNN,
            its backbone.

    Raises:
        ConfigError: for an invalid value or combination, naming the field and the value.
    """

    backbone: str = "resnet18"
    attention: str = "none"
    num_classes: int = 2
    in_channels: int = 3
    image_size: int = 224
    _: KW_ONLY
    stages: tuple[int, ...] = (3, 4)
    heads: int | None = None
    attn_ratio: int = 4
    window: int = 7
    baseline: str | None = None
    matched_to: str | None = None
    family: str | None = None

    def __post_init__(self) -> None:
        _check_sizes(self)
        values = _vit_values(self) if self.backbone == "vit" else _cnn_values(self)
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: normalised once, here

    @classmethod
    def from_args(cls, *args: Any, **kwargs: Any) -> NetworkSpec:
        """The spec of arguments as :func:`~.factory.build_network` takes them (see :func:`network_arguments`)."""
        return cls(**network_arguments(*args, **kwargs))

    @classmethod
    def from_mapping(cls, args: Mapping[str, Any]) -> NetworkSpec:
        """The spec of a mapping such as a bundle's ``network_args``.

        Keys are fields, or :data:`BUILD_OPTIONS` (``pretrained_path``: weights, not the network; skipped here).

        Raises:
            ConfigError: for any other key, naming it and the closest known key; for invalid values.
        """
        if not isinstance(args, Mapping):
            raise ConfigError(f"network_args={args!r}: expected a mapping of network arguments")
        _refuse_unknown(args, FIELD_NAMES + BUILD_OPTIONS)
        return cls(**{k: v for k, v in args.items() if k not in BUILD_OPTIONS})

    @classmethod
    def for_class(cls, backbone: str, options: Mapping[str, Any]) -> NetworkSpec:
        """The spec of a ``backbone`` network class's arguments (:data:`CLASS_FIELDS`; unknown keys refused)."""
        _refuse_unknown(options, CLASS_FIELDS)
        return cls(backbone, **options)

    def class_args(self) -> dict[str, Any]:
        """The arguments of its network class, besides the width knob (:data:`CLASS_FIELDS`)."""
        return {name: getattr(self, name) for name in CLASS_FIELDS}

    def plain(self, backbone: str | None = None) -> NetworkSpec:
        """The plain network of ``backbone`` (default: this one's) with this spec's classes, channels and size."""
        return NetworkSpec(backbone or self.backbone, num_classes=self.num_classes, in_channels=self.in_channels,
                           image_size=self.image_size)

    @property
    def variant(self) -> str:
        """The variant whose size the network has: ``attention``, or ``matched_to`` for a size-matched CNN."""
        return self.matched_to if self.baseline == "size_matched" else self.attention

    @property
    def attention_stages(self) -> tuple[int, ...]:
        """The stages that carry attention layers (none without attention)."""
        return self.stages if self.attention != "none" else ()


FIELD_NAMES = tuple(f.name for f in fields(NetworkSpec))
# resolved by the factory into a network class and its width; the classes take the other fields
FACTORY_FIELDS = ("backbone", "baseline", "matched_to", "family")
CLASS_FIELDS = tuple(name for name in FIELD_NAMES if name not in FACTORY_FIELDS)
_DEFAULTS = {f.name: f.default for f in fields(NetworkSpec)}
_SIGNATURE = inspect.signature(NetworkSpec)


def network_arguments(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Every field named by arguments (the first five may be positional), as given, defaults filled in.

    Raises:
        ConfigError: for an unknown keyword (naming the closest field), too many positional arguments or a field
            given twice.
    """
    _refuse_unknown(kwargs, FIELD_NAMES)
    try:
        bound = _SIGNATURE.bind(*args, **kwargs)
    except TypeError as e:
        raise ConfigError(f"network arguments {list(args)} {kwargs}: {e}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


_Function = TypeVar("_Function", bound=Callable[..., Any])


def takes_network_fields(function: _Function) -> _Function:
    """Give ``function(*args, <own keyword-only options>, **fields)``, which passes ``args`` and ``fields`` on to
    :class:`NetworkSpec`, the spec's fields as its visible signature (for ``help()``, editors and docs)."""
    own = inspect.signature(function)
    options = [p for p in own.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    function.__signature__ = own.replace(parameters=[*_SIGNATURE.parameters.values(), *options])
    return function


def _refuse_unknown(keys: Collection[str], known: Sequence[str]) -> None:
    for key in keys:
        if key not in known:
            closest = difflib.get_close_matches(str(key), known, n=1, cutoff=0.0)
            raise ConfigError(
                f"unknown network argument {key!r} (closest known: {closest[0]!r}); known: {', '.join(known)}"
            )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_sizes(spec: NetworkSpec) -> None:
    if spec.backbone not in BACKBONES:
        raise ConfigError(f"backbone={spec.backbone!r} is not one of {list(BACKBONES)}")
    for name in ("num_classes", "in_channels"):
        if not _positive_int(getattr(spec, name)):
            raise ConfigError(f"{name}={getattr(spec, name)!r}: expected a positive int")
    if not isinstance(spec.image_size, int) or spec.image_size < 32 or spec.image_size % 32:
        raise ConfigError(f"image_size={spec.image_size!r}: expected a positive multiple of 32 (e.g. 64, 96, 224)")
    if spec.baseline == "vit" and spec.backbone != "vit":  # the tag's value; accepted for the ViT itself
        raise ConfigError(f"baseline='vit' needs backbone='vit', got backbone={spec.backbone!r}")
    if spec.baseline not in (None, "vit") + BASELINES:
        raise ConfigError(f"baseline={spec.baseline!r} is not one of {[None, *BASELINES]}")


def _vit_values(spec: NetworkSpec) -> dict[str, Any]:
    """The ViT's normalised fields: the attention options do not apply to it (they are not checked)."""
    if spec.attention != "none":
        raise ConfigError(f"attention={spec.attention!r}: the ViT baseline has no CNN attention variant (use 'none')")
    if spec.baseline not in (None, "vit") or spec.matched_to is not None:
        raise ConfigError("the ViT is sized by family=<cnn backbone>; baseline/matched_to do not apply to it")
    family = CNN_BACKBONES[0] if spec.family is None else spec.family
    if family not in CNN_BACKBONES:
        raise ConfigError(f"family={family!r}: the ViT is sized to one of {list(CNN_BACKBONES)}")
    options = {name: _DEFAULTS[name] for name in ("stages", "heads", "attn_ratio", "window")}
    return dict(options, baseline="vit", matched_to=None, family=family)


def _variant(spec: NetworkSpec) -> str:
    """The variant a CNN spec builds or matches; checks ``attention``, ``baseline`` and ``matched_to`` together."""
    if spec.family not in (None, spec.backbone):
        raise ConfigError(f"family={spec.family!r}: a {spec.backbone} network's family is its backbone")
    if spec.attention not in VARIANTS:
        raise ConfigError(f"attention={spec.attention!r} is not one of {list(VARIANTS)}")
    variant = spec.attention
    if spec.attention != "none":
        if spec.baseline is not None or spec.matched_to is not None:
            raise ConfigError(
                f"baseline={spec.baseline!r}, matched_to={spec.matched_to!r}: attention variants are not baselines "
                f"(use attention='none', baseline='size_matched', matched_to={spec.attention!r})"
            )
    elif spec.baseline == "size_matched":
        if spec.matched_to not in VARIANTS[1:]:
            raise ConfigError(
                f"matched_to={spec.matched_to!r}: baseline='size_matched' needs one of {list(VARIANTS[1:])}"
            )
        variant = spec.matched_to
    elif spec.matched_to is not None:
        raise ConfigError(f"matched_to={spec.matched_to!r} needs baseline='size_matched'")
    reason = _NOT_A_VARIANT.get((spec.backbone, variant))
    if reason:
        raise ConfigError(f"attention={variant!r} is not a variant of {spec.backbone}: {reason}")
    return variant


def _cnn_values(spec: NetworkSpec) -> dict[str, Any]:
    """A CNN's normalised fields: options its variant does not use are reset to their defaults."""
    variant = _variant(spec)
    stages = normalize_stages(spec.stages)
    if spec.heads is not None and not _positive_int(spec.heads):
        raise ConfigError(f"heads={spec.heads!r}: expected a positive int or null (one head per 32 channels)")
    if not _positive_int(spec.attn_ratio):
        raise ConfigError(f"attn_ratio={spec.attn_ratio!r}: expected a positive int")
    try:
        check_window(spec.window)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    used = {
        "stages": variant != "none",
        "heads": variant not in ("none", "se"),
        "attn_ratio": variant in ("ga", "la"),
        "window": variant in ("la", "ela"),
    }
    values = {"stages": stages, "heads": spec.heads, "attn_ratio": spec.attn_ratio, "window": spec.window}
    values = {name: value if used[name] else _DEFAULTS[name] for name, value in values.items()}
    baseline = None if spec.attention != "none" else (spec.baseline or "plain")
    matched_to = spec.matched_to if baseline == "size_matched" else None
    return dict(values, baseline=baseline, matched_to=matched_to, family=spec.backbone)
