"""Run names, cell hashes and the tag vocabulary of ``docs/tracking.md``."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

__all__ = ["RUN_TYPES", "TAG_KEYS", "make_run_name", "unique_run_name", "cell_hash", "git_commit"]

RUN_TYPES = ("train", "trial", "search", "comparison", "explain")
TAG_KEYS = (
    "dataset", "backbone", "attention", "baseline", "family", "matched_to", "stages", "seed", "params_count",
    "split_hash", "run_type", "cell", "git_commit",
)


def unique_run_name(prefix: str) -> str:
    """``<prefix>-<YYYYmmdd-HHMMSS>-<4 hex>``: a run name that does not repeat, even for concurrent workers.

    MONAI's MLflow handler reattaches to any unfinished run of the same name, so a name must never repeat.
    """
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def make_run_name(backbone: str, attention: str, seed: int) -> str:
    """A training run's name: ``<backbone>-<attention>-s<seed>-<YYYYmmdd-HHMMSS>-<4 hex>``."""
    return unique_run_name(f"{backbone}-{attention}-s{int(seed)}")


def cell_hash(config: Mapping[str, Any], exclude: tuple[str, ...] = ("seed",)) -> str:
    """Hash of a configuration without its seed: runs of one cell of the study differ only by seed."""
    content = {k: v for k, v in config.items() if k not in exclude}
    blob = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the code that runs (``unknown`` outside a git checkout)."""
    here = Path(path or __file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
