"""Run names, network labels, cell hashes and the tag vocabulary (see ``docs/architecture.md``, "Tracking")."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RUN_TYPES", "TAG_KEYS", "check_run_name", "make_run_name", "network_label", "run_name_for", "run_prefix",
           "unique_run_name", "cell_hash", "git_commit"]

RUN_TYPES = ("train", "trial", "search", "comparison", "explain")
TAG_KEYS = (
    "dataset", "backbone", "attention", "baseline", "family", "matched_to", "stages", "seed", "params_count",
    "split_hash", "run_type", "cell", "git_commit",
)


# a run's name is its folder's name too (output_dir_for): at most this many bytes, as file systems allow 255
_MAX_NAME_BYTES = 200


def check_run_name(name: Any, key: str = "run_name") -> str:
    """``name`` if it can name a run (``key``: or an experiment), which is also a folder's name; else a one-line
    ``ConfigError`` naming ``key``.

    Refused: an empty name, ``.``/``..``, a path separator, a control character, more than 200 bytes. Quotes and
    non-ASCII letters are fine (MLflow searches quote them: :func:`~medattn_monai.tracking.mlflow_runs.filter_literal`).
    """
    from ..errors import ConfigError

    text = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else None
    problem = (
        "it is not a string" if text is None
        else "it is empty" if not text.strip()
        else "it names a folder itself" if text in (".", "..")
        else "it holds a path separator" if "/" in text or "\\" in text
        else "it holds a control character" if any(ord(c) < 32 or ord(c) == 127 for c in text)
        else f"it is longer than {_MAX_NAME_BYTES} bytes" if len(text.encode()) > _MAX_NAME_BYTES
        else None
    )
    if problem:
        raise ConfigError(f"{key}={name!r} cannot name a run folder: {problem}")
    return text


def unique_run_name(prefix: str) -> str:
    """``<prefix>-<YYYYmmdd-HHMMSS>-<4 hex>``: a run name that does not repeat, even for concurrent workers.

    MONAI's MLflow handler reattaches to any unfinished run of the same name, so a name must never repeat.
    """
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def network_label(backbone: str, attention: str = "none", baseline: str | None = None,
                  matched_to: str | None = None, family: str | None = None) -> str:
    """A short readable name: ``resnet18-ga``, ``resnet18-plain``, ``resnet18-matched-ga``, ``vit-resnet18``."""
    if backbone == "vit":
        return f"vit-{family or 'resnet18'}"
    if baseline == "size_matched":
        return f"{backbone}-matched-{matched_to}"
    return f"{backbone}-plain" if attention == "none" else f"{backbone}-{attention}"


def run_prefix(backbone: str, attention: str, seed: int, baseline: str | None = None,
               matched_to: str | None = None, family: str | None = None) -> str:
    """``<network label>-s<seed>`` (see :func:`network_label`): ``resnet18-plain-s0``, ``resnet18-matched-ga-s0``,
    ``vit-resnet18-s0``, ``resnet18-ga-s0``, from the config's values (``baseline`` None means plain)."""
    return f"{network_label(backbone, attention, baseline, matched_to, family)}-s{int(seed)}"


def make_run_name(backbone: str, attention: str, seed: int, baseline: str | None = None,
                  matched_to: str | None = None, family: str | None = None) -> str:
    """A training run's name: ``<network label>-s<seed>-<YYYYmmdd-HHMMSS>-<4 hex>`` (:func:`run_prefix`), so a
    size-matched CNN or a ViT is told from the plain CNN by its name."""
    return unique_run_name(run_prefix(backbone, attention, seed, baseline, matched_to, family))


def run_name_for(resume_from: str | None, network_args: Mapping[str, Any], seed: int,
                 run_name: str | None = None) -> str:
    """The run's name: the resumed run's, a given one, or a new unique one from :func:`make_run_name` for the
    network of ``network_args`` (the bundle's ``network_args``: backbone, attention, baseline, …)."""
    if resume_from:
        from .run_folder import read_run_info

        return read_run_info(resume_from)["run_name"]
    keys = ("backbone", "attention", "baseline", "matched_to", "family")
    return check_run_name(run_name) if run_name else make_run_name(seed=seed, **{k: network_args.get(k) for k in keys})


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
