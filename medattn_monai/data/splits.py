"""Seeded splits that are stratified by class and keep groups (lesions, patients) together."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_group_split", "subsample_indices"]


def stratified_group_split(
    labels: Sequence[int],
    groups: Sequence[object],
    ratios: Sequence[float],
    seed: int = 0,
) -> np.ndarray:
    """Assign every sample to a split so that each class is divided in ``ratios`` and no group is divided.

    Args:
        labels: class index per sample (length N).
        groups: group key per sample (length N); samples sharing a key always land in the same split.
            A group whose samples disagree on the label is stratified by its most frequent label.
        ratios: target fraction per split (normalised to sum 1), e.g. ``(0.7, 0.15, 0.15)``.
        seed: seed of the shuffle of groups within each class.

    Returns:
        ``int`` array of length N with the split index of each sample.
    """
    labels = np.asarray(labels)
    groups = np.asarray([str(g) for g in groups])
    ratios = np.asarray(ratios, dtype=float)
    if labels.shape != groups.shape:
        raise ValueError(f"labels and groups differ in length: {labels.shape} vs {groups.shape}")
    if (ratios < 0).any() or ratios.sum() <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios.tolist()}")
    ratios = ratios / ratios.sum()

    uniq, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse)
    # label of a group: its most frequent label (ties -> smallest class index)
    group_label = np.array([np.bincount(labels[inverse == g]).argmax() for g in range(len(uniq))])

    rng = np.random.default_rng(seed)
    assignment = np.empty(len(uniq), dtype=int)
    for cls in np.unique(group_label):
        members = np.flatnonzero(group_label == cls)
        members = members[rng.permutation(len(members))]
        target = ratios * sizes[members].sum()
        filled = np.zeros(len(ratios))
        for g in members:
            # the split that is furthest below its target (relative deficit) takes the next group
            deficit = (target - filled) / np.maximum(target, 1e-12)
            deficit[target == 0] = -np.inf
            s = int(np.argmax(deficit))
            assignment[g] = s
            filled[s] += sizes[g]
    return assignment[inverse]


def subsample_indices(n: int, max_samples: int | None, seed: int = 0, stream: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``range(n)`` of size ``min(n, max_samples)`` (all if None).

    ``stream`` separates the draws of different splits, so capping one split never changes another's subset.
    """
    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) != max_samples
                                    or max_samples < 1):
        raise ValueError(f"max_samples must be a positive integer or None, got {max_samples!r}")
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(stream)])
    return np.sort(rng.choice(n, size=int(max_samples), replace=False))
