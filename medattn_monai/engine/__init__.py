"""Engine: what the bundle configs call to set up a run, and the library functions behind ``medattn train``,
``medattn resume`` and ``medattn evaluate``."""

from __future__ import annotations

from .selection import SELECTION_SPLITS, selection_metric, selection_split
from .evaluation import evaluate_splits, inference_items, latest_run_dir, split_loaders
from .workflow import DEFAULT_BUNDLE, bundle_configs, evaluate, find_run_dir, load_config, resume, run_workflow, train
from .setup import (
    amp_enabled,
    amp_kwargs,
    channels_last_enabled,
    check_hyper_parameters,
    cell_of,
    experiment_for,
    locate_bundle,
    make_loss,
    make_optimizer,
    output_dir_for,
    resume_checkpoint,
    retain_host_memory,
    run_name_for,
    seed_everything,
    training_tags,
)

__all__ = [
    "amp_enabled", "amp_kwargs", "channels_last_enabled", "check_hyper_parameters", "experiment_for",
    "locate_bundle", "make_loss", "make_optimizer", "output_dir_for", "resume_checkpoint", "retain_host_memory",
    "run_name_for", "seed_everything", "training_tags", "DEFAULT_BUNDLE", "bundle_configs", "evaluate", "find_run_dir",
    "resume", "run_workflow", "train", "load_config", "cell_of", "evaluate_splits", "inference_items",
    "latest_run_dir", "split_loaders", "SELECTION_SPLITS", "selection_metric", "selection_split",
]
