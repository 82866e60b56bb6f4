"""Export a trained run as a self-contained MONAI Model Zoo bundle that runs with MONAI alone."""

from __future__ import annotations

from .bundle import LARGE_FILE_BYTES, bundle_name, export_bundle, write_bundle
from .provenance import TrainingData, training_data
from .source import RunSource, load_run, select_run, test_metrics
from .target import EXPORT_STAMP, check_targets, is_export
from .vendor import PACKAGE, ScriptsPackage, vendor_modules

__all__ = [
    "EXPORT_STAMP", "LARGE_FILE_BYTES", "PACKAGE", "RunSource", "ScriptsPackage", "TrainingData", "bundle_name",
    "check_targets", "export_bundle", "is_export", "load_run", "select_run", "test_metrics", "training_data",
    "vendor_modules", "write_bundle",
]
