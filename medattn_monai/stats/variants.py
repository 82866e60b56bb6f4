"""Which group a run belongs to, read from its tags, and how that group is named in tables and plots.

A group is dataset × family × variant. The variant follows the ``baseline`` tag a training writes (the table in
``docs/statistics.md``): ``plain`` is the plain CNN, ``size_matched`` the CNN widened or narrowed to match the
variant named by ``matched_to`` (variant ``matched-<variant>``), ``vit`` the ViT; without a ``baseline`` tag the
run is an attention variant named by its ``attention`` tag (``ga``, ``la``, ``ela``, ``se`` or any other name a
future variant brings).

When a comparison reports the configurations of one variant apart (``split_cells``), each is a group named
``<variant> [<label>]``, e.g. ``plain [epochs=2]``; the helpers below read the variant from such a name.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "PLAIN", "VIT", "MATCHED_PREFIX", "variant_of", "is_attention_variant", "matched_name", "variant_label",
    "variant_order", "labelled", "base_variant",
]

PLAIN = "plain"
_LABEL_OPEN = " ["
VIT = "vit"
MATCHED_PREFIX = "matched-"

_ATTENTION_ORDER = ("ga", "la", "ela", "se")
_ATTENTION_NAMES = {
    "ga": "global attention (ga)",
    "la": "local attention (la)",
    "ela": "embedded local attention (ela)",
    "se": "squeeze-excitation (se)",
}


def variant_of(tags: Mapping[str, str]) -> str:
    """The variant a run belongs to, from its ``baseline``, ``matched_to`` and ``attention`` tags.

    Raises:
        ValueError: the tags do not say (the message is the reason the run is skipped).
    """
    baseline = (tags.get("baseline") or "").strip()
    attention = (tags.get("attention") or "").strip()
    if baseline == "plain":
        return PLAIN
    if baseline == "vit":
        return VIT
    if baseline == "size_matched":
        matched_to = (tags.get("matched_to") or "").strip()
        if not matched_to:
            raise ValueError("baseline=size_matched without a matched_to tag")
        return matched_name(matched_to)
    if baseline:
        raise ValueError(f"unknown baseline tag {baseline!r} (expected plain, size_matched or vit)")
    if not attention or attention == "none":
        # a plain CNN must say so: guessing could put a size-matched CNN that lost its tags among the plain ones
        raise ValueError(f"no baseline tag and attention={attention or '(missing)'}: cannot tell which group")
    return attention


def labelled(name: str, label: str) -> str:
    """``name`` with ``label`` in brackets (``plain [epochs=2]``), or ``name`` alone when ``label`` is empty."""
    return f"{name}{_LABEL_OPEN}{label}]" if label else name


def _split_label(name: str) -> tuple[str, str]:
    base, _, label = name.partition(_LABEL_OPEN)
    return base, label[:-1] if label.endswith("]") else label


def base_variant(name: str) -> str:
    """The variant of a group name: ``plain [epochs=2]`` -> ``plain``; a name without label is returned as is."""
    return _split_label(name)[0]


def matched_name(variant: str) -> str:
    """The variant name of the size-matched CNN for ``variant``."""
    return f"{MATCHED_PREFIX}{variant}"


def is_attention_variant(variant: str) -> bool:
    """True for an attention variant, False for the plain CNN, a size-matched CNN or the ViT (labels ignored)."""
    variant = base_variant(variant)
    return variant not in (PLAIN, VIT) and not variant.startswith(MATCHED_PREFIX)


def variant_label(variant: str) -> str:
    """A readable name for plots: ``matched-ga`` -> ``size-matched CNN (≈ga)``; a label is kept in brackets."""
    variant, label = _split_label(variant)
    if variant == PLAIN:
        name = "plain CNN"
    elif variant == VIT:
        name = "ViT"
    elif variant.startswith(MATCHED_PREFIX):
        name = f"size-matched CNN (≈{variant[len(MATCHED_PREFIX):]})"
    else:
        name = _ATTENTION_NAMES.get(variant, f"attention: {variant}")
    return labelled(name, label)


def variant_order(variant: str) -> tuple[int, int, str, str]:
    """Sort key: plain CNN, attention variants, their size-matched CNNs, ViT; known variants in design order;
    the groups of one variant by label."""
    variant, label = _split_label(variant)
    base = variant[len(MATCHED_PREFIX):] if variant.startswith(MATCHED_PREFIX) else variant
    rank = _ATTENTION_ORDER.index(base) if base in _ATTENTION_ORDER else len(_ATTENTION_ORDER)
    if variant == PLAIN:
        return (0, 0, "", label)
    if variant == VIT:
        return (3, 0, "", label)
    return (2 if variant.startswith(MATCHED_PREFIX) else 1, rank, base, label)
