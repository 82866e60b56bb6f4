"""The study's matrix: which networks a study trains for each dataset and backbone, and what each one is called.

A cell is one network configuration of one dataset (its runs differ only by seed): an attention variant, the plain
CNN, a size-matched CNN per variant, or the ViT sized to the backbone. Its bundle keys (``backbone``, ``attention``,
``baseline``, ``matched_to``, ``family``) are exactly what the bundle's network factory takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..networks.spec import variants_of
from ..tracking.naming import network_label

__all__ = ["BASELINE_KINDS", "Cell", "matrix"]

BASELINE_KINDS = ("plain", "size_matched", "vit")


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix.

    Args:
        dataset: index of the dataset entry in the study config.
        network: the bundle keys naming the network (``backbone``, ``attention``, ``baseline``, …).
    """

    dataset: int
    network: Mapping[str, Any] = field(hash=False)

    @property
    def label(self) -> str:
        return network_label(**self.network)

    @property
    def attention(self) -> str:
        return self.network.get("attention", "none")

    @property
    def backbone(self) -> str:
        return self.network["backbone"]


def matrix(n_datasets: int, backbones: Sequence[str], variants: Sequence[str],
           baselines: Sequence[str]) -> list[Cell]:
    """Every cell: per dataset and backbone, the plain CNN, each variant, each variant's size-matched CNN, the ViT
    (as far as ``baselines`` asks for them). ``none`` in ``variants`` means the plain CNN."""
    unknown = sorted(set(baselines) - set(BASELINE_KINDS))
    if unknown:
        raise ConfigError(f"baselines {unknown} unknown: choose from {list(BASELINE_KINDS)}")
    if "vit" in backbones:
        raise ConfigError("backbones lists CNNs; the ViT is a baseline (baselines: [vit]) sized to each backbone")
    cells = []
    for d in range(n_datasets):
        for backbone in backbones:
            # e.g. no `se` for efficientnet-b0, whose blocks carry squeeze-and-excitation already
            attn = [v for v in variants if v in variants_of(backbone)]
            if "plain" in baselines or "none" in variants:
                cells.append(Cell(d, {"backbone": backbone, "attention": "none"}))
            cells += [Cell(d, {"backbone": backbone, "attention": v}) for v in attn]
            if "size_matched" in baselines:
                cells += [Cell(d, {"backbone": backbone, "attention": "none", "baseline": "size_matched",
                                   "matched_to": v}) for v in attn]
            if "vit" in baselines:
                cells.append(Cell(d, {"backbone": "vit", "attention": "none", "family": backbone}))
    return cells
