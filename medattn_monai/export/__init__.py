"""Export a trained run as a self-contained MONAI Model Zoo bundle that runs with MONAI alone."""

from __future__ import annotations

from .bundle import LARGE_FILE_BYTES, bundle_name, export_bundle, write_bundle
from .source import RunSource, load_run, select_run, test_metrics
from .vendor import PACKAGE, ScriptsPackage, vendor_modules

__all__ = [
    "LARGE_FILE_BYTES", "PACKAGE", "RunSource", "ScriptsPackage", "bundle_name", "export_bundle", "load_run",
    "select_run", "test_metrics", "vendor_modules", "write_bundle",
]
