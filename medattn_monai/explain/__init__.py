"""Explanations and feature usage: what did a trained model learn?

* global: :func:`conditional_permutation_test` (does the output depend on an annotated feature given the true
  label?), :func:`feature_usage_table` (many features, Holm-corrected), :func:`kernel_ci_test` (KCI second opinion);
* local: :func:`grad_cam`, :func:`attention_map` (attention received, or rollout for the ViT), the layers they
  come from (:func:`choose_map_layers`: grids of at least 7×7 positions where the network has them), the checks
  :func:`mask_share` / :func:`map_rank_correlation`, and PNG rendering (with colour bars);
* on trained runs: :func:`explain` (``medattn explain``) and :func:`feature_usage` (``medattn feature-usage``),
  each recorded as a ``run_type=explain`` MLflow run, and :class:`FeatureUsageHandler`, the training-time test
  switched on by the bundles' ``feature_usage`` key.

See ``docs/explanations.md``.
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
from .feature_usage_command import feature_usage, feature_usage_metrics
from .feature_usage_handler import FeatureUsageHandler, feature_usage_handler
from .feature_usage_table import feature_frame, feature_usage_table, holm
from .gradcam import grad_cam, normalize_maps, upsample_maps
from .kernel_ci import kernel_ci_test
from .map_checks import map_rank_correlation, mask_share, mask_share_by_class, mask_share_frame
from .map_layers import MIN_GRID, MapLayers, choose_map_layers, coarse_grid_warning, map_grids
from .maps_command import explain, explain_maps
from .rendering import render_contact_sheet, render_explanation, render_feature_usage
from .trained_run import TrainedRun, load_trained_run, predict_split, split_data

__all__ = [
    "MIN_GRID",
    "FeatureUsageHandler",
    "MapLayers",
    "PermutationTestResult",
    "TrainedRun",
    "attention_map",
    "attention_rollout",
    "choose_map_layers",
    "coarse_grid_warning",
    "conditional_permutation_result",
    "conditional_permutation_test",
    "explain",
    "explain_maps",
    "feature_frame",
    "feature_kind",
    "feature_usage",
    "feature_usage_handler",
    "feature_usage_metrics",
    "feature_usage_table",
    "grad_cam",
    "has_attention_map",
    "holm",
    "kernel_ci_test",
    "load_trained_run",
    "map_grids",
    "map_rank_correlation",
    "mask_share",
    "mask_share_by_class",
    "mask_share_frame",
    "normalize_maps",
    "predict_split",
    "render_contact_sheet",
    "render_explanation",
    "render_feature_usage",
    "rollout_attention_matrices",
    "split_data",
    "upsample_maps",
]
