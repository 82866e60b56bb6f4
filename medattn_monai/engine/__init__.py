"""Engine: running the bundles' MONAI workflows.

The library functions behind ``medattn train | resume | evaluate`` (:mod:`.workflow`), finding a bundle and its
configuration with checked overrides (:mod:`.bundles`, the keys' types in :mod:`.config_keys`; the bundles' config
files are generated from ``bundles/_source`` by :mod:`.bundle_source`), one training in this process or under
``torchrun`` (:mod:`.launch`), and what the bundle configs call to set a training up: :mod:`.training_setup`
(optimizer, loss, checks, seed), :mod:`.device` (mixed precision, memory format, host memory), :mod:`.selection`
(the split that selects the best model) and :mod:`.evaluation` (evaluation and inference of a trained run).
"""

from __future__ import annotations

from . import device, evaluation, selection, training_setup
from .bundles import DEFAULT_BUNDLE, bundle_configs, load_config, locate_bundle
from .workflow import evaluate, resume, run_workflow, train

__all__ = [
    "DEFAULT_BUNDLE", "bundle_configs", "device", "evaluate", "evaluation", "load_config", "locate_bundle", "resume",
    "run_workflow", "selection", "train", "training_setup",
]
