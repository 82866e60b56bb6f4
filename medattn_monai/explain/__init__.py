"""Explanations and feature usage: what did a trained model learn?

* global: :func:`conditional_permutation_test` (does the output depend on an annotated feature given the true
  label?), :func:`feature_usage_table` (many features, Holm-corrected), :func:`kernel_ci_test` (KCI second opinion);
* local: :func:`grad_cam`, :func:`attention_rollout`, the checks :func:`mask_share` / :func:`map_rank_correlation`,
  and PNG rendering.

Everything here is model-independent library code for notebooks and the command line; see
``docs/explanations.md``.
"""

from __future__ import annotations

from ..networks.attention_maps import attention_rollout, rollout_attention_matrices
from .attention_map import attention_map, has_attention_map
from .conditional_permutation import (
    PermutationTestResult,
    conditional_permutation_result,
    conditional_permutation_test,
    feature_kind,
)
from .feature_usage_table import feature_usage_table, holm
from .gradcam import grad_cam, normalize_maps, upsample_maps
from .kernel_ci import kernel_ci_test
from .map_checks import map_rank_correlation, mask_share, mask_share_by_class, mask_share_frame
from .rendering import render_contact_sheet, render_explanation, render_feature_usage

__all__ = [
    "PermutationTestResult",
    "attention_map",
    "attention_rollout",
    "conditional_permutation_result",
    "conditional_permutation_test",
    "feature_kind",
    "feature_usage_table",
    "grad_cam",
    "has_attention_map",
    "holm",
    "kernel_ci_test",
    "map_rank_correlation",
    "mask_share",
    "mask_share_by_class",
    "mask_share_frame",
    "normalize_maps",
    "render_contact_sheet",
    "render_explanation",
    "render_feature_usage",
    "rollout_attention_matrices",
    "upsample_maps",
]
